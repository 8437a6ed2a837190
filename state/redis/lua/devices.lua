-- A user's live devices.
-- KEYS[1]: devices hash; KEYS[2]: expiries.
-- Returns device, "since node", device, "since node", ... (unordered).
prune(KEYS[1], KEYS[2], now_ms())
return redis.call('HGETALL', KEYS[1])
