-- snapshot.lua: apply one page of the source's entries during a full resync.
-- Guarantees: nothing changes for a caller whose fencing token is not the current one (error
-- reply FERRY_FENCED), for a resync that is not the one running ({'stale', state}), or for a page
-- out of order ({'order', pages applied}). Otherwise, in this one step: each path is remembered in
-- the resync's seen set together with a marker for this page (prune.lua checks that every page's
-- marker is there, so a lost or partly lost set cannot make it delete live entries); an entry is
-- stored (with its own version) only when the mirror has none or an older one, so entries
-- already newer are kept; reference counts and the set of missing chunks follow; the resync hash
-- counts the page. The cursor is not moved (prune.lua finishes the resync).
-- Returns {'ok', written}.
-- KEYS: entries, paths, refs, unreferenced, seen, resync, fence, present, missing, copy failures
-- ARGV: token, resync id, page number, then per entry: path, version, rest, chunk ids
local entries, paths, refs, unref, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local resync, fence, present, missing, failures = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local refused = fence_refusal(fence, ARGV[1])
if refused then return refused end
local info = redis.call('HMGET', resync, 'id', 'state', 'pages', 'seen')
if info[1] ~= ARGV[2] or info[2] ~= 'running' or info[4] ~= seen then return { 'stale', tostring(info[2]) } end
local page = tonumber(ARGV[3])
if page ~= (tonumber(info[3]) or 0) + 1 then return { 'order', tostring(info[3]) } end

local deltas, writes = new_deltas(), new_writes()
local written, count = 0, 0
local now = now_ms()
local listed = {}
for i = 4, #ARGV, 4 do listed[#listed + 1] = ARGV[i] end
local olds = read_many('HMGET', entries, listed)
-- Reads came before any write: a path listed twice (a scan may return one twice) is put once.
local put = {}
for k, path in ipairs(listed) do
  local i = 4 + (k - 1) * 4
  local version, old = ARGV[i + 1], olds[k]
  count = count + 1
  if not put[path] and (not old or stored_version(old) ~= version) then
    put[path] = true
    put_stored(writes, deltas, path, version, ARGV[i + 2], ARGV[i + 3], old)
    written = written + 1
  end
end
for first = 1, #listed, 1000 do redis.call('SADD', seen, unpack(listed, first, math.min(first + 999, #listed))) end
flush_writes(entries, paths, writes)
apply_deltas(deltas, refs, unref, now, present, missing, nil, nil, failures)
redis.call('SADD', seen, page_marker(page))
redis.call('HSET', resync, 'pages', page)
redis.call('HINCRBY', resync, 'entries', count)
return { 'ok', written }
