-- Notes that a step waits for a worker: its step-ready message reached no
-- queue, since no service has declared its callable. The attempt keeps its
-- number (waiting spends no attempt) and loses its lease (nothing runs it);
-- the step joins the namespace's waiting set, which the sweeper tries again.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}; the namespace's lease
-- set; the namespace's waiting set.
--
-- ARGV, per item, one JSON object:
--   step             the step index
--   attempt          the attempt that reached no queue
--   callable         the step's callable, which no service serves
--   lease_member     the attempt's member in the lease set
--   member           its member in the waiting set: the lease member,
--                    followed by "|<traceparent>" when it carries one
--   next_try         when to try publishing it again (unix ms)
--
-- Reply, per item, one JSON object:
--   waiting          whether the step now waits (it is still enqueued at
--                    that attempt)
--   first            whether it did not wait before: the moment to say so
local function wait_one(KEYS, args)
  local key, leases, waiting = KEYS[1], KEYS[2], KEYS[3]
  local i = args.step
  local state, attempt, callable = unpack(redis.call('HMGET', key, 's:' .. i, 'a:' .. i, 'ww:' .. i))
  if state ~= 'enqueued' or tonumber(attempt) ~= args.attempt then
    return {waiting = false, first = false}
  end
  redis.call('HSET', key, 'ww:' .. i, args.callable)
  redis.call('ZREM', leases, args.lease_member)
  redis.call('ZADD', waiting, args.next_try, args.member)
  return {waiting = true, first = not callable}
end

return for_each_item(3, wait_one)
