-- Take n versions from a key's cached block.
-- KEYS[1]: the block, a hash {next, limit}: versions [next, limit) are free.
-- ARGV[1]: n.
-- Returns {first, limit}: the caller has [first, first+n) of the block
-- ending at limit; or {0, 0} when the block is missing (never filled,
-- flushed, expired, Redis restarted) or has fewer than n left: the caller
-- reserves a new block from the store and installs it.
local v = redis.call('HMGET', KEYS[1], 'next', 'limit')
local nx, lim, n = tonumber(v[1]), tonumber(v[2]), tonumber(ARGV[1])
if nx == nil or lim == nil or nx + n > lim then
  return {0, 0}
end
redis.call('HINCRBY', KEYS[1], 'next', n)
return {nx, lim}
