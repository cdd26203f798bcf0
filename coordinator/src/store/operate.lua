-- An operator's retry, resolve or cancel of a task.
--
-- retry: the chosen failed steps go back to pending with a fresh budget of
-- attempts. Attempt numbers go on from where they were (b:i records the
-- last attempt before the retry), so a late result of an old attempt is
-- stale, never mistaken for the new one. resolve: the failed step is
-- completed with the given result. Then, either way, every blocked step
-- that no failed step blocks any longer goes back to pending, and each
-- pending step whose dependencies are all complete is enqueued at its next
-- attempt, under a lease. Completed steps and their results are kept.
-- cancel: every step that has not started (pending, waiting for a retry, or
-- enqueued but waiting for a worker) is cancelled; the steps running finish, start nothing after them,
-- and are not retried; the task ends cancelled once none runs.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}; the namespace's lease
-- set.
--
-- ARGV, per item, one JSON object:
--   action           'retry', 'resolve' or 'cancel'
--   step             retry: only this failed step (optional; every failed
--                    step without it); resolve: the failed step
--   result           resolve: the step's result JSON
--   now              unix ms
--   retention_secs   how long a finished task stays, in seconds
--   steps            each step in template order, {parents, ancestors,
--                    lease_ms}
--   lease_prefix     the lease members' prefix, "<task_id>|<ns>|<name>|<version>|"
--
-- Reply, per item, one JSON object:
--   refused          why nothing was done; nothing else is said then
--   status           the task's status afterwards
--   ready            each step now enqueued, {step, attempt}, to publish
--   inputs           what their messages carry: the context and the result
--                    of every completed step,
--                    {context, results = {<step> = result JSON}}
--   joins            each ready join's {step, links, wait_ms} (see joins_of)
local function operate_one(KEYS, args)
  local key, leases = KEYS[1], KEYS[2]
  local action = args.action
  local n = #args.steps
  local now = args.now

  local status = redis.call('HGET', key, 'status')
  if not status then
    return {refused = 'no such task; it never existed, or it finished more than the retention period ago'}
  end
  if status == 'complete' then
    return {refused = 'the task is complete; there is nothing to ' .. action}
  end
  if status == 'cancelled' then
    return {refused = 'the task was cancelled'}
  end
  if action == 'cancel' then
    if status ~= 'running' then
      return {refused = 'the task has ended ' .. status .. '; only a running task can be cancelled'}
    end
    redis.call('HSET', key, 'cancel', '1')
    for i = 0, n - 1 do
      local s, waits = unpack(redis.call('HMGET', key, 's:' .. i, 'ww:' .. i))
      -- A step that waits for a worker has not started either.
      if s == 'pending' or is_waiting_retry(s) or (s == 'enqueued' and waits) then
        redis.call('HSET', key, 's:' .. i, 'cancelled')
        redis.call('HDEL', key, 'due:' .. i, 'ww:' .. i)
        redis.call('HINCRBY', key, 'open', -1)
      end
    end
    return {status = finish_if_done(key, now, args.retention_secs)}
  end

  if action == 'retry' and status == 'running' then
    return {refused = 'the task is still running; retry it once it has ended failed'}
  end

  local function state(i) return redis.call('HGET', key, 's:' .. i) end
  local names = {}
  for name in string.gmatch(redis.call('HGET', key, 'steps'), '[^,]+') do
    names[#names + 1] = name
  end

  -- The steps this command takes out of `failed`.
  local targets = {}
  if args.step then
    local i = args.step
    local s = state(i)
    if s ~= 'failed' then
      return {refused = 'step ' .. names[i + 1] .. ' is ' .. s .. ', not failed; only a failed step can be ' ..
        (action == 'retry' and 'retried' or 'resolved')}
    end
    targets[i] = true
  else
    for i = 0, n - 1 do
      if state(i) == 'failed' then targets[i] = true end
    end
  end
  if next(targets) == nil then
    return {refused = 'the task has no failed step'}
  end

  local reset = {}
  for i in pairs(targets) do
    if action == 'retry' then
      redis.call('HSET', key, 's:' .. i, 'pending', 'b:' .. i, redis.call('HGET', key, 'a:' .. i))
      redis.call('HDEL', key, 'due:' .. i, 't0:' .. i, 't1:' .. i)
      redis.call('HINCRBY', key, 'open', 1)
      reset[#reset + 1] = i
    else
      redis.call('HSET', key, 's:' .. i, 'completed', 'r:' .. i, args.result, 't1:' .. i, now)
    end
    redis.call('HINCRBY', key, 'failed', -1)
  end

  -- A blocked step runs again once none of its ancestors has failed.
  for i = 0, n - 1 do
    if state(i) == 'blocked' then
      local still_blocked = false
      for _, a in ipairs(args.steps[i + 1].ancestors) do
        if state(a) == 'failed' then still_blocked = true end
      end
      if not still_blocked then
        redis.call('HSET', key, 's:' .. i, 'pending')
        redis.call('HINCRBY', key, 'open', 1)
        reset[#reset + 1] = i
      end
    end
  end

  -- Recount each reset step's open dependencies, and enqueue those with
  -- none, each at its next attempt and under a lease.
  local ready, leased, joining = {}, {}, {}
  table.sort(reset)
  for _, i in ipairs(reset) do
    local step = args.steps[i + 1]
    local waiting = 0
    for _, p in ipairs(step.parents) do
      if state(p) ~= 'completed' then waiting = waiting + 1 end
    end
    redis.call('HSET', key, 'w:' .. i, waiting, 'f:' .. i, 0)
    redis.call('HDEL', key, 'q:' .. i)
    if waiting == 0 then
      redis.call('HSET', key, 's:' .. i, 'enqueued', 'q:' .. i, now)
      local attempt = redis.call('HINCRBY', key, 'a:' .. i, 1)
      ready[#ready + 1] = {step = i, attempt = attempt}
      leased[#leased + 1] = {step = i, attempt = attempt, lease_ms = step.lease_ms}
      if #step.parents > 1 then
        joining[#joining + 1] = {step = i, parents = step.parents}
      end
    end
  end
  lease_steps(leases, args.lease_prefix, now, leased)

  if status ~= 'running' then
    redis.call('HSET', key, 'status', 'running')
    redis.call('HDEL', key, 'finished')
    redis.call('PERSIST', key)
  end
  local all = {}
  for i = 0, n - 1 do all[#all + 1] = i end
  return {
    status = finish_if_done(key, now, args.retention_secs),
    ready = nonempty(ready),
    inputs = inputs_of(key, all),
    joins = joins_of(key, joining),
  }
end

return for_each_item(2, operate_one)
