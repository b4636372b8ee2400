-- present.lua: record that a mirror's store holds a chunk (a copy finished, or HEAD found it).
-- Part of the garbage-collection protocol of gc-claim.lua. Guarantees: the chunk is not marked
-- present while garbage collection has it claimed, nor when GC finished deleting it at or after
-- `since` (the server time before the caller looked at the store: what it saw may be gone); the
-- caller copies it again. Otherwise, in one step: present, not missing, no copy failure kept,
-- and for a copy (bytes given) the region's copied counters grow by one chunk and its bytes.
-- A chunk no entry references is also entered in unreferenced (from now, unless it is there
-- already): a copy that finished before the record that needs it was applied is taken out again
-- by that apply, and one that ran after the delete that dropped it (GC collected it meanwhile)
-- is collected after the grace, instead of staying present and known to nothing forever.
-- Returns 1 when marked, 0 when refused.
-- KEYS: present, missing, copy failures, gc-claims, gc-deleted, copied, refs, unreferenced
-- ARGV: chunk id, since ms ('' checks only claims), bytes copied ('' when found, not copied)
local id, since, bytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('HEXISTS', KEYS[4], id) == 1 then return 0 end
if since then
  local gone = redis.call('ZSCORE', KEYS[5], id)
  if gone and tonumber(gone) >= since then return 0 end
end
if redis.call('HEXISTS', KEYS[7], id) == 0 then redis.call('ZADD', KEYS[8], 'NX', now_ms(), id) end
redis.call('SADD', KEYS[1], id)
redis.call('SREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
if bytes then
  redis.call('HINCRBY', KEYS[6], 'chunks', 1)
  redis.call('HINCRBY', KEYS[6], 'bytes', bytes)
end
return 1
