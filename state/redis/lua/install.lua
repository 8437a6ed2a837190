-- Install a block just reserved from the store and take n versions of it,
-- moving the cached block only forward.
-- KEYS[1]: the block hash {next, limit}.
-- ARGV: [1] first, [2] limit = first+block, [3] n, [4] first+n, [5] idle TTL ms.
-- Returns {code, v, limit}:
--   {1, first, limit}: installed; the caller has [first, first+n).
--   {2, v, limit}:     the reserved block starts below the cached limit (a
--                      refill that raced a fresher one); it is dropped, and
--                      the caller has [v, v+n) of the cached block instead.
--   {0, 0, limit}:     like 2, but the cached block has fewer than n left:
--                      the caller reserves again.
local v = redis.call('HMGET', KEYS[1], 'next', 'limit')
local nx, lim = tonumber(v[1]), tonumber(v[2])
local first, n = tonumber(ARGV[1]), tonumber(ARGV[3])
if lim == nil or first >= lim then
  redis.call('HSET', KEYS[1], 'next', ARGV[4], 'limit', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {1, first, tonumber(ARGV[2])}
end
if nx ~= nil and nx + n <= lim then
  redis.call('HINCRBY', KEYS[1], 'next', n)
  return {2, nx, lim}
end
return {0, 0, lim}
