-- The owning node's heartbeat for one device.
-- KEYS[1]: devices hash; KEYS[2]: expiries.
-- ARGV: [1] device, [2] "since node", [3] node, [4] TTL ms.
-- Returns 1 refreshed; 2 recreated (it was lost: FLUSHALL, a restart, an
-- expiry); 0 the device is recorded on another node (taken over): the
-- caller stops refreshing it.
local now, ttl = now_ms(), tonumber(ARGV[4])
local old = redis.call('HGET', KEYS[1], ARGV[1])
local code = 1
if old then
  if node_of(old) ~= ARGV[3] then return 0 end
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  code = 2
end
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
keep_alive(KEYS[1], ttl)
keep_alive(KEYS[2], ttl)
return code
