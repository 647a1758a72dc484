/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_lua.c - the Lua scripts of the Redis store: every composite tally
 * operation as one script, so it is one atomic step on the server however
 * many tallyd instances share it (redis_ops.c builds their arguments and
 * reads their answers; docs/redis-store.md lists the key layout).
 *
 * Numbers.  Lua's numbers are doubles, exact only to 2^53, so a counter's
 * value never passes through one: arithmetic is Redis's own INCRBY (which
 * also detects int64 overflow), values travel as the decimal strings GET
 * returns, and a sign is read from the first character.  Times (Unix ms,
 * below 2^48) and small counts are safe as numbers; tostring() of one may
 * use an exponent, so every number put into a string goes through N().
 *
 * The answer of a single-key script is an array of ten fields,
 *   { rc, found, value (string), expire_at, now_ms, n, replayed,
 *     expire_set, expired, unchanged }
 * and the idempotency record (KEYS[2], when present) holds the
 * fingerprint followed by the same fields but replayed, space-separated,
 * written with SET NX PX in the same script as the change.
 */
#include "redis_int.h"

#define LUA_COMMON                                                          \
    "local function N(x) return string.format('%d', x) end\n"              \
    "local function now_ms()\n"                                             \
    "  local t = redis.call('TIME')\n"                                      \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"  \
    "end\n"                                                                 \
    /* exp_at(): k's expiry as stored (PEXPIRETIME, Redis 7), so that     \
     * every read shows the same instant; now + PTTL, which moves by a ms  \
     * between reads, only on a server without it. */                      \
    "local function exp_at(k, now)\n"                                       \
    "  local t = redis.pcall('PEXPIRETIME', k)\n"                           \
    "  if type(t) == 'number' then return t > 0 and t or 0 end\n"           \
    "  local p = redis.call('PTTL', k)\n"                                   \
    "  if p > 0 then return now + p end\n"                                  \
    "  return 0\n"                                                          \
    "end\n"                                                                 \
    "local function id_check(fp)\n"                                         \
    "  if #KEYS < 2 then return nil end\n"                                  \
    "  local rec = redis.call('GET', KEYS[2])\n"                            \
    "  if not rec then return nil end\n"                                    \
    "  local f = {}\n"                                                      \
    "  for w in string.gmatch(rec, '%S+') do f[#f + 1] = w end\n"           \
    "  if f[1] ~= fp then return {-5, 0, '0', 0, 0, 0, 0, 0, 0, 0} end\n"   \
    "  return {tonumber(f[2]), tonumber(f[3]), f[4], tonumber(f[5]),\n"     \
    "          tonumber(f[6]), tonumber(f[7]), 1, tonumber(f[8]),\n"        \
    "          tonumber(f[9]), tonumber(f[10])}\n"                          \
    "end\n"                                                                 \
    "local function id_save(r, fp, ttl)\n"                                  \
    "  if #KEYS < 2 then return end\n"                                      \
    "  redis.call('SET', KEYS[2], fp .. ' ' .. N(r[1]) .. ' ' .. N(r[2]) ..\n" \
    "    ' ' .. r[3] .. ' ' .. N(r[4]) .. ' ' .. N(r[5]) .. ' ' .. N(r[6]) ..\n" \
    "    ' ' .. N(r[8]) .. ' ' .. N(r[9]) .. ' ' .. N(r[10]), 'NX', 'PX', ttl)\n" \
    "end\n"                                                                 \
    /* when(): the absolute expiry a request names, or nil for none */      \
    "local function when(xm, ex, now)\n"                                    \
    "  if xm == 2 or xm == 4 then return now + ex end\n"                    \
    "  if xm == 3 or xm == 5 then return ex end\n"                          \
    "  return nil\n"                                                        \
    "end\n"                                                                 \
    /* Give k the expiry w (at or before now: delete it); r[8], r[9]. */    \
    "local function put_expiry(k, w, now, r)\n"                             \
    "  r[8] = w\n"                                                          \
    "  if w <= now then redis.call('DEL', k); r[9] = 1; r[8] = 1\n"         \
    "  else redis.call('PEXPIREAT', k, w) end\n"                            \
    "end\n"

