-- Per-node device counts. KEYS[1]: a hash node -> count; KEYS[2]: a
-- sorted set node -> unix ms until which the node is live.
-- ARGV[1]: mode, 'add' or 'set'; ARGV[2]: TTL ms; then node, value pairs.
-- add: value is a delta. A positive one marks the node live; a negative
--      one for a node that is not live is dropped (its count is gone).
-- set: value is the node's count, from its owner. A positive one marks the
--      node live; 0 leaves the node to expire.
local now, ttl = now_ms(), tonumber(ARGV[2])
local function mark_live(node)
  local until_ = redis.call('ZSCORE', KEYS[2], node)
  if not until_ or tonumber(until_) < now + ttl then
    redis.call('ZADD', KEYS[2], now + ttl, node)
  end
end
for i = 3, #ARGV, 2 do
  local node, v = ARGV[i], tonumber(ARGV[i + 1])
  if ARGV[1] == 'set' then
    redis.call('HSET', KEYS[1], node, v)
    if v > 0 then mark_live(node) end
  elseif v > 0 then
    redis.call('HINCRBY', KEYS[1], node, v)
    mark_live(node)
  else
    local until_ = redis.call('ZSCORE', KEYS[2], node)
    if until_ and tonumber(until_) > now then
      redis.call('HINCRBY', KEYS[1], node, v)
    end
  end
end
return 0
