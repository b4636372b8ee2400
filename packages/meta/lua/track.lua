-- track.lua: record what the mirror knows of the source's history at its cursor, without moving it.
-- Guarantees: nothing changes for a caller whose fencing token is not the current one (error
-- reply FERRY_FENCED) or when the cursor is no longer `expected` (returns 0: another step moved
-- it, and what the caller learned belongs to the old cursor). Otherwise the tracking hash takes
-- the given fields (the source's epoch, adopted by a mirror that synced before epochs existed;
-- `added`, learned when the mirror found itself at the end of the log) in one step. Returns 1.
-- KEYS: cursor, fence, tracking
-- ARGV: token, expected cursor, epoch ('' keeps it), added ('' keeps it)
local cursor_key, fence, tracking = KEYS[1], KEYS[2], KEYS[3]
local refused = fence_refusal(fence, ARGV[1])
if refused then return refused end
if redis.call('GET', cursor_key) ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', tracking, 'epoch', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', tracking, 'added', ARGV[4]) end
return 1
