-- ack.lua: record that a region has applied the change log up to an id.
-- Guarantees: a region's ack only moves forward (a late or repeated ack never lowers it, which
-- would let garbage collection wait for nothing, or a lower one be read as progress).
-- Returns the region's ack after the call.
-- KEYS: acks
-- ARGV: region, id
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and not id_less(current, ARGV[2]) then return current end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