/* KEYS: counter [id].  ARGV: delta flags xmode expire fp idttl. */
static const char lua_incr[] = LUA_COMMON
    "local r = id_check(ARGV[5]); if r then return r end\n"
    "local k, flags = KEYS[1], tonumber(ARGV[2])\n"
    "local xm, ex = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local now = now_ms()\n"
    "local w = when(xm, ex, now)\n"
    "if w and w > 281474976710655 then return {-4, 0, '0', 0, now, 0, 0, 0, 0, 0} end\n"
    "local old = redis.call('GET', k)\n"
    "r = {0, 1, '0', 0, now, 0, 0, 0, 0, 0}\n"
    "if not old and bit.band(flags, 128) ~= 0 then\n"
    "  r[1] = 1; r[2] = 0; id_save(r, ARGV[5], ARGV[6]); return r\n"
    "end\n"
    "local delta = ARGV[1]\n"
    "if bit.band(flags, 64) ~= 0 and string.sub(delta, 1, 1) == '-' then\n"
    /* The floor: never below 0; a counter at or below it stays. */
    "  local o = old or '0'\n"
    "  if o == '0' or string.sub(o, 1, 1) == '-' then delta = '0'\n"
    "  else\n"
    "    local v = redis.pcall('INCRBY', k, delta)\n"
    "    if type(v) == 'table' or v < 0 then\n"
    "      redis.call('SET', k, '0', 'KEEPTTL')\n"
    "    end\n"
    "    delta = nil\n"
    "  end\n"
    "  if delta == '0' and not w and old then\n"
    "    r[3] = old; r[4] = exp_at(k, now); r[10] = 1\n"
    "    id_save(r, ARGV[5], ARGV[6]); return r\n"
    "  end\n"
    "end\n"
    "if delta then\n"
    "  local v = redis.pcall('INCRBY', k, delta)\n"
    /* Overflow: nothing changed, and the id stays unused (as on the
     * engine), so the same id may carry a request that fits. */
    "  if type(v) == 'table' then\n"
    "    r[1] = -3; r[2] = old and 1 or 0; r[3] = old or '0'\n"
    "    r[4] = old and exp_at(k, now) or 0\n"
    "    return r\n"
    "  end\n"
    "end\n"
    "r[3] = redis.call('GET', k) or '0'\n"
    "if w and (xm <= 3 or not old) then put_expiry(k, w, now, r) end\n"
    "if r[9] == 0 then r[4] = exp_at(k, now) end\n"
    "id_save(r, ARGV[5], ARGV[6])\n"
    "return r\n";

/* KEYS: counter [id].  ARGV: value cmp flags xmode expire fp idttl. */
static const char lua_set[] = LUA_COMMON
    "local r = id_check(ARGV[6]); if r then return r end\n"
    "local k, flags = KEYS[1], tonumber(ARGV[3])\n"
    "local xm, ex = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local now = now_ms()\n"
    "local w = when(xm, ex, now)\n"
    "if w and w > 281474976710655 then return {-4, 0, '0', 0, now, 0, 0, 0, 0, 0} end\n"
    "local old = redis.call('GET', k)\n"
    "r = {0, old and 1 or 0, old or '0', 0, now, 0, 0, 0, 0, 0}\n"
    "local oldx = old and exp_at(k, now) or 0\n"
    "if (bit.band(flags, 1) ~= 0 and old) or (bit.band(flags, 2) ~= 0 and not old)\n"
    "   or (bit.band(flags, 8) ~= 0 and old ~= ARGV[2]) then\n"
    "  r[1] = 2; r[4] = oldx; id_save(r, ARGV[6], ARGV[7]); return r\n"
    "end\n"
    "if xm == 0 then redis.call('SET', k, ARGV[1], 'KEEPTTL'); r[8] = oldx\n"
    "else redis.call('SET', k, ARGV[1]) end\n"
    "if w then put_expiry(k, w, now, r) end\n"
    "r[6] = 1\n"
    "if r[9] == 0 then r[4] = exp_at(k, now) end\n"
    "id_save(r, ARGV[6], ARGV[7])\n"
    "return r\n";

/* KEYS: counter [id].  ARGV: flags cmp fp idttl (flags IFEQ: delete only
 * if the counter holds cmp, else rc NOTSET showing it: memcached md C). */
static const char lua_getdel[] = LUA_COMMON
    "local r = id_check(ARGV[3]); if r then return r end\n"
    "local now = now_ms()\n"
    "local old = redis.call('GET', KEYS[1])\n"
    "r = {1, 0, '0', 0, now, 0, 0, 0, 0, 0}\n"
    "if old then\n"
    "  r[1] = 0; r[2] = 1; r[3] = old; r[4] = exp_at(KEYS[1], now)\n"
    "  if bit.band(tonumber(ARGV[1]), 8) ~= 0 and old ~= ARGV[2] then\n"
    "    r[1] = 2\n"
    "  else\n"
    "    r[6] = 1; redis.call('DEL', KEYS[1])\n"
    "  end\n"
    "end\n"
    "id_save(r, ARGV[3], ARGV[4])\n"
    "return r\n";

/* KEYS: counters... [id].  ARGV: has_id fp idttl.  The answer's fields
 * after the ten are which keys existed. */
