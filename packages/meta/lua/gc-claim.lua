-- gc-claim.lua: take a batch of unreferenced chunks for garbage collection, in one short step.
-- The protocol (with commit.lua, gc-finish.lua and present.lua):
--   1. claim (this script): a chunk unreferenced since at most `cutoff` (grace) and, in the
--      source, whose dropping record every mirror has acknowledged (each mirror's ack in acks ≥
--      the id in unreferenced-by), leaves unreferenced and enters gc-claims with the claim time;
--   2. the caller deletes the chunk's object from the region's store;
--   3. finish (gc-finish.lua): the claim leaves gc-claims and the chunk enters gc-deleted with the
--      time of the finish.
-- A writer that found the chunk referenced or in the store and skipped its upload commits with
-- the time it started looking; commit.lua refuses a claimed chunk, and one deleted at or after
-- that time, so no entry ever references an object GC deleted; the writer uploads it again. A
-- claim is never undone: once claimed, the object goes.
-- Guarantees: only chunks in unreferenced at or before `cutoff` and without a reference are
-- claimed; in the source (mirror names given) none whose dropping record some mirror has not
-- acknowledged (a chunk without a recorded record waits for acks past its unreferenced time);
-- `dry` claims nothing and reports what would be claimed. Reads at most `limit` members from
-- `offset`, so one call stays short whatever the set's size.
-- Returns { claimable ids, held (flat: id, mirrors behind joined by ","), members read, claim ms }.
-- KEYS: unreferenced, unreferenced-by, refs, gc-claims, acks
-- ARGV: cutoff ms, offset, limit, dry ('1' or '0'), mirror names…
local unref, by_key, refs, claims, acks = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local cutoff, offset, limit, dry = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local mirrors = {}
for i = 5, #ARGV do mirrors[#mirrors + 1] = { name = ARGV[i], ack = redis.call('HGET', acks, ARGV[i]) } end

local members = redis.call('ZRANGEBYSCORE', unref, '-inf', cutoff, 'WITHSCORES', 'LIMIT', offset, limit)
local claimable, held = {}, {}
for i = 1, #members, 2 do
  local id, score = members[i], members[i + 1]
  if redis.call('HEXISTS', refs, id) == 1 then
    -- Not a candidate (a script left it behind): referenced chunks are never collected.
    if not dry then redis.call('ZREM', unref, id) end
  else
    local behind = {}
    if #mirrors > 0 then
      -- Without a recorded record, any record of that millisecond may be it: wait for a later one.
      local dropped = redis.call('HGET', by_key, id) or (string.format('%d', tonumber(score)) .. '-99999999999999999999')
      for _, m in ipairs(mirrors) do
        if not m.ack or id_less(m.ack, dropped) then behind[#behind + 1] = m.name end
      end
    end
    if #behind > 0 then
      held[#held + 1] = id
      held[#held + 1] = table.concat(behind, ',')
    else
      claimable[#claimable + 1] = id
    end
  end
end
if not dry and #claimable > 0 then
  local pairs_ = {}
  for _, id in ipairs(claimable) do
    pairs_[#pairs_ + 1] = id
    pairs_[#pairs_ + 1] = tostring(now)
  end
  redis.call('ZREM', unref, unpack(claimable))
  redis.call('HDEL', by_key, unpack(claimable))
  redis.call('HSET', claims, unpack(pairs_))
end
return { claimable, held, #members / 2, tostring(now) }
