-- prune.lua: finish a full resync for a page of the mirror's paths.
-- Guarantees: a path the snapshot did not contain (not in `seen`) and whose version is not newer
-- than the snapshot id is removed with its reference counts, atomically; paths the snapshot had,
-- or written after it, stay. When ARGV[2] is '1' (the last page) the cursor becomes the snapshot
-- id and the seen set is dropped, in the same step, so the log is read on from exactly there.
-- Returns the number of entries removed.
-- KEYS: entries, paths, refs, unreferenced, seen, cursor
-- ARGV: snapshot id, last page ('1'/'0'), paths…
local entries, paths, refs, unref, seen, cursor_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local snapshot = ARGV[1]
local deltas = new_deltas()
local removed = 0
for i = 3, #ARGV do
  local path = ARGV[i]
  if redis.call('SISMEMBER', seen, path) == 0 then
    local old = redis.call('HGET', entries, path)
    local version = old and stored_version(old)
    if old and not id_less(snapshot, version) then
      add_stored_chunks(deltas, old, -1)
      redis.call('HDEL', entries, path)
      redis.call('ZREM', paths, path)
      removed = removed + 1
    end
  end
end
apply_deltas(deltas, refs, unref, redis.call('TIME')[1] * 1000)
if ARGV[2] == '1' then
  redis.call('SET', cursor_key, snapshot)
  redis.call('DEL', seen)
end
return removed
