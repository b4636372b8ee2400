-- lease.lua: take, renew or give back the watcher lease, which carries a fencing token.
-- Guarantees: only the owner renews or releases the lease; a lease nobody holds (expired, never
-- taken, or lost with a flushed Redis) can be taken, and taking it issues a new fencing token
-- larger than every token issued before in this Redis: max(previous + 1, the server's time in
-- ms), so even after the fence key is lost with a flush the new token exceeds the old ones. The
-- fence key has no TTL. A renewal keeps the token. Mirror write scripts accept only the current
-- token (fence_refusal in common.lua), so a leader whose lease was taken cannot write, however
-- long it was paused. The end key (no TTL) says when the lease ends if nobody renews it: the
-- server's time + ttl after a take or renewal, the time of the release after one; so once nobody
-- holds the lease, it says since when. Returns the token while the caller holds the lease, ''
-- otherwise (and after a release).
-- KEYS: lease, fence, end
-- ARGV: 'take' | 'release', owner, ttl ms
local lease, fence, ends = KEYS[1], KEYS[2], KEYS[3]
local op, owner, ttl = ARGV[1], ARGV[2], ARGV[3]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local held = redis.call('GET', lease)
local holder, token
if held then holder, token = string.match(held, '^(%S+) (%d+)$') end
if op == 'release' then
  if holder == owner then
    redis.call('DEL', lease)
    redis.call('SET', ends, string.format('%.0f', now))
  end
  return ''
end
if held and holder ~= owner then return '' end
redis.call('SET', ends, string.format('%.0f', now + tonumber(ttl)))
if held and token == redis.call('GET', fence) then
  redis.call('PEXPIRE', lease, ttl)
  return token
end
local next_token = math.max((tonumber(redis.call('GET', fence)) or 0) + 1, now)
token = string.format('%.0f', next_token)
redis.call('SET', fence, token)
redis.call('SET', lease, owner .. ' ' .. token, 'PX', ttl)
return token
