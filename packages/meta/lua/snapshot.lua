-- snapshot.lua: apply a page of the source's entries during a full resync.
-- Guarantees: each path is remembered in the resync's `seen` set; an entry is stored (with its
-- own version) only when the mirror has none or an older one, so pages seen twice and entries
-- already newer are harmless; reference counts follow in the same step. The cursor is not moved
-- (prune.lua finishes the resync). Returns the number of entries written.
-- KEYS: entries, paths, refs, unreferenced, seen
-- ARGV: per entry: path, version, rest, chunk ids
local entries, paths, refs, unref, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deltas = new_deltas()
local written = 0
local now = redis.call('TIME')[1] * 1000
for i = 1, #ARGV, 4 do
  local path, version = ARGV[i], ARGV[i + 1]
  redis.call('SADD', seen, path)
  local old = redis.call('HGET', entries, path)
  local old_version = old and stored_version(old)
  if not old or id_less(old_version, version) then
    if old then add_stored_chunks(deltas, old, -1) end
    add_id_list(deltas, ARGV[i + 3], 1)
    redis.call('HSET', entries, path, stored_entry(version, path, ARGV[i + 2]))
    redis.call('ZADD', paths, 0, path)
    written = written + 1
  end
end
apply_deltas(deltas, refs, unref, now)
return written
