-- Claims retries that are due, for one coordinator at a time.
--
-- KEYS[1]  a namespace's schedule, a sorted set of
--          "<task_id>|<namespace>|<name>|<version>|<step index>|<failed attempt>"
--          scored by when the retry is due (unix ms)
-- ARGV[1]  now (unix ms)    ARGV[2]  lease (ms)    ARGV[3]  the most to claim
--
-- Returns the claimed members. Each is pushed a lease into the future rather
-- than removed: the claimant removes it once the next attempt is published,
-- and if the claimant dies first, another coordinator claims it again when
-- the lease runs out.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local lease_end = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], lease_end, member)
end
return due
