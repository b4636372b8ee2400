-- common.lua: helpers prepended to every script of this folder when it is loaded (src/scripts.ts).
-- On its own it guarantees nothing and writes nothing. It is the Lua side of the entry layout of
-- src/entry.ts: scripts splice entry JSON as text and never re-encode it (cjson would turn [] into
-- {}, escape "/" and round large numbers).

-- JSON text of a normalised path: no backslash or control character, so only quotes are escaped.
local function path_json(path)
  return '"' .. (string.gsub(path, '"', '\\"')) .. '"'
end

-- ZRANGEBYLEX bounds of every path strictly under directory `dir`, and the common prefix.
-- The upper bound replaces the trailing "/" with "0", the next byte.
local function under_bounds(dir)
  local prefix = dir == '/' and '/' or dir .. '/'
  return '[' .. prefix, '(' .. string.sub(prefix, 1, -2) .. '0', prefix
end

-- True when some file lies under `path`, i.e. it is an (implicit) directory.
local function is_dir(paths_key, path)
  local lo, hi = under_bounds(path)
  return #redis.call('ZRANGEBYLEX', paths_key, lo, hi, 'LIMIT', 0, 1) > 0
end

-- The first proper ancestor of `path` that is a file, or nil. `known` (optional) caches answers
-- across the entries of one batch.
local function file_ancestor(entries_key, path, known)
  for i = 2, #path do
    if string.byte(path, i) == 47 then
      local ancestor = string.sub(path, 1, i - 1)
      local hit = known and known[ancestor]
      if hit == nil then
        hit = redis.call('HEXISTS', entries_key, ancestor) == 1
        if known then known[ancestor] = hit end
      end
      if hit then return ancestor end
    end
  end
  return nil
end

local function stored_entry(id, path, rest)
  return '{"version":"' .. id .. '","path":' .. path_json(path) .. ',' .. rest
end

local function log_entry(path, rest)
  return '{"path":' .. path_json(path) .. ',' .. rest
end

-- The version of a stored entry (its leading "version" field), or nil for any other text.
local function stored_version(stored)
  return string.match(stored, '^{"version":"(%d+%-%d+)"')
end

