/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * crc32c.h - CRC32C (Castagnoli), hardware-accelerated where the CPU allows.
 * crc32c_extend(0, p, n) is the standard CRC32C of p[0..n); pass a previous
 * result as crc to continue it over more bytes.
 */
#ifndef ENGINE_CRC32C_H
#define ENGINE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n);
/* The table version alone, so tests can compare both paths. */
uint32_t crc32c_sw_extend(uint32_t crc, const void *data, size_t n);

#endif /* ENGINE_CRC32C_H */
