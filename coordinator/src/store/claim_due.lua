-- Claims the due members of a namespace's retry schedule or lease set, for
-- one coordinator at a time. Each is pushed the hold into the future rather
-- than removed: the claimant removes it once it has acted on it, and if the
-- claimant dies first, another coordinator claims it again when the hold
-- runs out.
--
-- KEYS, per item: tasker:schedule:<namespace> (retries, scored by when each
-- is due) or tasker:leases:<namespace> (running attempts, scored by when
-- each lease ends). Members are
-- "<task_id>|<namespace>|<name>|<version>|<step>|<attempt>", a retry's
-- followed by "|<traceparent>" when it carries one.
--
-- ARGV, per item, one JSON object:
--   now              unix ms
--   hold_ms          how long a claim holds
--   limit            the most to claim
--
-- Reply, per item, one JSON object:
--   claimed          the claimed members
local function claim_one(KEYS, args)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', args.now, 'LIMIT', 0, args.limit)
  local scored = {}
  for _, member in ipairs(due) do
    scored[#scored + 1] = args.now + args.hold_ms
    scored[#scored + 1] = member
  end
  chunked('ZADD', KEYS[1], scored)
  return {claimed = nonempty(due)}
end

return for_each_item(1, claim_one)
