-- Remove a device if it is still recorded on the node (compare and delete:
-- the old node's late disconnect does not undo a takeover).
-- KEYS[1]: devices hash; KEYS[2]: expiries. ARGV: [1] device, [2] node.
-- Returns 1 if removed, 0 if absent or on another node.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and node_of(old) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
