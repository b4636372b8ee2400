-- delete.lua: remove a file, or (recursive) the files under a directory, as ONE change record per
-- batch.
-- Guarantees: either nothing changes ({'notfound', path}; {'isdir', path} when the path is a
-- directory and recursive is off), or, all in this one step: one record (op delete, put = [],
-- del = every removed path) is appended, the entries leave the hash and the path index, and each
-- chunk occurrence of a removed entry lowers its reference count by 1 (a count reaching 0 leaves
-- refs and enters unreferenced with the record's time). A directory goes in batches of at most
-- `max files` paths and, after the first, `max chunks` chunk occurrences and `max bytes` of
-- stored entries (the work of this script and of a mirror's apply grows with them), in path
-- order, so one call stays short and its record small; `more` is 1 when files are left under the
-- directory (the caller calls again). A directory that fits in one batch is removed in one
-- record, as before batches existed.
-- Returns {'ok', id, removed, more}.
-- The record that drops a chunk's last reference is kept with it in unreferenced-by (garbage
-- collection in the source waits until every mirror has acknowledged it).
-- KEYS: entries, paths, log, refs, unreferenced, epoch, unreferenced-by
-- ARGV: maxlen, path, recursive ('1' or '0'), max files, max chunks, max bytes, epoch candidate
local entries, paths, log, refs, unref = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local path, recursive = ARGV[2], ARGV[3] == '1'
local max_files, max_chunks, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local victims, stored
local lo, hi = under_bounds(path)
local single = path ~= '/' and redis.call('HGET', entries, path)
if single then
  victims, stored = { path }, { single }
elseif not recursive then
  if is_dir(paths, path) then return { 'isdir', path } end
  return { 'notfound', path }
else
  local candidates = redis.call('ZRANGEBYLEX', paths, lo, hi, 'LIMIT', 0, max_files)
  if #candidates == 0 then return { 'notfound', path } end
  victims, stored = take_batch(entries, candidates, max_chunks, max_bytes)
end

local del = {}
for i, victim in ipairs(victims) do del[i] = path_json(victim) end
ensure_epoch(KEYS[6], ARGV[7])
local id = append_record(log, ARGV[1], 'delete', {}, del)

local deltas, writes = new_deltas(), new_writes()
for i, victim in ipairs(victims) do
  remove_stored(writes, deltas, victim, stored[i])
end
flush_writes(entries, paths, writes)
apply_deltas(deltas, refs, unref, id_ms(id), nil, nil, KEYS[7], id)
local more = 0
if not single and #redis.call('ZRANGEBYLEX', paths, lo, hi, 'LIMIT', 0, 1) > 0 then more = 1 end
return { 'ok', id, #victims, more }
