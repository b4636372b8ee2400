-- lease.lua: take, renew or give back a lease held by one owner token.
-- Guarantees: only the owner renews or releases it; a lease nobody holds (expired or never taken)
-- can be taken. So at most one replica believes it leads, up to the lease time after a failed
-- renewal (the holder stops acting when a renewal fails). Returns 1 when the caller holds the
-- lease after the call (0 after a release).
-- KEYS: lease
-- ARGV: 'take' | 'release', owner token, ttl ms
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'release' then
  if holder == ARGV[2] then redis.call('DEL', KEYS[1]) end
  return 0
end
if holder and holder ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
