# SPDX-License-Identifier: BSD-3-Clause
# tally_store_pg: the PostgreSQL store (src/store/pg.h) over Debian's
# libpq-dev (libpq 14+ for pipeline mode).  Included from the top-level
# CMakeLists.txt; whatever maps --store postgresql:// links it.
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq>=14)
add_library(tally_store_pg STATIC
            ${CMAKE_CURRENT_LIST_DIR}/pg.c
            ${CMAKE_CURRENT_LIST_DIR}/pg_batch.c
            ${CMAKE_CURRENT_LIST_DIR}/pg_hosts.c
            ${CMAKE_CURRENT_LIST_DIR}/pg_xact.c
            ${CMAKE_CURRENT_LIST_DIR}/pg_sql.c
            ${CMAKE_CURRENT_LIST_DIR}/pg_txn.c)
target_include_directories(tally_store_pg PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tally_store_pg PUBLIC tally_store tally tally_util PkgConfig::LIBPQ
                      PkgConfig::LIBEVENT)
