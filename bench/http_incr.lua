-- SPDX-License-Identifier: BSD-3-Clause
-- http_incr.lua - wrk script for bench/http_wrk.sh: every request is
-- POST /v1/counters/bench:<n>/increment with n random in [1, KEYS] (env,
-- default 100000) and an empty body (by 1).  TOKEN (env), if set, is sent as
-- a bearer token.  With ONCE (env) set, every request carries an
-- Idempotency-Key never used before (bench/once_vs_plain.sh).  done() prints
-- one line for the shell script to read:
--   RESULT <requests/s> <p50 ms> <p99 ms> <requests> <errors>
-- where errors counts socket errors, timeouts and non-2xx answers.

local keys = tonumber(os.getenv("KEYS") or "100000")
local token = os.getenv("TOKEN")
local once = os.getenv("ONCE")
local counter = 0
local run, seq = 0, 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  -- Distinct seeds per thread, or every thread walks the same keys.
  math.randomseed(os.time() * 1000 + (id or 0))
  run = string.format("%d-%d-%d", os.time(), id or 0, math.random(1e9))
  wrk.method = "POST"
  wrk.body = nil
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  local path = "/v1/counters/bench:" .. math.random(keys) .. "/increment"
  if once and once ~= "" then
    seq = seq + 1
    return wrk.format(nil, path, {["Idempotency-Key"] = run .. "-" .. seq})
  end
  return wrk.format(nil, path)
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors))
end