-- The <rest> of a stored entry. Refuses (before any write) an entry whose layout it does not know.
local function stored_rest(stored, path)
  local head = '","path":' .. path_json(path) .. ','
  local at = string.find(stored, head, 1, true)
  if not at or string.sub(stored, 1, 12) ~= '{"version":"'
    or not string.match(string.sub(stored, 13, at - 1), '^%d+%-%d+$') then
    return error('ferry: entry of ' .. path .. ' does not have the layout of src/entry.ts')
  end
  return string.sub(stored, at + #head)
end

-- Chunk occurrences of a stored entry, counted without decoding it (each chunk has one "id").
local function chunk_count(stored)
  local _, n = string.gsub(stored, '"id":', '')
  return n
end

-- `cmd key` (HMGET, ZMSCORE, SMISMEMBER) for each of `fields`, asked 500 at a time: one call per
-- slice instead of one per field (a call from a script costs about as much as the work of a small
-- one, so a step of 250 files spends most of its time on calls when it makes one per file).
local function read_many(cmd, key, fields)
  local out = {}
  for first = 1, #fields, 500 do
    local got = redis.call(cmd, key, unpack(fields, first, math.min(first + 499, #fields)))
    for j = 1, #got do out[first + j - 1] = got[j] end
  end
  return out
end

-- The first `max_files` paths of `candidates` whose entries stay within `max_chunks` chunk
-- occurrences and `max_bytes` of entry text (a batch always takes its first path, whatever its
-- size), and their stored entries. What a record's apply costs in a mirror grows with these.
-- One HGET each: the loop stops at the first entry over the bounds, and an entry of a large file
-- is large (a 10 GiB file's is 100 KiB), so asking for all candidates at once costs more.
local function take_batch(entries_key, candidates, max_chunks, max_bytes)
  local taken, stored = {}, {}
  local chunks, bytes = 0, 0
  for _, path in ipairs(candidates) do
    local json = redis.call('HGET', entries_key, path)
    if json then
      chunks = chunks + chunk_count(json)
      bytes = bytes + #json
      if #taken > 0 and (chunks > max_chunks or bytes > max_bytes) then break end
      taken[#taken + 1] = path
      stored[#stored + 1] = json
    end
  end
  return taken, stored
end

-- Reference-count changes of one record, summed per chunk so that a chunk kept by a replacing
-- entry never passes through 0.
local function new_deltas()
  return { order = {}, by = {} }
end

local function add_delta(deltas, id, by)
  if deltas.by[id] == nil then
    deltas.by[id] = 0
    deltas.order[#deltas.order + 1] = id
  end
  deltas.by[id] = deltas.by[id] + by
end

local function add_id_list(deltas, ids, by)
  for id in string.gmatch(ids, '%S+') do add_delta(deltas, id, by) end
end

local function add_stored_chunks(deltas, stored, by)
  for _, chunk in ipairs(cjson.decode(stored).chunks) do add_delta(deltas, chunk.id, by) end
end

-- `cmd key args…` in slices of at most 1000 arguments (an even number: field/value and
-- score/member pairs stay whole); nothing for an empty list.
local function call_many(cmd, key, args)
  for first = 1, #args, 1000 do redis.call(cmd, key, unpack(args, first, math.min(first + 999, #args))) end
end

-- Counts that reach 0 leave `refs` and enter `unreferenced` at `ms`; counts that leave 0 leave
-- `unreferenced`. In a mirror (`present_key` and `missing_key` given) the set of referenced chunks
-- the store lacks follows in the same step, so its size is the number of missing chunks, and a
-- chunk nothing references any more loses its copy failure record (`failures_key`). In the
-- source (`by_key` given) the record `by_id` that dropped a chunk's last reference is kept with
-- it: garbage collection there waits until every mirror has acknowledged that record.
-- Counts are read and written 500 chunks at a time (HMGET, then one HSET), and each set changes
-- once per slice, not once per chunk: a step of small files has a new chunk per file.
local function apply_deltas(deltas, refs_key, unref_key, ms, present_key, missing_key, by_key, by_id, failures_key)
  local ids = {}
  for _, id in ipairs(deltas.order) do
    if deltas.by[id] ~= 0 then ids[#ids + 1] = id end
  end
  for first = 1, #ids, 500 do
    local last = math.min(first + 499, #ids)
    local counts = redis.call('HMGET', refs_key, unpack(ids, first, last))
    local set, gone, revived = {}, {}, {}
    for j = first, last do
      local id = ids[j]
      local before = tonumber(counts[j - first + 1]) or 0
      local count = before + deltas.by[id]
      if count <= 0 then
        gone[#gone + 1] = id
      else
        set[#set + 1] = id
        set[#set + 1] = count
        if before == 0 then revived[#revived + 1] = id end
      end
    end
    if #set > 0 then redis.call('HSET', refs_key, unpack(set)) end
    if #revived > 0 then
      redis.call('ZREM', unref_key, unpack(revived))
      if by_key then redis.call('HDEL', by_key, unpack(revived)) end
      if missing_key then
        local lacking = {}
        for j, flag in ipairs(redis.call('SMISMEMBER', present_key, unpack(revived))) do
          if flag == 0 then lacking[#lacking + 1] = revived[j] end
        end
        if #lacking > 0 then redis.call('SADD', missing_key, unpack(lacking)) end
      end
    end
    if #gone > 0 then
      local scored, by = {}, {}
      for _, id in ipairs(gone) do
        scored[#scored + 1] = ms
        scored[#scored + 1] = id
        by[#by + 1] = id
        by[#by + 1] = by_id
      end
      redis.call('HDEL', refs_key, unpack(gone))
      redis.call('ZADD', unref_key, unpack(scored))
      if by_key then redis.call('HSET', by_key, unpack(by)) end
      if missing_key then redis.call('SREM', missing_key, unpack(gone)) end
      if failures_key then redis.call('HDEL', failures_key, unpack(gone)) end
    end
  end
end

-- The entry writes of one step, gathered by put_stored and remove_stored and made by
-- flush_writes in a few bulk calls.
local function new_writes()
  return { set = {}, add = {}, del = {} }
end

-- Put a file's entry (id, rest, chunk list) into the namespace, replacing `old`: the old chunks
-- lose a reference and the new ones gain one (in `deltas`), the path joins the listing.
local function put_stored(writes, deltas, path, id, rest, chunk_ids, old)
  if old then add_stored_chunks(deltas, old, -1) end
  add_id_list(deltas, chunk_ids, 1)
  local set, add = writes.set, writes.add
  set[#set + 1] = path
  set[#set + 1] = stored_entry(id, path, rest)
  add[#add + 1] = 0
  add[#add + 1] = path
end

-- Take a file out of the namespace: its chunks lose a reference (in `deltas`), the path leaves the listing.
local function remove_stored(writes, deltas, path, old)
  add_stored_chunks(deltas, old, -1)
  writes.del[#writes.del + 1] = path
end

-- Make the gathered writes: removals first, so a path removed and put again in one step stays.
local function flush_writes(entries_key, paths_key, writes)
  call_many('HDEL', entries_key, writes.del)
  call_many('ZREM', paths_key, writes.del)
  call_many('HSET', entries_key, writes.set)
  call_many('ZADD', paths_key, writes.add)
end

-- The volume's epoch: made by the first mutation (or the first look of a mirror) when there is
-- none, i.e. with the volume, and anew when this Redis has come back empty. `candidate` is a
-- random id from the caller ('' makes none).
local function ensure_epoch(epoch_key, candidate)
  if candidate ~= '' then redis.call('SET', epoch_key, candidate, 'NX') end
  return redis.call('GET', epoch_key)
end

-- Fencing of mirror writes: nil when the caller may write, else the error reply to return before
-- any write. A caller passes the token its lease gave it; the write is refused unless that is the
-- current token (tokens only grow, so a deposed leader's never is again). A write without a token
-- ('') is accepted only while no watcher has ever taken the lease in this Redis (tools and tests
-- that apply records themselves).
local function fence_refusal(fence_key, token)
  local current = redis.call('GET', fence_key)
  if token == '' then
    if current then return redis.error_reply('FERRY_FENCED a write without a fencing token, but a watcher leads here (token ' .. current .. ')') end
    return nil
  end
  if current ~= token then
    return redis.error_reply('FERRY_FENCED fencing token ' .. token .. ' is not the current one (' .. tostring(current or 'none') .. ')')
  end
  return nil
end

-- The member of a resync's seen set that says page `n` was applied (paths start with "/", so it
-- cannot be a path).
local function page_marker(n)
  return 'page:' .. n
end

-- Append the one change record of a mutation; returns its id (the new version).
local function append_record(log_key, maxlen, op, put_items, del_items)
  return redis.call('XADD', log_key, 'MAXLEN', '~', maxlen, '*', 'op', op,
    'put', '[' .. table.concat(put_items, ',') .. ']',
    'del', '[' .. table.concat(del_items, ',') .. ']')
end

local function id_ms(id)
  return tonumber(string.match(id, '^(%d+)'))
end

-- Stream ids are canonical digit strings: compare by length, then text.
local function digits_less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

local function id_less(a, b)
  local ams, aseq = string.match(a, '^(%d+)%-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)%-(%d+)$')
  if ams ~= bms then return digits_less(ams, bms) end
  return digits_less(aseq, bseq)
end

-- The server's clock in ms (the one time every script and GC pass compares against).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Garbage collection may only run in a region whose metadata is whole. In a mirror (`mirror`
-- true) that means: a cursor (a flushed or new Redis has none: every object would look like an
-- orphan), no full resync under way (refs and present are being rebuilt), and, for a caller that
-- leads through a lease (`token` not ''), that token is still the current one in this Redis.
-- Returns nil when GC may go on, else the reason, one word.
local function gc_refusal(mirror, cursor_key, resync_key, fence_key, token)
  if not mirror then return nil end
  if redis.call('EXISTS', cursor_key) == 0 then return 'no-cursor' end
  local state = redis.call('HGET', resync_key, 'state')
  if state == 'running' or state == 'incomplete' then return 'resync' end
  if token ~= '' and redis.call('GET', fence_key) ~= token then return 'fenced' end
  return nil
end

-- Whether a running put holds this chunk (gc-holds score: the hold's expiry, ms) at `now`.
local function is_held(holds_key, id, now)
  local until_ms = redis.call('ZSCORE', holds_key, id)
  return until_ms ~= false and tonumber(until_ms) >= now
end
