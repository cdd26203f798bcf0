-- Starts the next attempt of a step whose retry is due, and leases it.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}; the namespace's lease
-- set.
--
-- ARGV, per item, one JSON object:
--   step             the step index
--   failed_attempt   the attempt that failed
--   inputs           the steps whose results its message carries
--   parents          for a join, its parents, whose spans its publish links to
--                    (optional)
--   lease_ms         how long the next attempt may run before it is timed out
--   lease_prefix     the lease members' prefix, "<task_id>|<ns>|<name>|<version>|"
--   now              unix ms
--
-- Reply, per item, one JSON object:
--   dispatched       whether the step is now enqueued at the next attempt,
--                    to publish. It is too if it already was: the
--                    coordinator that claimed the retry may have died before
--                    publishing. False when the retry no longer applies.
--   inputs           what the step's message carries,
--                    {context, results = {<step> = result JSON}}
--   joins            for a join, {step, links, wait_ms} (see joins_of)
local function dispatch_one(KEYS, args)
  local key, leases = KEYS[1], KEYS[2]
  local i = args.step
  local failed = args.failed_attempt
  local state, current = unpack(redis.call('HMGET', key, 's:' .. i, 'a:' .. i))
  current = tonumber(current)

  if is_waiting_retry(state) and current == failed then
    redis.call('HSET', key, 's:' .. i, 'enqueued', 'a:' .. i, failed + 1)
    redis.call('HDEL', key, 'due:' .. i)
  elseif not (state == 'enqueued' and current == failed + 1) then
    return {dispatched = false}
  end
  lease_steps(leases, args.lease_prefix, args.now, {{step = i, attempt = failed + 1, lease_ms = args.lease_ms}})
  return {
    dispatched = true,
    inputs = inputs_of(key, args.inputs),
    joins = joins_of(key, {{step = i, parents = args.parents}}),
  }
end

return for_each_item(2, dispatch_one)
