-- An operator's retry, resolve or cancel of a task.
--
-- KEYS[1]  the task hash, tasker:{<task_id>}
-- ARGV[1]  'retry' | 'resolve' | 'cancel'
-- ARGV[2]  the step index; for a retry, '' means every failed step
-- ARGV[3]  resolve: the step's result JSON
-- ARGV[4]  now (unix ms)            ARGV[5]  retention of a finished task, in seconds
-- ARGV[6]  n, the number of steps
-- ARGV[7 .. 6+n]     for each step in template order, its parents as "0,1"
-- ARGV[7+n .. 6+2n]  for each step, its ancestors as "0,1"
--
-- retry: the chosen failed steps go back to pending with a fresh budget of
-- attempts. Attempt numbers go on from where they were (b:i records the
-- last attempt before the retry), so a late result of an old attempt is
-- stale, never mistaken for the new one. resolve: the failed step is
-- completed with the given result. Then, either way, every blocked step
-- that no failed step blocks any longer goes back to pending, and each
-- pending step whose dependencies are all complete is enqueued at its next
-- attempt. Completed steps and their results are kept. cancel: every step
-- that has not started (pending, or waiting for a retry) is cancelled; the
-- steps running finish, start nothing after them, and are not retried; the
-- task ends cancelled once none runs.
--
-- Returns {'refused', reason}, or {'ok', task status, enqueued steps as
-- "3,4", then the context JSON, then index, result pairs of every
-- completed step}.
local key = KEYS[1]
local mode = ARGV[1]
local n = tonumber(ARGV[6])

local status = redis.call('HGET', key, 'status')
if not status then
  return {'refused', 'no such task; it never existed, or it finished more than the retention period ago'}
end
if status == 'complete' then
  return {'refused', 'the task is complete; there is nothing to ' .. mode}
end
if status == 'cancelled' then
  return {'refused', 'the task was cancelled'}
end
if mode == 'cancel' then
  if status ~= 'running' then
    return {'refused', 'the task has ended ' .. status .. '; only a running task can be cancelled'}
  end
  redis.call('HSET', key, 'cancel', '1')
  for i = 0, n - 1 do
    local s = redis.call('HGET', key, 's:' .. i)
    if s == 'pending' or s == 'retry' then
      redis.call('HSET', key, 's:' .. i, 'cancelled')
      redis.call('HDEL', key, 'due:' .. i)
      redis.call('HINCRBY', key, 'open', -1)
    end
  end
  return {'ok', finish_if_done(key, ARGV[4], ARGV[5]), ''}
end

if mode == 'retry' and status == 'running' then
  return {'refused', 'the task is still running; retry it once it has ended failed'}
end

local function state(i) return redis.call('HGET', key, 's:' .. i) end
local names = split(redis.call('HGET', key, 'steps'))

-- The steps this command takes out of `failed`.
local targets = {}
if ARGV[2] ~= '' then
  local i = tonumber(ARGV[2])
  local s = state(i)
  if s ~= 'failed' then
    return {'refused', 'step ' .. names[i + 1] .. ' is ' .. s .. ', not failed; only a failed step can be ' ..
      (mode == 'retry' and 'retried' or 'resolved')}
  end
  targets[i] = true
else
  for i = 0, n - 1 do
    if state(i) == 'failed' then targets[i] = true end
  end
end
if next(targets) == nil then
  return {'refused', 'the task has no failed step'}
end

local reset = {}
for i in pairs(targets) do
  if mode == 'retry' then
    redis.call('HSET', key, 's:' .. i, 'pending', 'b:' .. i, redis.call('HGET', key, 'a:' .. i))
    redis.call('HDEL', key, 'due:' .. i, 't0:' .. i, 't1:' .. i)
    redis.call('HINCRBY', key, 'open', 1)
    reset[#reset + 1] = i
  else
    redis.call('HSET', key, 's:' .. i, 'completed', 'r:' .. i, ARGV[3], 't1:' .. i, ARGV[4])
  end
  redis.call('HINCRBY', key, 'failed', -1)
end

-- A blocked step runs again once none of its ancestors has failed.
for i = 0, n - 1 do
  if state(i) == 'blocked' then
    local still_blocked = false
    for _, a in ipairs(split(ARGV[7 + n + i])) do
      if state(a) == 'failed' then still_blocked = true end
    end
    if not still_blocked then
      redis.call('HSET', key, 's:' .. i, 'pending')
      redis.call('HINCRBY', key, 'open', 1)
      reset[#reset + 1] = i
    end
  end
end

-- Recount each reset step's open dependencies, and enqueue those with none.
local ready = {}
for _, i in ipairs(reset) do
  local waiting = 0
  for _, p in ipairs(split(ARGV[7 + i])) do
    if state(p) ~= 'completed' then waiting = waiting + 1 end
  end
  redis.call('HSET', key, 'w:' .. i, waiting, 'f:' .. i, 0)
  redis.call('HDEL', key, 'q:' .. i)
  if waiting == 0 then
    redis.call('HSET', key, 's:' .. i, 'enqueued', 'q:' .. i, ARGV[4])
    redis.call('HINCRBY', key, 'a:' .. i, 1)
    ready[#ready + 1] = i
  end
end
table.sort(ready)

if status ~= 'running' then
  redis.call('HSET', key, 'status', 'running')
  redis.call('HDEL', key, 'finished')
  redis.call('PERSIST', key)
end
status = finish_if_done(key, ARGV[4], ARGV[5])
local out = {'ok', status, table.concat(ready, ',')}
local all = {}
for i = 0, n - 1 do all[#all + 1] = i end
append_inputs(key, out, all)
return out
