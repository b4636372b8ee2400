-- hold.lua: a running put holds the chunks it relies on, so garbage collection leaves them alone
-- until it commits (or stops renewing).
-- Guarantees: each given chunk that GC has not claimed is in gc-holds until at least now + ttl
-- (a longer hold by another put is kept); gc-claim.lua and gc-orphans.lua claim no chunk whose
-- hold has not expired. A claimed chunk is not held and is returned: its object is being deleted,
-- so the put waits for the claim to end and uploads it. A renewal passes the expiry its last call
-- returned: when that moment has passed, the put's holds may have lapsed (a claim could have
-- slipped in), so nothing is renewed and {'lapsed'} says so; the put then relies on its `since`
-- (commit.lua) instead. Hence: a chunk a put held, and kept held without a lapse since before it
-- looked at the store, cannot have been claimed after that look.
-- Returns { expiry ms, claimed ids… } or { 'lapsed' }.
-- KEYS: gc-holds, gc-claims
-- ARGV: ttl ms, previous expiry ('' for a first hold), chunk ids…
local holds, claims = KEYS[1], KEYS[2]
local now = now_ms()
if ARGV[2] ~= '' and tonumber(ARGV[2]) < now then return { 'lapsed' } end
local expiry = now + tonumber(ARGV[1])
local out = { tostring(expiry) }
local adds = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', claims, id) == 1 then
    out[#out + 1] = id
  else
    adds[#adds + 1] = expiry
    adds[#adds + 1] = id
  end
end
if #adds > 0 then redis.call('ZADD', holds, 'GT', unpack(adds)) end
return out