static const char lua_del[] = LUA_COMMON
    "local nk = #KEYS\n"
    "if ARGV[1] == '1' then\n"
    "  local r = id_check(ARGV[2]); if r then r[11] = r[6]; return r end\n"
    "  nk = nk - 1\n"
    "end\n"
    "local r = {0, 0, '0', 0, 0, 0, 0, 0, 0, 0}\n"
    "for i = 1, nk do\n"
    "  local d = redis.call('DEL', KEYS[i])\n"
    "  r[6] = r[6] + d; r[10 + i] = d\n"
    "end\n"
    "if r[6] == 0 and ARGV[1] == '1' then r[1] = 1 end\n"
    "if ARGV[1] == '1' then id_save(r, ARGV[2], ARGV[3]) end\n"
    "return r\n";

/* KEYS: counter.  Answer as above (rc 1: missing). */
static const char lua_get[] = LUA_COMMON
    "local now = now_ms()\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return {1, 0, '0', 0, now, 0, 0, 0, 0, 0} end\n"
    "return {0, 1, v, exp_at(KEYS[1], now), now, 0, 0, 0, 0, 0}\n";

/* KEYS: counter.  ARGV: flags xmode expire.  Redis 7's EXPIRE conditions:
 * no expiry counts as later than any time. */
static const char lua_expire[] = LUA_COMMON
    "local flags, xm, ex = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local now = now_ms()\n"
    "local w = when(xm, ex, now)\n"
    "if w and w > 281474976710655 then return {-4, 0, '0', 0, now, 0, 0, 0, 0, 0} end\n"
    "local k = KEYS[1]\n"
    "local v = redis.call('GET', k)\n"
    "if not v then return {1, 0, '0', 0, now, 0, 0, 0, 0, 0} end\n"
    "local cur = exp_at(k, now)\n"
    "local r = {0, 1, v, cur, now, 0, 0, 0, 0, 0}\n"
    "if xm == 1 then\n"
    "  if cur ~= 0 then redis.call('PERSIST', k); r[6] = 1 end\n"
    "  return r\n"
    "end\n"
    "if not w then return r end\n"
    "if (bit.band(flags, 1) ~= 0 and cur ~= 0) or (bit.band(flags, 2) ~= 0 and cur == 0)\n"
    "   or (bit.band(flags, 16) ~= 0 and (cur == 0 or w <= cur))\n"
    "   or (bit.band(flags, 32) ~= 0 and cur ~= 0 and w >= cur) then return r end\n"
    "put_expiry(k, w, now, r)\n"
    "r[8] = w; r[6] = 1\n"
    "return r\n";

/* A counter's Redis key is prefix "{" escaped-key "}" (ARGV[4]: the
 * prefix's length); id records have more after the "}". */
#define LUA_IS_COUNTER                                                      \
    "local pl = tonumber(ARGV[4])\n"                                        \
    "local function is_counter(key)\n"                                      \
    "  return string.find(key, '}', pl + 2, true) == #key\n"                \
    "end\n"

/* ARGV: cursor pattern count prefixlen.  Answer: { next cursor, now,
 * key, value, expire_at, ... }. */
