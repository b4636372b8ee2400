-- reconcile.lua: bring the set of missing chunks in line with the references and the store, for
-- a batch of chunk ids.
-- Guarantees: nothing changes for a caller whose fencing token is not the current one (error
-- reply FERRY_FENCED). Otherwise, atomically per batch: a chunk referenced here and not marked
-- present is in the missing set; any other chunk is not, and its copy failure record (if any) is
-- dropped, since nothing needs that copy any more; the reconcile hash takes the given fields.
-- The watcher's reconciler runs it over every referenced chunk and every member of the missing
-- set, so counts kept by the scripts converge even for a mirror that synced before they existed.
-- Returns the ids of the batch that are missing.
-- KEYS: refs, present, missing, copy failures, fence, reconcile
-- ARGV: token, number of info fields n, n field/value pairs…, chunk ids…
local refs, present, missing, failures, fence, reconcile = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local refused = fence_refusal(fence, ARGV[1])
if refused then return refused end
local ninfo = tonumber(ARGV[2])
for i = 3, 2 + 2 * ninfo, 2 do redis.call('HSET', reconcile, ARGV[i], ARGV[i + 1]) end
local out = {}
for i = 3 + 2 * ninfo, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', refs, id) == 1 and redis.call('SISMEMBER', present, id) == 0 then
    redis.call('SADD', missing, id)
    out[#out + 1] = id
  else
    redis.call('SREM', missing, id)
    redis.call('HDEL', failures, id)
  end
end
return out
