-- Shared by every presence script (prepended in Go before loading).

-- Scripts call TIME and then write; Redis 7 replicates a script's effects,
-- older servers must be told to.
if redis.replicate_commands then redis.replicate_commands() end

-- now_ms is the server's clock in unix milliseconds: one clock for all
-- nodes, so their TTLs agree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- node_of returns the node of a presence value "since node".
local function node_of(v)
  local i = string.find(v, ' ', 1, true)
  if not i then return '' end
  return string.sub(v, i + 1)
end

-- keep_alive makes key live at least ttl more milliseconds, never shorter
-- than it already does (nodes may run with different TTLs).
local function keep_alive(key, ttl)
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', key, ttl)
  end
end

-- prune drops a user's devices whose expiry has passed: their node stopped
-- refreshing them (it died, or lost Redis for longer than the TTL).
local function prune(devs, exps, now)
  local gone = redis.call('ZRANGEBYSCORE', exps, '-inf', now)
  for _, d in ipairs(gone) do
    redis.call('HDEL', devs, d)
    redis.call('ZREM', exps, d)
  end
end
