-- list.lua: one page of a directory listing. Read-only.
-- Guarantees: a consistent page (one atomic read) of at most `limit` items in lexicographic order
-- of their keys in the path index (a directory sorts as "<name>/"); without recursive, the direct
-- children: each file, and each sub-directory once (the scan jumps past its contents instead of
-- reading them); with recursive, every file under the directory. Only the page's entries are
-- read (HMGET), and path reads are bounded by the page size plus one small read per directory.
-- Listing a file (no cursor) returns that file.
-- Returns {next, kind, path, json, kind, path, json, ...}: kind 'f' or 'd' (json '' for 'd');
-- next is the ZRANGEBYLEX start of the next page, '' when this is the last page.
-- KEYS: paths, entries
-- ARGV: dir, start ('' for the first page), limit, recursive ('1' or '0')
local paths, entries = KEYS[1], KEYS[2]
local dir, start, limit, recursive = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'

if start == '' and dir ~= '/' then
  local file = redis.call('HGET', entries, dir)
  if file then return { '', 'f', dir, file } end
end

local lo, hi, prefix = under_bounds(dir)
if start == '' then start = lo end
local out, files, slots = { '' }, {}, {}
local function emit(kind, path)
  out[#out + 1] = kind
  out[#out + 1] = path
  out[#out + 1] = ''
end
local n, batch = 0, 16
while n < limit do
  local want = math.min(limit - n, batch)
  local keys = redis.call('ZRANGEBYLEX', paths, start, hi, 'LIMIT', 0, want)
  local jumped = false
  for _, key in ipairs(keys) do
    n = n + 1
    local slash = not recursive and string.find(key, '/', #prefix + 1, true)
    if slash then
      local sub = string.sub(key, 1, slash - 1)
      emit('d', sub)
      -- "0" follows "/": the next read starts after everything under `sub`.
      start = '[' .. sub .. '0'
      jumped = true
      break
    end
    emit('f', key)
    files[#files + 1], slots[#slots + 1] = key, #out
    start = '(' .. key
  end
  if jumped then
    batch = 16
  elseif #keys < want then
    start = nil
    break
  else
    batch = batch * 4
  end
end
if start and #redis.call('ZRANGEBYLEX', paths, start, hi, 'LIMIT', 0, 1) == 0 then start = nil end
out[1] = start or ''

-- HMGET in slices: unpack() of a long list would overflow Lua's C stack.
for first = 1, #files, 500 do
  local last = math.min(first + 499, #files)
  local jsons = redis.call('HMGET', entries, unpack(files, first, last))
  for i, json in ipairs(jsons) do out[slots[first + i - 1]] = json or '' end
end
return out
