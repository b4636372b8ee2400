-- history.lua: what a mirror needs to know about the source's history, in one atomic read.
-- Guarantees: the volume's epoch exists afterwards (made from the candidate when the source's
-- Redis has none: a volume never written, or a Redis that came back empty), and the reply
-- describes one moment: {epoch, first id, last generated id, records ever added, records in the
-- log, whether the record at `cursor` is in the log (1/0)}; ids are '' for a log that never had a
-- record. Writes nothing else.
-- KEYS: log, epoch
-- ARGV: cursor ('' for none), epoch candidate
local log, epoch_key = KEYS[1], KEYS[2]
local cursor = ARGV[1]
local epoch = ensure_epoch(epoch_key, ARGV[2]) or ''
local first, last, added, length, found = '', '', 0, 0, 0
if redis.call('EXISTS', log) == 1 then
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do
    local field, value = info[i], info[i + 1]
    if field == 'length' then length = value
    elseif field == 'last-generated-id' then last = value
    elseif field == 'entries-added' then added = value
    elseif field == 'first-entry' and type(value) == 'table' then first = value[1]
    end
  end
  if last == '0-0' then last = '' end
  if cursor ~= '' and cursor ~= '0-0' and #redis.call('XRANGE', log, cursor, cursor) > 0 then found = 1 end
end
return { epoch, first, last, added, length, found }
