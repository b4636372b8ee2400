-- apply.lua: apply one change record of the source's log to a mirror, atomically with its cursor.
-- Guarantees: a record at or before the cursor changes nothing ({'skip', cursor}), so replays
-- after a crash are harmless. Otherwise, in this one step: every `del` path whose stored version
-- is older than the record is removed; every `put` entry is stored with version = the record id
-- unless the stored version is already as new (a resync may have written a newer one); reference
-- counts follow (a count reaching 0 leaves refs and enters unreferenced); the cursor becomes the
-- record id. Returns {'ok', id, written, removed}.
-- KEYS: entries, paths, refs, unreferenced, cursor
-- ARGV: id, number of del paths, del paths…, then per put entry: path, rest, chunk ids
local entries, paths, refs, unref, cursor_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]

local cursor = redis.call('GET', cursor_key)
if cursor and not id_less(cursor, id) then return { 'skip', cursor } end


local deltas = new_deltas()
local removed, written = 0, 0
local ndel = tonumber(ARGV[2])
for i = 3, 2 + ndel do
  local path = ARGV[i]
  local old = redis.call('HGET', entries, path)
  if old and id_less(stored_version(old), id) then
    add_stored_chunks(deltas, old, -1)
    redis.call('HDEL', entries, path)
    redis.call('ZREM', paths, path)
    removed = removed + 1
  end
end
for i = 3 + ndel, #ARGV, 3 do
  local path = ARGV[i]
  local old = redis.call('HGET', entries, path)
  if not old or id_less(stored_version(old), id) then
    if old then add_stored_chunks(deltas, old, -1) end
    add_id_list(deltas, ARGV[i + 2], 1)
    redis.call('HSET', entries, path, stored_entry(id, path, ARGV[i + 1]))
    redis.call('ZADD', paths, 0, path)
    written = written + 1
  end
end
apply_deltas(deltas, refs, unref, id_ms(id))
redis.call('SET', cursor_key, id)
return { 'ok', id, written, removed }
