-- rename.lua: move a file, or the files under a directory, to a new path as ONE change record per
-- batch.
-- Guarantees: either nothing changes ({'notfound', from}; {'exists', to} when the target is a
-- file or a directory, or a moved file's new path is taken; {'file', to, ancestor} when an
-- ancestor of the target is a file; {'toolong', newpath} when a moved path would exceed 1024
-- bytes; {'busy', other} when a batched move of `from` to another target is unfinished), or, all in
-- this one step: one record (op rename, del = old paths, put = moved entries) is appended, each
-- moved entry is stored under its new path with version = the record id, and the path index
-- follows. Chunk reference counts do not change: the same chunks stay referenced the same number
-- of times. A directory goes in batches of at most `max files` files and, after the first, `max
-- chunks` chunk occurrences and `max bytes` of entries (the record holds them all; a mirror's
-- apply of it works through every chunk), in path order; while files are left under
-- `from` (`more` = 1) the move is remembered in `moves`, so the caller's next call, or the same
-- command run again after an interruption, continues it into the target it already created. A
-- directory that fits in one batch moves in one record, as before batches existed.
-- Returns {'ok', id, moved, more}.
-- KEYS: entries, paths, log, moves, epoch
-- ARGV: maxlen, from, to, max files, max chunks, max bytes, epoch candidate. The caller has checked that
-- neither is "/" and that `to` is not `from` or under it.
local entries, paths, log, moves = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local from, to = ARGV[2], ARGV[3]
local max_files, max_chunks, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local lo, hi = under_bounds(from)
local pending = redis.call('HGET', moves, from)
local single = redis.call('HGET', entries, from)
local moved, stored
if single then
  moved, stored = { from }, { single }
  pending = false
else
  if pending and pending ~= to then return { 'busy', pending } end
  local candidates = redis.call('ZRANGEBYLEX', paths, lo, hi, 'LIMIT', 0, max_files)
  if #candidates == 0 then
    if pending then redis.call('HDEL', moves, from) end
    return { 'notfound', from }
  end
  moved, stored = take_batch(entries, candidates, max_chunks, max_bytes)
end
-- Continuing a batched move: the target directory is the one its earlier batches made.
if redis.call('HEXISTS', entries, to) == 1 or (not pending and is_dir(paths, to)) then return { 'exists', to } end
local ancestor = file_ancestor(entries, to, nil)
if ancestor then return { 'file', to, ancestor } end

local targets, rests, puts, dels = {}, {}, {}, {}
for i, old in ipairs(moved) do
  local target = to .. string.sub(old, #from + 1)
  if #target > 1024 then return { 'toolong', target } end
  if pending and redis.call('HEXISTS', entries, target) == 1 then return { 'exists', target } end
  targets[i] = target
  rests[i] = stored_rest(stored[i], old)
  puts[i] = log_entry(target, rests[i])
  dels[i] = path_json(old)
end
ensure_epoch(KEYS[5], ARGV[7])
local id = append_record(log, ARGV[1], 'rename', puts, dels)

for _, old in ipairs(moved) do
  redis.call('HDEL', entries, old)
  redis.call('ZREM', paths, old)
end
for i, target in ipairs(targets) do
  redis.call('HSET', entries, target, stored_entry(id, target, rests[i]))
  redis.call('ZADD', paths, 0, target)
end
local more = 0
if not single and #redis.call('ZRANGEBYLEX', paths, lo, hi, 'LIMIT', 0, 1) > 0 then more = 1 end
if more == 1 then
  redis.call('HSET', moves, from, to)
elseif pending then
  redis.call('HDEL', moves, from)
end
return { 'ok', id, #moved, more }
