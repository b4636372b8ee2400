-- gc-orphans.lua: claim store objects under the chunk prefix that no record here knows.
-- Part of the protocol of gc-claim.lua: an orphan (left by a killed put or copy, or by a lost
-- Redis) is deleted only through a claim, so a writer that found it in the store and skipped its
-- upload has its commit refused (gc-deleted) like for any collected chunk.
-- Guarantees: a chunk is claimed only when it is not referenced, not in unreferenced (that set
-- has its own rules: grace and acks), not already claimed, not held by a running put (gc-holds:
-- what a put staged and has not committed yet) and, in a mirror, not present. In a mirror nothing
-- is claimed unless its metadata is whole (common.lua gc_refusal): after a flush or during a
-- resync every object would look like an orphan.
-- Returns the ids claimed, or { 'refused', reason }.
-- KEYS: refs, unreferenced, gc-claims, present, gc-holds, cursor, resync, fence
-- ARGV: mirror ('1' or '0'), token ('' without a lease), chunk ids…
local refusal = gc_refusal(ARGV[1] == '1', KEYS[6], KEYS[7], KEYS[8], ARGV[2])
if refusal then return { 'refused', refusal } end
local now = now_ms()
local stamp = tostring(now)
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 0 and not redis.call('ZSCORE', KEYS[2], id)
    and redis.call('HEXISTS', KEYS[3], id) == 0 and redis.call('SISMEMBER', KEYS[4], id) == 0
    and not is_held(KEYS[5], id, now) then
    redis.call('HSET', KEYS[3], id, stamp)
    out[#out + 1] = id
  end
end
return out
