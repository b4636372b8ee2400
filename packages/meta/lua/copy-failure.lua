-- copy-failure.lua: keep the last failure of a chunk's copy, for `ferry status` and retry-failed.
-- Guarantees: a failure is kept only for a chunk the region still references and its store does
-- not hold. Two jobs can carry the same chunk (a retry and the reconciler's request); when one
-- succeeds (present.lua clears the failure) and the other fails after it, the late failure must
-- not bring back a failure record for a chunk that is there. Returns 1 when kept, 0 when dropped.
-- KEYS: copy failures, present, refs
-- ARGV: chunk id, failure JSON
local id = ARGV[1]
if redis.call('SISMEMBER', KEYS[2], id) == 1 then return 0 end
if redis.call('HEXISTS', KEYS[3], id) == 0 then return 0 end
redis.call('HSET', KEYS[1], id, ARGV[2])
return 1
