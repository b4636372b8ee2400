-- A cache node's heartbeat: KEYS[1] nodes hash, KEYS[2] seen sorted set; ARGV[1] node id,
-- ARGV[2] node JSON, ARGV[3] ms after which a silent node is forgotten.
-- Guarantees: the description and the time it was seen change together, and the time is Redis's
-- own clock, so nodes and clients with skewed clocks still agree on who is alive. Nodes silent
-- for longer than ARGV[3] are removed from both keys in the same step, so the keys do not grow
-- with every node that ever ran. Returns the heartbeat time in ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[3])))
for _, id in ipairs(gone) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return now
