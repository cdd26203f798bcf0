-- Records how attempts of steps ended, and moves their tasks on: any number
-- of results, of any tasks, in one call.
--
-- Only the first result for the step's current attempt is applied: every
-- child's dependency counter goes down once, so a join is enqueued exactly
-- once, when its last dependency completes. The attempt's lease ends with
-- its result; ready children are leased, and a retry is put on the
-- schedule, in the same call: no step is out without a lease. The reply
-- holds everything the coordinator then needs to publish, link spans and
-- count, so it reads nothing more before it acks.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}; the namespace's lease
-- set; the namespace's retry schedule.
--
-- ARGV, per item, one JSON object:
--   step             the step index
--   attempt          the attempt that ended
--   outcome          'completed' or 'failed'
--   retryable        a failure that the error and the step's policy allow to
--                    retry: it is retried if an attempt of the budget is left
--                    and the task is not cancelled
--   payload          the result JSON (completed) or the error JSON (failed)
--   started_at       when the attempt started (unix ms)
--   finished_at      when it ended (unix ms)
--   now              unix ms
--   retry_due        retryable failures: when the retry is due (unix ms)
--                    after the 1st, 2nd, ... attempt of the step's budget
--   max_attempts     the step's budget of attempts, counted from b:i, the
--                    last attempt before an operator's retry
--   redelivered      whether this result was delivered before
--   retention_secs   how long a finished task stays, in seconds
--   children         the step's children, each {step, lease_ms, parents}:
--                    parents only for a join, whose publish links to them
--   inputs           completed: the steps whose results the ready children
--                    carry (the union of what each carries: its results_from,
--                    or every ancestor)
--   descendants      failed: the steps to block if it fails for good
--   traceparent      the span that recorded the result (optional), kept as
--                    sc:<step> so that a join's publish can link to it
--   lease_prefix     the lease and schedule members' prefix,
--                    "<task_id>|<ns>|<name>|<version>|"
--
-- Reply, per item, one JSON object:
--   verdict          'applied'; 'duplicate' (a result for this attempt was
--                    applied before: for a redelivery, its effects are handed
--                    back again, since the first delivery may have died
--                    before carrying them out); 'stale' (a result for an
--                    attempt that is not current); 'unknown' (no such task,
--                    or it expired)
--   status           the task's status afterwards (absent when unknown)
--   ready            the children now enqueued at attempt 1, to publish
--   retry_due        when the step's retry is due (unix ms), if it has one
--   inputs           what the ready children's messages carry,
--                    {context, results = {<step> = result JSON}}
--   joins            each ready join's {step, links, wait_ms} (see joins_of)
--   finished         the task's hash, when it has finished and its report
--                    is to be sent; a finished task has no ready children,
--                    so ready and finished never meet
local function record_one(KEYS, args)
  local key, leases, schedule = KEYS[1], KEYS[2], KEYS[3]
  local i = args.step
  local attempt = args.attempt
  local now = args.now
  local children = args.children
  local member = args.lease_prefix .. i .. '|' .. attempt

  -- The lease of this attempt ends; each ready child runs under a lease; a
  -- retry that is due goes on the schedule (its member carries the trace).
  local function bookkeep(ready, due)
    redis.call('ZREM', leases, member)
    local entries = {}
    for _, c in ipairs(ready) do
      entries[#entries + 1] = {step = c.step, attempt = 1, lease_ms = c.lease_ms}
    end
    lease_steps(leases, args.lease_prefix, now, entries)
    if due then
      local entry = member
      if args.traceparent then
        entry = entry .. '|' .. args.traceparent
      end
      redis.call('ZADD', schedule, due, entry)
    end
  end

  -- The reply, with what follows from the result: the ready children and
  -- their inputs, or the finished task's report.
  local function with_effects(reply, ready)
    if #ready > 0 then
      local steps = {}
      for k, c in ipairs(ready) do
        steps[k] = c.step
      end
      reply.ready = steps
      reply.inputs = inputs_of(key, args.inputs)
      reply.joins = joins_of(key, ready)
    elseif reply.status ~= 'running' then
      reply.finished = hash_of(key)
    end
    return reply
  end

  -- One read for everything a completion needs: the step, the task, and
  -- each child's state, dependency counter and release count.
  local fields = {'s:' .. i, 'a:' .. i, 'status', 'b:' .. i, 'cancel', 'open'}
  for _, c in ipairs(children) do
    fields[#fields + 1] = 's:' .. c.step
    fields[#fields + 1] = 'w:' .. c.step
    fields[#fields + 1] = 'f:' .. c.step
  end
  -- Last: whether the step waited for a worker (rearm_lease.lua).
  fields[#fields + 1] = 'ww:' .. i
  local read = hmget(key, fields)
  local state, current, status, base, cancel, open = unpack(read, 1, 6)
  local waited = read[#fields]
  -- Child k's state, dependency counter and release count, as read.
  local function child_read(k)
    local at = 6 + 3 * (k - 1)
    return read[at + 1], read[at + 2], read[at + 3]
  end
  if not state then
    bookkeep({}, nil)
    return {verdict = 'unknown'}
  end
  current = tonumber(current)
  -- Attempts are budgeted from the last attempt before an operator's retry.
  local used = attempt - tonumber(base or '0')

  -- Writes the attempt's end in one HSET: `writes` are field, value pairs
  -- (its state's, and any other of the task's), to which the start, end
  -- and recording span are added.
  local function record(writes)
    for _, v in ipairs({'t0:' .. i, args.started_at, 't1:' .. i, args.finished_at}) do
      writes[#writes + 1] = v
    end
    if args.traceparent then
      writes[#writes + 1] = 'sc:' .. i
      writes[#writes + 1] = args.traceparent
    end
    chunked('HSET', key, writes)
    if waited then
      -- A worker came back and ran it: it waits no more.
      redis.call('HDEL', key, 'ww:' .. i)
    end
  end

  if state == 'enqueued' and current == attempt then
    -- No retry once attempts are used up, or the task was cancelled.
    if args.outcome == 'failed' and args.retryable and used < args.max_attempts and cancel ~= '1' then
      local dues = args.retry_due
      local due = dues[math.max(1, math.min(#dues, used))]
      record({'s:' .. i, 'waiting_retry', 'e:' .. i, args.payload, 'due:' .. i, due})
      bookkeep({}, due)
      return {verdict = 'applied', status = status, retry_due = due}
    end
    local ready = {}
    if args.outcome == 'completed' then
      -- Every write to the task goes with the attempt's end: the open
      -- count, each child's counter, and the children it releases.
      open = tonumber(open) - 1
      local writes = {'s:' .. i, 'completed', 'r:' .. i, args.payload, 'open', open}
      for k, c in ipairs(children) do
        local child_state, waiting, released = child_read(k)
        waiting = tonumber(waiting or '0') - 1
        writes[#writes + 1] = 'w:' .. c.step
        writes[#writes + 1] = waiting
        if waiting == 0 and child_state == 'pending' then
          -- f:c counts how often the step was released by its counter: an
          -- audit for the chaos suite, which checks that it is 1 for a join.
          released = tonumber(released or '0') + 1
          for _, v in ipairs({'s:' .. c.step, 'enqueued', 'a:' .. c.step, 1, 'q:' .. c.step, now,
            'f:' .. c.step, released}) do
            writes[#writes + 1] = v
          end
          ready[#ready + 1] = c
        end
      end
      record(writes)
    else
      -- The blocking below changes the open count: finish_if_done reads it.
      open = nil
      record({'s:' .. i, 'failed', 'e:' .. i, args.payload})
      redis.call('HINCRBY', key, 'open', -1)
      redis.call('HINCRBY', key, 'failed', 1)
      for _, d in ipairs(args.descendants) do
        if redis.call('HGET', key, 's:' .. d) == 'pending' then
          redis.call('HSET', key, 's:' .. d, 'blocked')
          redis.call('HINCRBY', key, 'open', -1)
        end
      end
    end
    status = finish_if_done(key, now, args.retention_secs, open)
    bookkeep(ready, nil)
    return with_effects({verdict = 'applied', status = status}, ready)
  end

  -- Another result for the current attempt: a duplicate event, or a second
  -- run of the same attempt after a redelivery. The first result stands,
  -- whatever this one says.
  if current ~= attempt or state == 'pending' or state == 'blocked' then
    bookkeep({}, nil)
    return {verdict = 'stale', status = status}
  end
  if not args.redelivered then
    bookkeep({}, nil)
    return {verdict = 'duplicate', status = status}
  end
  -- A redelivery: the first delivery may have died before its effects, so
  -- they are carried out again.
  if is_waiting_retry(state) then
    local due = tonumber(redis.call('HGET', key, 'due:' .. i))
    bookkeep({}, due)
    return {verdict = 'duplicate', status = status, retry_due = due}
  end
  local ready = {}
  -- Children are handed back only to a redelivered completion: a timeout that
  -- comes after the step completed must not publish them again.
  if state == 'completed' and args.outcome == 'completed' then
    for _, c in ipairs(children) do
      local s, a = unpack(redis.call('HMGET', key, 's:' .. c.step, 'a:' .. c.step))
      if s == 'enqueued' and a == '1' then
        ready[#ready + 1] = c
      end
    end
  end
  bookkeep(ready, nil)
  return with_effects({verdict = 'duplicate', status = status}, ready)
end

return for_each_item(3, record_one)
