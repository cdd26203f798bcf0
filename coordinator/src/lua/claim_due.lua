-- Claims the due members of a namespace's retry schedule or lease set, for
-- one coordinator at a time.
--
-- KEYS[1]  tasker:schedule:<namespace> (retries, scored by when each is due)
--          or tasker:leases:<namespace> (running attempts, scored by when
--          each lease ends); members are
--          "<task_id>|<namespace>|<name>|<version>|<step index>|<attempt>"
-- ARGV[1]  now (unix ms)    ARGV[2]  how long a claim holds (ms)
-- ARGV[3]  the most to claim
--
-- Returns the claimed members. Each is pushed the hold into the future rather
-- than removed: the claimant removes it once it has acted on it, and if the
-- claimant dies first, another coordinator claims it again when the hold
-- runs out.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local hold_until = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], hold_until, member)
end
return due
