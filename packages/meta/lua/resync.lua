-- resync.lua: start (or start over) a full resync of a mirror from a snapshot of the source.
-- Guarantees: nothing changes for a caller whose fencing token is not the current one (error
-- reply FERRY_FENCED). Otherwise, in this one step: the seen set of any earlier resync is dropped
-- (a resync cut short is restarted, never continued: its pages may belong to another snapshot),
-- and the resync hash describes the new one: its id, snapshot id, the source's epoch and the
-- records it had added at the snapshot, state 'running', 0 pages applied, the key of its own seen
-- set; `count` goes up by one. No TTL anywhere: a resync's state outlives any outage until it is
-- finished or restarted. The entries and the cursor are not touched (apply.lua refuses to run
-- until prune.lua has finished the resync). Returns the seen set's key.
-- KEYS: resync, fence
-- ARGV: token, resync id, snapshot id, epoch, added, reason, seen key prefix
local resync, fence = KEYS[1], KEYS[2]
local refused = fence_refusal(fence, ARGV[1])
if refused then return refused end
local old_seen = redis.call('HGET', resync, 'seen')
-- UNLINK: a seen set holds up to every path of the volume; freeing it is left to a background thread.
if old_seen then redis.call('UNLINK', old_seen) end
local count = redis.call('HGET', resync, 'count')
redis.call('DEL', resync)
local time = redis.call('TIME')
local seen = ARGV[7] .. ':' .. ARGV[2]
redis.call('HSET', resync, 'id', ARGV[2], 'snapshot', ARGV[3], 'epoch', ARGV[4], 'added', ARGV[5], 'reason', ARGV[6],
  'state', 'running', 'pages', 0, 'entries', 0, 'seen', seen, 'started', time[1] * 1000 + math.floor(time[2] / 1000),
  'count', (tonumber(count) or 0) + 1)
return seen
