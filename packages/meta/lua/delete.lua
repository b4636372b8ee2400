-- delete.lua: remove a file, or (recursive) every file under a directory, as ONE change record.
-- Guarantees: either nothing changes ({'notfound', path}; {'isdir', path} when the path is a
-- directory and recursive is off), or, all in this one step: one record (op delete, put = [],
-- del = every removed path) is appended, the entries leave the hash and the path index, and each
-- chunk occurrence of a removed entry lowers its reference count by 1 (a count reaching 0 leaves
-- refs and enters unreferenced with the record's time).
-- Returns {'ok', id, removed}.
-- KEYS: entries, paths, log, refs, unreferenced
-- ARGV: maxlen, path, recursive ('1' or '0')
local entries, paths, log, refs, unref = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local path, recursive = ARGV[2], ARGV[3] == '1'

local victims
if path ~= '/' and redis.call('HEXISTS', entries, path) == 1 then
  victims = { path }
elseif not recursive then
  if is_dir(paths, path) then return { 'isdir', path } end
  return { 'notfound', path }
else
  local lo, hi = under_bounds(path)
  victims = redis.call('ZRANGEBYLEX', paths, lo, hi)
  if #victims == 0 then return { 'notfound', path } end
end

local del = {}
for i, victim in ipairs(victims) do del[i] = path_json(victim) end
local id = append_record(log, ARGV[1], 'delete', {}, del)

local deltas = new_deltas()
for _, victim in ipairs(victims) do
  local old = redis.call('HGET', entries, victim)
  if old then add_stored_chunks(deltas, old, -1) end
  redis.call('HDEL', entries, victim)
  redis.call('ZREM', paths, victim)
end
apply_deltas(deltas, refs, unref, id_ms(id))
return { 'ok', id, #victims }
