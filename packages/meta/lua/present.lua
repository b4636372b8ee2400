-- present.lua: record that a mirror's store holds a chunk (a copy finished, or HEAD found it).
-- Part of the garbage-collection protocol of gc-claim.lua. Guarantees: the chunk is not marked
-- present while garbage collection has it claimed, nor when GC finished deleting it at or after
-- `since` (the server time before the caller looked at the store: what it saw may be gone); the
-- caller copies it again. Otherwise, in one step: present, not missing, no copy failure kept.
-- Returns 1 when marked, 0 when refused.
-- KEYS: present, missing, copy failures, gc-claims, gc-deleted
-- ARGV: chunk id, since ms ('' checks only claims)
local id, since = ARGV[1], tonumber(ARGV[2])
if redis.call('HEXISTS', KEYS[4], id) == 1 then return 0 end
if since then
  local gone = redis.call('ZSCORE', KEYS[5], id)
  if gone and tonumber(gone) >= since then return 0 end
end
redis.call('SADD', KEYS[1], id)
redis.call('SREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
return 1
