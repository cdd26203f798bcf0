-- Gives a step's expired lease more time instead of timing the attempt out,
-- when what kept its result away is that no worker runs its service: the
-- step-ready message waits in the service's queue (its worker died holding
-- it, and the broker put it back), and the attempt is not spent.
--
-- mode 'wait': no worker consumes the service's queue; the step waits for
-- one (ww:i names its callable) and the lease is renewed until `until`.
-- mode 'resume': a worker consumes it again; a step that waited gets a
-- whole new lease, to run the message that worker now receives. A step
-- that did not wait is left alone: its lease ran out with a worker there,
-- and it times out as usual.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}; the namespace's lease
-- set.
--
-- ARGV, per item, one JSON object:
--   step             the step index
--   attempt          the attempt whose lease ran out
--   member           its member in the lease set
--   until            when the renewed lease runs out (unix ms)
--   mode             'wait' or 'resume'
--   callable         the step's callable, which the step waits for a worker
--                    of
--
-- Reply, per item, one JSON object:
--   renewed          whether the lease was renewed: false for a step that
--                    has moved on, and in mode 'resume' for one that did
--                    not wait
--   first            whether the step did not wait before: the moment to
--                    say so
local function rearm_one(KEYS, args)
  local key, leases = KEYS[1], KEYS[2]
  local i = args.step
  local state, attempt, waits = unpack(redis.call('HMGET', key, 's:' .. i, 'a:' .. i, 'ww:' .. i))
  if state ~= 'enqueued' or tonumber(attempt) ~= args.attempt then
    return {renewed = false, first = false}
  end
  if args.mode == 'wait' then
    redis.call('HSET', key, 'ww:' .. i, args.callable)
  elseif waits then
    redis.call('HDEL', key, 'ww:' .. i)
  else
    return {renewed = false, first = false}
  end
  redis.call('ZADD', leases, args['until'], args.member)
  return {renewed = true, first = args.mode == 'wait' and not waits}
end

return for_each_item(2, rearm_one)
