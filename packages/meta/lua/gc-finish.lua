-- gc-finish.lua: end the claims of chunks whose objects garbage collection has deleted.
-- Part of the protocol written down in gc-claim.lua. Guarantees, in one step per batch: each
-- chunk leaves gc-claims and enters gc-deleted with the time now (commit.lua and present.lua
-- refuse it to anyone who looked at the store before then); its sha256 record in exthash goes
-- (the copy that record described is gone); in a mirror it
-- leaves present, and if an applied record references it again it enters missing, so the
-- reconciler copies it back; the gc hash counts the chunks and bytes reclaimed. gc-deleted members
-- older than `keep` ms are dropped (a commit whose look at the store is older than that is refused
-- as stale, see commit.lua).
-- Returns the number of claims ended.
-- KEYS: gc-claims, gc-deleted, exthash, gc info, present, missing, refs
-- ARGV: bytes reclaimed, keep ms, mirror ('1': present, missing and refs are a mirror's), chunk ids…
local claims, deleted, exthash, info = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local present, missing, refs = KEYS[5], KEYS[6], KEYS[7]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ended = 0
local mirror = ARGV[3] == '1'
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HDEL', claims, id) == 1 then ended = ended + 1 end
  redis.call('ZADD', deleted, now, id)
  redis.call('HDEL', exthash, id)
  if mirror then
    redis.call('SREM', present, id)
    if redis.call('HEXISTS', refs, id) == 1 then redis.call('SADD', missing, id) end
  end
end
redis.call('ZREMRANGEBYSCORE', deleted, '-inf', '(' .. tostring(now - tonumber(ARGV[2])))
redis.call('HINCRBY', info, 'reclaimed-chunks', #ARGV - 3)
redis.call('HINCRBY', info, 'reclaimed-bytes', ARGV[1])
return ended
