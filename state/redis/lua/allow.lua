-- Count one event in a rate-limit window.
-- KEYS[1]: the window's counter; ARGV[1]: the window's length in ms.
-- Returns the window's count so far.
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
