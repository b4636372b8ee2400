-- present.lua: record that a mirror's store holds chunks (copies finished, or HEAD found them).
-- Part of the garbage-collection protocol of gc-claim.lua. Guarantees, for each chunk given: it
-- is not marked present while garbage collection has it claimed, nor when GC finished deleting
-- it at or after its `since` (the server time before the caller looked at the store: what it saw
-- may be gone); the caller copies it again. Otherwise, in one step: present, not missing, no copy
-- failure kept, and for a copy (bytes given) the region's copied counters grow by one chunk and
-- its bytes. A chunk no entry references is also entered in unreferenced (from now, unless it is
-- there already): a copy that finished before the record that needs it was applied is taken out
-- again by that apply, and one that ran after the delete that dropped it (GC collected it
-- meanwhile) is collected after the grace, instead of staying present and known to nothing forever.
-- Many chunks go in one call: a batch of small copies would otherwise cost a round trip each.
-- Returns, per chunk in order, 1 when marked, 0 when refused.
-- KEYS: present, missing, copy failures, gc-claims, gc-deleted, copied, refs, unreferenced
-- ARGV: per chunk: id, since ms ('' checks only claims), bytes copied ('' when found, not copied)
local out = {}
local now = now_ms()
local copies, copied_bytes = 0, 0
for i = 1, #ARGV, 3 do
  local id, since, bytes = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local marked = redis.call('HEXISTS', KEYS[4], id) == 0
  if marked and since then
    local gone = redis.call('ZSCORE', KEYS[5], id)
    if gone and tonumber(gone) >= since then marked = false end
  end
  if marked then
    if redis.call('HEXISTS', KEYS[7], id) == 0 then redis.call('ZADD', KEYS[8], 'NX', now, id) end
    redis.call('SADD', KEYS[1], id)
    redis.call('SREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    if bytes then
      copies = copies + 1
      copied_bytes = copied_bytes + bytes
    end
  end
  out[#out + 1] = marked and 1 or 0
end
if copies > 0 then
  redis.call('HINCRBY', KEYS[6], 'chunks', copies)
  redis.call('HINCRBY', KEYS[6], 'bytes', copied_bytes)
end
return out
