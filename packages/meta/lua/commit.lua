-- commit.lua: write a batch of entries as ONE change record, atomically.
-- Guarantees: either nothing changes, because a path is an existing directory ({'dir', path}) or
-- an ancestor of a path is an existing file ({'file', path, ancestor}); or, all in this one step:
-- one record (op put, put = every entry, del = []) is appended, every entry is stored with version
-- = the record id and is in the path index, and chunk reference counts change by +1 per chunk
-- occurrence of the new entries and -1 per occurrence in the entries they replace (a count
-- reaching 0 leaves refs and enters unreferenced with the record's time); the volume's epoch is
-- made if there is none (the first commit makes the volume).
-- Garbage collection (gc-claim.lua, gc-finish.lua): a chunk that GC has claimed is one whose
-- object is being deleted or is gone, so no new reference to it may be committed: the commit is
-- refused ({'claimed', ids…}, nothing changes) when any chunk of the batch is in gc-claims. The
-- writer then waits until those claims are gone (the objects deleted), uploads those chunks again
-- and commits again. A chunk that is not claimed is either referenced or unreferenced-but-kept,
-- and this step (which revives it: it leaves unreferenced) happens before any later claim could
-- see it, since claims are taken only from the unreferenced set, in a script of their own.
-- The record that drops a chunk's last reference is kept with it in unreferenced-by.
-- A writer passes `since`, the server time (ms) at which it began to look at references and the
-- store: a chunk GC finished deleting at or after then (gc-deleted) may be one it saw and skipped,
-- so it is refused the same way; a `since` older than gc-deleted keeps (`keep` ms) is refused as
-- {'stale'} (the writer looks again). '' (an import: its chunks are read at their origin) checks
-- only claims.
-- A put that holds its chunks (hold.lua) passes `held`, the expiry its last renewal returned: while
-- that has not passed, its holds never lapsed, so a chunk held now was held since before the put
-- looked at it and GC cannot have deleted it since; for such chunks neither gc-deleted nor the
-- age of `since` matters, which is what lets a put take longer than the grace or than `keep`.
-- Chunks not held (or a lapsed `held`) fall back to the `since` rules above.
-- Returns {'ok', id, count}.
-- KEYS: entries, paths, log, refs, unreferenced, epoch, unreferenced-by, gc-claims, gc-deleted,
-- gc-holds
-- ARGV: maxlen, epoch candidate, since, keep, held ('' when none), then per entry: path, rest
-- (src/entry.ts), space-separated chunk ids.
-- The caller has checked the batch itself: valid entries, no path twice, none under another.
local entries, paths, log, refs, unref = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local first = 6

-- Every read is made for the whole step at once (a few calls, not a few per file): the stored
-- entries, then the claims and deletions of its chunks.
local list, chunks, named = {}, {}, {}
for i = first, #ARGV, 3 do
  -- The caller checks this; the reads below come before any write, so a second one would be
  -- counted twice.
  if named[ARGV[i]] then return redis.error_reply('FERRY_INVALID commit names ' .. ARGV[i] .. ' twice') end
  named[ARGV[i]] = true
  list[#list + 1] = ARGV[i]
  for chunk in string.gmatch(ARGV[i + 2], '%S+') do chunks[#chunks + 1] = chunk end
end
local olds = read_many('HMGET', entries, list)

-- A path that is a file now is not a directory and has no file above it (the namespace never
-- holds both), so only new paths are looked at.
local known = {}
for k, path in ipairs(list) do
  if not olds[k] then
    if is_dir(paths, path) then return { 'dir', path } end
    local ancestor = file_ancestor(entries, path, known)
    if ancestor then return { 'file', path, ancestor } end
  end
end

local since = tonumber(ARGV[3])
local now = now_ms()
local held_until = tonumber(ARGV[5])
local holding = held_until ~= nil and held_until >= now
local stale = since and since < now - tonumber(ARGV[4])
local claimed = { 'claimed' }
local claims = redis.call('EXISTS', KEYS[8]) == 1 and read_many('HMGET', KEYS[8], chunks) or {}
local held_at = since and holding and read_many('ZMSCORE', KEYS[10], chunks) or {}
local gone_at = since and redis.call('EXISTS', KEYS[9]) == 1 and read_many('ZMSCORE', KEYS[9], chunks) or {}
for j, chunk in ipairs(chunks) do
  if claims[j] then
    claimed[#claimed + 1] = chunk
  elseif since and not (held_at[j] and tonumber(held_at[j]) >= now) then
    if stale then return { 'stale' } end
    local gone = gone_at[j]
    if gone and tonumber(gone) >= since then claimed[#claimed + 1] = chunk end
  end
end
if #claimed > 1 then return claimed end

local items = {}
for i = first, #ARGV, 3 do items[#items + 1] = log_entry(ARGV[i], ARGV[i + 1]) end
ensure_epoch(KEYS[6], ARGV[2])
local id = append_record(log, ARGV[1], 'put', items, {})

local deltas, writes = new_deltas(), new_writes()
for k, path in ipairs(list) do
  local i = first + (k - 1) * 3
  put_stored(writes, deltas, path, id, ARGV[i + 1], ARGV[i + 2], olds[k])
end
flush_writes(entries, paths, writes)
apply_deltas(deltas, refs, unref, id_ms(id), nil, nil, KEYS[7], id)
return { 'ok', id, #items }
