-- Record a device as connected to a node (a later Online replaces the node).
-- KEYS[1]: the user's devices, a hash device -> "since node".
-- KEYS[2]: their expiries, a sorted set device -> unix ms.
-- ARGV: [1] device, [2] "since node", [3] TTL ms.
-- Returns the node the device was live on before ('' if none), so the
-- caller can move the per-node counts.
local now, ttl = now_ms(), tonumber(ARGV[3])
prune(KEYS[1], KEYS[2], now)
local old = redis.call('HGET', KEYS[1], ARGV[1])
local prev = ''
if old then prev = node_of(old) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
keep_alive(KEYS[1], ttl)
keep_alive(KEYS[2], ttl)
return prev
