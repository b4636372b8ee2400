-- The live cache nodes: KEYS[1] nodes hash, KEYS[2] seen sorted set; ARGV[1] ms without a
-- heartbeat after which a node no longer counts.
-- Guarantees: "live" is judged against Redis's clock, the same clock heartbeat.lua records, and
-- the descriptions are read in the same step as the times. Read-only.
-- Returns { now, id1, seen1, json1, id2, ... } (nodes without a description are skipped).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[2], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
local out = { tostring(now) }
for i = 1, #live, 2 do
  local json = redis.call('HGET', KEYS[1], live[i])
  if json then
    out[#out + 1] = live[i]
    out[#out + 1] = live[i + 1]
    out[#out + 1] = json
  end
end
return out
