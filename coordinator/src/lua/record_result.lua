-- Records how attempts of steps ended, and moves their tasks on: any
-- number of results, of any tasks, in one call, applied in order as if each
-- were a call of its own, laid out as `for_each_item` reads them; below,
-- KEYS and ARGV are one result's.
--
-- KEYS[1]  the task hash, tasker:{<task_id>}
-- KEYS[2]  the namespace's lease set     KEYS[3]  the namespace's retry schedule
-- ARGV[1]  step index        ARGV[2]  attempt
-- ARGV[3]  outcome: 'completed' | 'retry' (a retryable failure with attempts left) | 'failed'
-- ARGV[4]  the result JSON (completed) or the error JSON (retry, failed)
-- ARGV[5]  started at (unix ms)     ARGV[6]  finished at (unix ms)
-- ARGV[7]  now (unix ms)
-- ARGV[8]  retry only: when the retry is due (unix ms) after the 1st, 2nd, ...
--          attempt of the step's budget, as "ms,ms"
-- ARGV[9]  '1' if this event is a redelivery, else '0'
-- ARGV[10] retention of a finished task, in seconds
-- ARGV[11] the step's children, as "1,2"
-- ARGV[12] completed: the union of the children's ancestors, whose results
--          ready children carry; retry and failed: the step's descendants,
--          to block if it fails for good
-- ARGV[13] the W3C traceparent of the span that recorded the result ('' for
--          none), kept as sc:i so that a join's span can link to it
-- ARGV[14] the step's max_attempts: a 'retry' with no attempt left is
--          applied as 'failed'. Attempts count from b:i, the last attempt
--          before an operator's retry (0 if there was none).
-- ARGV[15] the lease and schedule members' prefix, "<task_id>|<ns>|<name>|<version>|"
-- ARGV[16] the lease of each child in ARGV[11], in ms, as "ms,ms"
--
-- Only the first result for the step's current attempt is applied: every
-- child's dependency counter goes down once, so a join is enqueued exactly
-- once, when its last dependency completes.
--
-- The attempt's lease ends with its result; ready children are leased, and
-- a retry is put on the schedule, in the same call: no step is out without
-- a lease, and a batch of results costs one round trip.
--
-- Returns a list with, for each result, {verdict, task status, ready
-- children as "3,4", retry due (ms or ''), then, when children are ready:
-- the context JSON, then index, result pairs; or, when the task has
-- finished and its report is to be sent: the task hash as field, value
-- pairs}. A finished task has no ready children, so
-- the two never meet.
-- Verdicts: 'applied'; 'duplicate' (a result for this attempt was applied
-- before; for a redelivery, its effects are returned again, since the first
-- delivery may have died before carrying them out); 'stale' (a result for an
-- attempt that is not current);
-- 'unknown' (no such task, or it expired).
local function record_one(KEYS, ARGV)
  local key = KEYS[1]
  local i = ARGV[1]
  local attempt = tonumber(ARGV[2])
  local outcome = ARGV[3]
  local redelivered = ARGV[9] == '1'
  local children = split(ARGV[11])
  local related = split(ARGV[12])
  local leases, schedule = KEYS[2], KEYS[3]
  local prefix = ARGV[15]
  local now = tonumber(ARGV[7])
  local lease_of = {}
  for k, ms in ipairs(split(ARGV[16])) do
    lease_of[children[k]] = ms
  end

  -- The lease of this attempt ends; each ready child runs under a lease; a
  -- retry that is due goes on the schedule (its member carries the trace).
  local function bookkeep(ready, due)
    redis.call('ZREM', leases, prefix .. i .. '|' .. attempt)
    lease_steps(leases, prefix, now, ready, lease_of)
    if due ~= '' then
      local member = prefix .. i .. '|' .. attempt
      if ARGV[13] ~= '' then
        member = member .. '|' .. ARGV[13]
      end
      redis.call('ZADD', schedule, due, member)
    end
  end

  -- What follows the reply's head: the ready children's inputs, or the
  -- finished task's report.
  local function append_rest(out, ready, status)
    if #ready > 0 then
      append_inputs(key, out, related)
    elseif status ~= 'running' then
      for _, v in ipairs(redis.call('HGETALL', key)) do
        out[#out + 1] = v
      end
    end
    return out
  end

  -- One read for everything a completion needs: the step, the task, and
  -- each child's state, dependency counter and release count (child k's
  -- three values are at 3k+4 .. 3k+6).
  local fields = {'s:' .. i, 'a:' .. i, 'status', 'b:' .. i, 'cancel', 'open'}
  for _, c in ipairs(children) do
    fields[#fields + 1] = 's:' .. c
    fields[#fields + 1] = 'w:' .. c
    fields[#fields + 1] = 'f:' .. c
  end
  local read = hmget(key, fields)
  local state, current, status, base, cancel, open = unpack(read, 1, 6)
  if not state then
    bookkeep({}, '')
    return {'unknown', '', '', ''}
  end
  current = tonumber(current)
  -- Attempts are budgeted from the last attempt before an operator's retry.
  local used = attempt - tonumber(base or '0')

  -- Writes the attempt's end in one HSET: `writes` are field, value pairs
  -- (its state's, and any other of the task's), to which the start, end
  -- and recording span are added.
  local function record(writes)
    for _, v in ipairs({'t0:' .. i, ARGV[5], 't1:' .. i, ARGV[6]}) do
      writes[#writes + 1] = v
    end
    if ARGV[13] ~= '' then
      writes[#writes + 1] = 'sc:' .. i
      writes[#writes + 1] = ARGV[13]
    end
    chunked('HSET', key, writes)
  end

  if state == 'enqueued' and current == attempt then
    -- No retry once attempts are used up, or the task was cancelled.
    if outcome == 'retry' and (used >= tonumber(ARGV[14]) or cancel == '1') then
      outcome = 'failed'
    end
    if outcome == 'retry' then
      local dues = split(ARGV[8])
      local due = dues[math.max(1, math.min(#dues, used))]
      record({'s:' .. i, 'retry', 'e:' .. i, ARGV[4], 'due:' .. i, due})
      bookkeep({}, due)
      return {'applied', status, '', due}
    end
    local ready = {}
    if outcome == 'completed' then
      -- Every write to the task goes with the attempt's end: the open
      -- count, each child's counter, and the children it releases.
      open = tonumber(open) - 1
      local writes = {'s:' .. i, 'completed', 'r:' .. i, ARGV[4], 'open', open}
      for k, c in ipairs(children) do
        local waiting = tonumber(read[3 * k + 5] or '0') - 1
        writes[#writes + 1] = 'w:' .. c
        writes[#writes + 1] = waiting
        if waiting == 0 and read[3 * k + 4] == 'pending' then
          -- f:c counts how often the step was released by its counter: an
          -- audit for the chaos suite, which checks that it is 1 for a join.
          local released = tonumber(read[3 * k + 6] or '0') + 1
          for _, v in ipairs({'s:' .. c, 'enqueued', 'a:' .. c, 1, 'q:' .. c, ARGV[7], 'f:' .. c, released}) do
            writes[#writes + 1] = v
          end
          ready[#ready + 1] = c
        end
      end
      record(writes)
    else
      -- The blocking below changes the open count: finish_if_done reads it.
      open = nil
      record({'s:' .. i, 'failed', 'e:' .. i, ARGV[4]})
      redis.call('HINCRBY', key, 'open', -1)
      redis.call('HINCRBY', key, 'failed', 1)
      for _, d in ipairs(related) do
        if redis.call('HGET', key, 's:' .. d) == 'pending' then
          redis.call('HSET', key, 's:' .. d, 'blocked')
          redis.call('HINCRBY', key, 'open', -1)
        end
      end
    end
    status = finish_if_done(key, ARGV[7], ARGV[10], open)
    bookkeep(ready, '')
    return append_rest({'applied', status, table.concat(ready, ','), ''}, ready, status)
  end

  -- Another result for the current attempt: a duplicate event, or a second
  -- run of the same attempt after a redelivery. The first result stands,
  -- whatever this one says.
  if current ~= attempt or state == 'pending' or state == 'blocked' then
    bookkeep({}, '')
    return {'stale', status, '', ''}
  end
  if not redelivered then
    bookkeep({}, '')
    return {'duplicate', status, '', ''}
  end
  -- A redelivery: the first delivery may have died before its effects, so
  -- they are carried out again.
  if state == 'retry' then
    local due = redis.call('HGET', key, 'due:' .. i)
    bookkeep({}, due)
    return {'duplicate', status, '', due}
  end
  local ready = {}
  -- Children are handed back only to a redelivered completion: a timeout that
  -- comes after the step completed must not publish them again.
  if state == 'completed' and outcome == 'completed' then
    for _, c in ipairs(children) do
      if redis.call('HGET', key, 's:' .. c) == 'enqueued' and redis.call('HGET', key, 'a:' .. c) == '1' then
        ready[#ready + 1] = c
      end
    end
  end
  bookkeep(ready, '')
  return append_rest({'duplicate', status, table.concat(ready, ','), ''}, ready, status)
end

return for_each_item(record_one)
