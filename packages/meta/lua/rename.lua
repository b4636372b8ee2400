-- rename.lua: move a file, or every file under a directory, to a new path as ONE change record.
-- Guarantees: either nothing changes ({'notfound', from}; {'exists', to} when the target is a
-- file or a directory; {'file', to, ancestor} when an ancestor of the target is a file;
-- {'toolong', newpath} when a moved path would exceed 1024 bytes), or, all in this one step: one
-- record (op rename, del = old paths, put = moved entries) is appended, each moved entry is
-- stored under its new path with version = the record id, and the path index follows. Chunk
-- reference counts do not change: the same chunks stay referenced the same number of times.
-- Returns {'ok', id, moved}.
-- KEYS: entries, paths, log
-- ARGV: maxlen, from, to. The caller has checked that neither is "/" and that `to` is not `from`
-- or under it.
local entries, paths, log = KEYS[1], KEYS[2], KEYS[3]
local from, to = ARGV[2], ARGV[3]

local moved
if redis.call('HEXISTS', entries, from) == 1 then
  moved = { from }
else
  local lo, hi = under_bounds(from)
  moved = redis.call('ZRANGEBYLEX', paths, lo, hi)
  if #moved == 0 then return { 'notfound', from } end
end
if redis.call('HEXISTS', entries, to) == 1 or is_dir(paths, to) then return { 'exists', to } end
local ancestor = file_ancestor(entries, to, nil)
if ancestor then return { 'file', to, ancestor } end

local targets, rests, puts, dels = {}, {}, {}, {}
for i, old in ipairs(moved) do
  local target = to .. string.sub(old, #from + 1)
  if #target > 1024 then return { 'toolong', target } end
  targets[i] = target
  rests[i] = stored_rest(redis.call('HGET', entries, old), old)
  puts[i] = log_entry(target, rests[i])
  dels[i] = path_json(old)
end
local id = append_record(log, ARGV[1], 'rename', puts, dels)

for _, old in ipairs(moved) do
  redis.call('HDEL', entries, old)
  redis.call('ZREM', paths, old)
end
for i, target in ipairs(targets) do
  redis.call('HSET', entries, target, stored_entry(id, target, rests[i]))
  redis.call('ZADD', paths, 0, target)
end
return { 'ok', id, #moved }
