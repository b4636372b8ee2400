-- prune.lua: finish a full resync, one page of the mirror's paths at a time.
-- Guarantees: nothing changes for a caller whose fencing token is not the current one (error
-- reply FERRY_FENCED) or for a resync that is not the one running ({'stale', state}). Nothing is
-- removed unless the seen set accounts for every page the resync applied (each page's marker is
-- in it): otherwise the resync is marked 'incomplete' and {'incomplete', pages, markers found} is
-- returned, so a seen set lost to an eviction, a flush or a person cannot turn into deletions; the
-- watcher starts the resync over. Otherwise, atomically: a path the scan did not return (not in
-- `seen`) is removed with its reference counts (and from the missing set), whatever its version:
-- nothing but the resync's own pages writes entries while it runs (apply.lua refuses to), and an
-- entry newer than the snapshot that the source does not have comes from a future the source
-- lost (a rollback or a flush). Paths the scan returned stay. When
-- ARGV[3] is '1' (the last page) the cursor becomes the snapshot id, the tracking hash takes the
-- epoch and the count of records the source had added at the snapshot, the seen set is dropped
-- and the resync is 'done', in the same step, so the log is read on from exactly there.
-- Returns {'ok', removed}.
-- KEYS: entries, paths, refs, unreferenced, seen, cursor, resync, fence, present, missing, tracking,
-- copy failures
-- ARGV: token, resync id, last page ('1'/'0'), paths…
local entries, paths, refs, unref, seen, cursor_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local resync, fence, present, missing, tracking = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local failures = KEYS[12]
local refused = fence_refusal(fence, ARGV[1])
if refused then return refused end
local info = redis.call('HMGET', resync, 'id', 'state', 'pages', 'seen', 'snapshot', 'epoch', 'added')
if info[1] ~= ARGV[2] or info[2] ~= 'running' or info[4] ~= seen then return { 'stale', tostring(info[2]) } end
local pages, snapshot = tonumber(info[3]) or 0, info[5]

-- Every page's marker, checked in slices (unpack() of a long list would overflow Lua's C stack).
local found = 0
for first = 1, pages, 500 do
  local markers = {}
  for n = first, math.min(first + 499, pages) do markers[#markers + 1] = page_marker(n) end
  for _, flag in ipairs(redis.call('SMISMEMBER', seen, unpack(markers))) do found = found + flag end
end
if found ~= pages then
  redis.call('HSET', resync, 'state', 'incomplete', 'problem', 'the seen set holds ' .. found .. ' of ' .. pages .. ' page markers')
  return { 'incomplete', pages, found }
end

local deltas, writes = new_deltas(), new_writes()
local removed = 0
local listed, unseen = {}, {}
for i = 4, #ARGV do listed[#listed + 1] = ARGV[i] end
for k, flag in ipairs(read_many('SMISMEMBER', seen, listed)) do
  if flag == 0 then unseen[#unseen + 1] = listed[k] end
end
-- Reads came before any write: a path listed twice is removed once.
local gone = {}
for k, old in ipairs(read_many('HMGET', entries, unseen)) do
  if old and not gone[unseen[k]] then
    gone[unseen[k]] = true
    remove_stored(writes, deltas, unseen[k], old)
    removed = removed + 1
  end
end
flush_writes(entries, paths, writes)
apply_deltas(deltas, refs, unref, now_ms(), present, missing, nil, nil, failures)
redis.call('HINCRBY', resync, 'removed', removed)
if ARGV[3] == '1' then
  redis.call('SET', cursor_key, snapshot)
  redis.call('HSET', tracking, 'epoch', info[6], 'added', info[7])
  -- UNLINK: the seen set holds every path (10⁶ at a million files); DEL would free it here, for
  -- about 200 ms, UNLINK in a background thread.
  redis.call('UNLINK', seen)
  redis.call('HSET', resync, 'state', 'done', 'finished', now_ms())
end
return { 'ok', removed }
