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
-- A chunk a running put holds (gc-holds, see hold.lua) is not claimed either: it stays in
-- unreferenced and counts as kept. In a mirror nothing is claimed unless its metadata is whole
-- (common.lua gc_refusal: a cursor, no resync under way, the caller's fencing token current):
-- {'refused', reason}. A few expired holds are dropped per call.
-- Returns { claimable ids, held (flat: id, mirrors behind joined by ","), members read, claim ms,
-- kept by holds }, or { 'refused', reason }.
-- KEYS: unreferenced, unreferenced-by, refs, gc-claims, acks (the hash acks were kept in before
-- each mirror had its own key: read when a mirror's key is absent), gc-holds, cursor, resync,
-- fence, then each mirror's ack key (source only), in the order of the names in ARGV
-- ARGV: cutoff ms, offset, limit, dry ('1' or '0'), mirror ('1' or '0'), token ('' without a
-- lease), mirror names (source only)…
local unref, by_key, refs, claims, acks, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local cutoff, offset, limit, dry = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local refusal = gc_refusal(ARGV[5] == '1', KEYS[7], KEYS[8], KEYS[9], ARGV[6])
if refusal then return { 'refused', refusal } end
local now = now_ms()
if not dry then
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', '(' .. now, 'LIMIT', 0, 500)
  if #expired > 0 then redis.call('ZREM', holds, unpack(expired)) end
end

local mirrors = {}
for i = 7, #ARGV do
  local ack = redis.call('GET', KEYS[i + 3]) or redis.call('HGET', acks, ARGV[i])
  mirrors[#mirrors + 1] = { name = ARGV[i], ack = ack }
end

local members = redis.call('ZRANGEBYSCORE', unref, '-inf', cutoff, 'WITHSCORES', 'LIMIT', offset, limit)
local claimable, held, kept = {}, {}, 0
for i = 1, #members, 2 do
  local id, score = members[i], members[i + 1]
  if redis.call('HEXISTS', refs, id) == 1 then
    -- Not a candidate (a script left it behind): referenced chunks are never collected.
    if not dry then redis.call('ZREM', unref, id) end
  elseif is_held(holds, id, now) then
    kept = kept + 1
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
return { claimable, held, #members / 2, tostring(now), kept }
