-- gc-orphans.lua: claim store objects under the chunk prefix that no record here knows.
-- Part of the protocol of gc-claim.lua: an orphan (left by a killed put or copy, or by a lost
-- Redis) is deleted only through a claim, so a writer that found it in the store and skipped its
-- upload has its commit refused (gc-deleted) like for any collected chunk.
-- Guarantees: a chunk is claimed only when it is not referenced, not in unreferenced (that set
-- has its own rules: grace and acks), not already claimed and, in a mirror, not present.
-- Returns the ids claimed.
-- KEYS: refs, unreferenced, gc-claims, present
-- ARGV: chunk ids…
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 0 and not redis.call('ZSCORE', KEYS[2], id)
    and redis.call('HEXISTS', KEYS[3], id) == 0 and redis.call('SISMEMBER', KEYS[4], id) == 0 then
    redis.call('HSET', KEYS[3], id, now)
    out[#out + 1] = id
  end
end
return out