static const char lua_scan[] = LUA_COMMON LUA_IS_COUNTER
    "local s = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])\n"
    "local now = now_ms()\n"
    "local out = {s[1], now}\n"
    "for _, key in ipairs(s[2]) do\n"
    "  if is_counter(key) then\n"
    "    local v = redis.call('GET', key)\n"
    "    if v then\n"
    "      out[#out + 1] = key; out[#out + 1] = v; out[#out + 1] = exp_at(key, now)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* One page of COUNT or FLUSH: one SCAN step, so no call holds Redis for
 * longer than a page of keys, whatever else shares the server (redis_ops.c
 * sends the pages one after the other until the cursor is back at 0).
 * ARGV: cursor pattern count prefixlen mode (0: count, 1: count with the
 * expiries, 2: delete, 3: as 1 and the counters' id records).  Answer:
 * { next cursor, counters (deleted), with an expiry, the sum of their ms
 * left, id records, their bytes (key and value) }. */
static const char lua_count[] = LUA_IS_COUNTER
    "local s = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])\n"
    "local mode, n, nx, sum, ids, idb = ARGV[5], 0, 0, 0, 0, 0\n"
    "for _, key in ipairs(s[2]) do\n"
    "  if is_counter(key) then\n"
    "    if mode == '2' then n = n + redis.call('DEL', key)\n"
    "    else\n"
    "      n = n + 1\n"
    "      if mode == '1' or mode == '3' then\n"
    "        local p = redis.call('PTTL', key)\n"
    "        if p > 0 then nx = nx + 1; sum = sum + p end\n"
    "      end\n"
    "    end\n"
    "  elseif mode == '3' and string.find(key, '}:id:', pl + 2, true) then\n"
    "    local b = redis.call('STRLEN', key)\n"
    "    if b > 0 then ids = ids + 1; idb = idb + b + #key end\n"
    "  end\n"
    "end\n"
    "return {s[1], n, nx, sum, ids, idb}\n";

/* A batch's commit (redis_xact.c).  KEYS: the batch's counters.  ARGV:
 * six fields per key: the state the batch read (existed 0/1, value,
 * expiry) and the state it leaves (mode 0 untouched, 1 set, 2 deleted;
 * value; expiry, 0 none).  Every key is checked first, so a state that
 * changed since it was read answers rc -16 (STORE_ECONFLICT) with n the
 * key's place and nothing written; then the final states are written,
 * all in this one script.  An expiry is compared as the instant
 * PEXPIRETIME keeps; a server without it (before 7) gives now + PTTL,
 * which may move by a ms between two reads.  A batch under one id (HTTP
 * /v1/batch with an Idempotency-Key) has one more KEYS, its record
 * Pbatch:ID, and three more ARGV (fp, PX, the answer): a record already
 * there is -16 too, and the record "B FP ANSWER" is written with the
 * counters. */
static const char lua_commit[] = LUA_COMMON
    "local now = now_ms()\n"
    "local nk = math.floor(#ARGV / 6)\n"
    "local exact = #KEYS == 0 or\n"
    "  type(redis.pcall('PEXPIRETIME', KEYS[1])) == 'number'\n"
    "for i = 1, nk do\n"
    "  local a, k = (i - 1) * 6, KEYS[i]\n"
    "  local v = redis.call('GET', k)\n"
    "  local bad = false\n"
    "  if ARGV[a + 1] == '1' then\n"
    "    local d = v and exp_at(k, now) - tonumber(ARGV[a + 3]) or 0\n"
    "    bad = v ~= ARGV[a + 2] or (d ~= 0 and (exact or d > 1 or d < -1))\n"
    "  else bad = v ~= false and v ~= nil end\n"
    "  if bad then return {-16, 0, '0', 0, now, i, 0, 0, 0, 0} end\n"
    "end\n"
    /* A whole batch's id: recorded meanwhile (another copy got in first)
     * is a conflict, so the re-run's once_answer finds it. */
    "if #KEYS > nk and redis.call('EXISTS', KEYS[nk + 1]) == 1 then\n"
    "  return {-16, 0, '0', 0, now, nk + 1, 0, 0, 0, 0}\n"
    "end\n"
    "for i = 1, nk do\n"
    "  local a, k = (i - 1) * 6, KEYS[i]\n"
    "  local m, x = ARGV[a + 4], tonumber(ARGV[a + 6])\n"
    "  if m == '2' or (m == '1' and x ~= 0 and x <= now) then\n"
    "    redis.call('DEL', k)\n"
    "  elseif m == '1' and x == 0 then redis.call('SET', k, ARGV[a + 5])\n"
    "  elseif m == '1' then redis.call('SET', k, ARGV[a + 5], 'PXAT', ARGV[a + 6])\n"
    "  end\n"
    "end\n"
    "if #KEYS > nk then\n"
    "  local a = nk * 6\n"
    "  redis.call('SET', KEYS[nk + 1], 'B ' .. ARGV[a + 1] .. ' ' .. ARGV[a + 3],\n"
    "             'PX', ARGV[a + 2])\n"
    "end\n"
    "return {0, 0, '0', 0, now, nk, 0, 0, 0, 0}\n";

/* KEYS: a whole batch's id record.  ARGV: fp.  rc 1 (NOTFOUND): none;
 * -5 (EIDREUSED): another batch's; 0: the third field is its answer. */
static const char lua_once[] =
    "local rec = redis.call('GET', KEYS[1])\n"
    "if not rec then return {1, 0, '0', 0, 0, 0, 0, 0, 0, 0} end\n"
    "local fp, ans = string.match(rec, '^B (%d+) (.*)$')\n"
    "if fp ~= ARGV[1] then return {-5, 0, '0', 0, 0, 0, 0, 0, 0, 0} end\n"
    "return {0, 1, ans, 0, 0, 0, 1, 0, 0, 0}\n";

const char *const redis_lua_text[REDIS_S_COUNT_ALL] = {
    [REDIS_S_INCR] = lua_incr,
    [REDIS_S_SET] = lua_set,
    [REDIS_S_GETDEL] = lua_getdel,
    [REDIS_S_DEL] = lua_del,
    [REDIS_S_GET] = lua_get,
    [REDIS_S_EXPIRE] = lua_expire,
    [REDIS_S_SCAN] = lua_scan,
    [REDIS_S_COUNT] = lua_count,
    [REDIS_S_COMMIT] = lua_commit,
    [REDIS_S_ONCE] = lua_once,
};
