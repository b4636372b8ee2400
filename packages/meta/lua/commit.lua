-- commit.lua: write a batch of entries as ONE change record, atomically.
-- Guarantees: either nothing changes, because a path is an existing directory ({'dir', path}) or
-- an ancestor of a path is an existing file ({'file', path, ancestor}); or, all in this one step:
-- one record (op put, put = every entry, del = []) is appended, every entry is stored with version
-- = the record id and is in the path index, and chunk reference counts change by +1 per chunk
-- occurrence of the new entries and -1 per occurrence in the entries they replace (a count
-- reaching 0 leaves refs and enters unreferenced with the record's time); the volume's epoch is
-- made if there is none (the first commit makes the volume).
-- Returns {'ok', id, count}.
-- KEYS: entries, paths, log, refs, unreferenced, epoch
-- ARGV: maxlen, epoch candidate, then per entry: path, rest (src/entry.ts), space-separated chunk ids.
-- The caller has checked the batch itself: valid entries, no path twice, none under another.
local entries, paths, log, refs, unref = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local first = 3

local known = {}
for i = first, #ARGV, 3 do
  local path = ARGV[i]
  if is_dir(paths, path) then return { 'dir', path } end
  local ancestor = file_ancestor(entries, path, known)
  if ancestor then return { 'file', path, ancestor } end
end

local items = {}
for i = first, #ARGV, 3 do items[#items + 1] = log_entry(ARGV[i], ARGV[i + 1]) end
ensure_epoch(KEYS[6], ARGV[2])
local id = append_record(log, ARGV[1], 'put', items, {})

local deltas = new_deltas()
for i = first, #ARGV, 3 do
  local path = ARGV[i]
  local old = redis.call('HGET', entries, path)
  if old then add_stored_chunks(deltas, old, -1) end
  add_id_list(deltas, ARGV[i + 2], 1)
  redis.call('HSET', entries, path, stored_entry(id, path, ARGV[i + 1]))
  redis.call('ZADD', paths, 0, path)
end
apply_deltas(deltas, refs, unref, id_ms(id))
return { 'ok', id, #items }
