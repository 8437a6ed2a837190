-- The number of connected devices: the sum of the live nodes' counts. A
-- node that stopped refreshing (it died) is dropped with its count.
-- KEYS[1]: counts hash; KEYS[2]: liveness sorted set.
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, node in ipairs(dead) do
  redis.call('HDEL', KEYS[1], node)
  redis.call('ZREM', KEYS[2], node)
end
local sum = 0
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. string.format('%d', now), '+inf')) do
  local c = tonumber(redis.call('HGET', KEYS[1], node))
  if c and c > 0 then sum = sum + c end
end
return sum
