-- Takes a step that waits for a worker out of waiting, to publish again: it
-- leaves the waiting set and runs under a lease from now on. ww:i stays: if
-- the step still reaches no queue, the coordinator notes it waiting again
-- (wait_worker.lua), which then knows it is no news; once it reaches one,
-- the coordinator clears ww:i (Store::end_wait). A step that has moved on
-- leaves the waiting set too.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}; the namespace's lease
-- set; the namespace's waiting set.
--
-- ARGV, per item, one JSON object:
--   step             the step index
--   attempt          the attempt that waits
--   member           its member in the waiting set
--   inputs           the steps whose results its message carries
--   parents          for a join, its parents, whose spans its publish links to
--                    (optional)
--   lease_ms         how long the attempt may run before it is timed out
--   lease_prefix     the lease members' prefix, "<task_id>|<ns>|<name>|<version>|"
--   now              unix ms
--
-- Reply, per item, one JSON object:
--   dispatched       whether the step is still enqueued at that attempt, to
--                    publish; false once it has moved on (cancelled, or
--                    published by another coordinator and done)
--   inputs           what the step's message carries,
--                    {context, results = {<step> = result JSON}}
--   joins            for a join, {step, links, wait_ms} (see joins_of)
local function dispatch_one(KEYS, args)
  local key, leases, waiting = KEYS[1], KEYS[2], KEYS[3]
  local i = args.step
  redis.call('ZREM', waiting, args.member)
  local state, attempt = unpack(redis.call('HMGET', key, 's:' .. i, 'a:' .. i))
  if state ~= 'enqueued' or tonumber(attempt) ~= args.attempt then
    return {dispatched = false}
  end
  lease_steps(leases, args.lease_prefix, args.now, {{step = i, attempt = args.attempt, lease_ms = args.lease_ms}})
  return {
    dispatched = true,
    inputs = inputs_of(key, args.inputs),
    joins = joins_of(key, {{step = i, parents = args.parents}}),
  }
end

return for_each_item(3, dispatch_one)
