-- apply.lua: apply one change record of the source's log to a mirror, atomically with its cursor.
-- Guarantees: nothing is written by a caller whose fencing token is not the current one (an
-- error reply FERRY_FENCED), nor while a full resync is unfinished ({'resync', state}: the log may
-- only be read on from a finished resync's snapshot id). A record at or before the cursor changes
-- nothing ({'skip', cursor}), so replays after a crash are harmless. Otherwise, in this one step:
-- every `del` path whose stored version is older than the record is removed; every `put` entry is
-- stored with version = the record id unless the stored version is already as new (a resync may
-- have written a newer one); reference counts and the set of missing chunks follow (a count
-- reaching 0 leaves refs and enters unreferenced); the cursor becomes the record id, and the
-- tracking hash's `added` (records the source ever added up to this one) is set when known.
-- Returns {'ok', id, written, removed}.
-- KEYS: entries, paths, refs, unreferenced, cursor, fence, resync, present, missing, tracking,
-- copy failures
-- ARGV: token, id, added ('' when unknown), number of del paths, del paths…, then per put entry:
-- path, rest, chunk ids
local entries, paths, refs, unref, cursor_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local fence, resync, present, missing, tracking = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local failures = KEYS[11]
local refused = fence_refusal(fence, ARGV[1])
if refused then return refused end
local id, added = ARGV[2], ARGV[3]

local state = redis.call('HGET', resync, 'state')
if state == 'running' or state == 'incomplete' then return { 'resync', state } end
local cursor = redis.call('GET', cursor_key)
if cursor and not id_less(cursor, id) then return { 'skip', cursor } end

local deltas, writes = new_deltas(), new_writes()
local removed, written = 0, 0
local ndel = tonumber(ARGV[4])
local dels, puts = {}, {}
for i = 5, 4 + ndel do dels[#dels + 1] = ARGV[i] end
for i = 5 + ndel, #ARGV, 3 do puts[#puts + 1] = ARGV[i] end
local old_dels, old_puts = read_many('HMGET', entries, dels), read_many('HMGET', entries, puts)
-- Reads came before any write: a path named twice is handled once, and one removed here is
-- put as new.
local gone, put = {}, {}
for k, path in ipairs(dels) do
  local old = old_dels[k]
  if old and not gone[path] and id_less(stored_version(old), id) then
    remove_stored(writes, deltas, path, old)
    gone[path] = true
    removed = removed + 1
  end
end
for k, path in ipairs(puts) do
  local i = 5 + ndel + (k - 1) * 3
  local old = not gone[path] and old_puts[k] or nil
  if not put[path] and (not old or id_less(stored_version(old), id)) then
    put[path] = true
    put_stored(writes, deltas, path, id, ARGV[i + 1], ARGV[i + 2], old)
    written = written + 1
  end
end
flush_writes(entries, paths, writes)
-- Unreferenced from now, the mirror's own time: the grace counts from when this region dropped
-- the chunk, not from when the source did (a mirror that lags would collect at once).
apply_deltas(deltas, refs, unref, now_ms(), present, missing, nil, nil, failures)
redis.call('SET', cursor_key, id)
if added ~= '' then redis.call('HSET', tracking, 'added', added) end
return { 'ok', id, written, removed }
