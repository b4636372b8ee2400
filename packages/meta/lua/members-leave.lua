-- A cache node leaving on purpose: KEYS[1] nodes hash, KEYS[2] seen sorted set; ARGV[1] node id.
-- Guarantees: the node disappears from both keys at once, so clients stop placing chunks on it
-- at their next refresh instead of waiting for it to go stale.
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
