-- Notes that one attempt of a step waits for a child task: its result
-- comes from the child's coordinator when the child finishes. The
-- attempt's lease ends either way: no worker holds the step any more.
--
-- Applied only while that attempt is current and enqueued. The child may
-- have finished, and its result been recorded, before this note arrived:
-- then the step still names the child its attempt started, and nothing
-- else changes.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}; the namespace's lease
-- set.
--
-- ARGV, per item, one JSON object:
--   step             the step index
--   attempt          the attempt that started the child
--   child            the child task's id
--   lease_member     the attempt's member in the lease set
--
-- Reply, per item, one JSON object:
--   noted            whether the attempt was running and now waits for the
--                    child
local function wait_one(KEYS, args)
  local key, leases = KEYS[1], KEYS[2]
  local i = args.step
  redis.call('ZREM', leases, args.lease_member)
  local state, attempt = unpack(redis.call('HMGET', key, 's:' .. i, 'a:' .. i))
  if tonumber(attempt) ~= args.attempt then
    return {noted = false}
  end
  if state == 'enqueued' then
    redis.call('HSET', key, 'ch:' .. i, args.child)
    return {noted = true}
  end
  if state == 'completed' or state == 'failed' then
    redis.call('HSETNX', key, 'ch:' .. i, args.child)
  end
  return {noted = false}
end

return for_each_item(2, wait_one)
