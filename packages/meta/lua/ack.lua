-- ack.lua: record that a region has applied the change log up to an id.
-- Guarantees: a region's ack only moves forward (a late or repeated ack never lowers it, which
-- would let garbage collection wait for nothing, or a lower one be read as progress).
-- One key per mirror region, so a mirror's Redis user writes its own ack and no other key of the
-- source. Returns the region's ack after the call.
-- KEYS: the region's ack key
-- ARGV: id
local current = redis.call('GET', KEYS[1])
if current and not id_less(current, ARGV[1]) then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
