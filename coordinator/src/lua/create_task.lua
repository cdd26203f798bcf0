-- Creates tasks, or recognises ones that exist: any number, in one call,
-- each as if it were a call of its own, laid out as `for_each_item` reads
-- them; below, KEYS and ARGV are one task's.
--
-- KEYS[1]  the task hash, tasker:{<task_id>}
-- KEYS[2]  the namespace's lease set     KEYS[3]  the task index (for `tasker list`)
-- ARGV[1]  namespace          ARGV[2]  template name     ARGV[3]  version
-- ARGV[4]  context JSON       ARGV[5]  now (unix ms)
-- ARGV[6]  reply queue ('' for none)                     ARGV[7]  correlation id
-- ARGV[8]  '1' if this request is a redelivery, else '0'
-- ARGV[9]  the step names in template order, as "a,b,c"
-- ARGV[10] the W3C traceparent of the span that accepted the task ('' for none)
-- ARGV[11] for a child task, the parent step JSON ('' for none): kept as
--          parent, and for a task that exists, put in place of the old one
--          (a later attempt of the parent step waits for it now)
-- ARGV[12] the task id       ARGV[13] the lease members' prefix, "<task_id>|<ns>|<name>|<version>|"
-- ARGV[14] index entries older than this (unix ms) are dropped
-- ARGV[15] the lease of each step in template order, in ms, as "ms,ms"
-- ARGV[16..] for each step in template order, its number of dependencies
--
-- The roots to publish run under a lease from now on, and the task is in
-- the index, both in the same call: a batch of requests costs one round
-- trip.
--
-- Returns a list with, for each task, {'created', root...}: the roots, now
-- enqueued at attempt 1, to publish; or {'exists', status, root...}: the
-- task existed, and the requester is added to its replies. Roots are listed only for a redelivery, when they
-- are still enqueued at attempt 1: the first delivery may have died before
-- publishing them.
local function create_one(KEYS, ARGV)
  local key = KEYS[1]
  local first_step = 16
  local nsteps = #ARGV - first_step + 1
  local now = tonumber(ARGV[5])
  local lease_of = {}
  for k, ms in ipairs(split(ARGV[15])) do
    lease_of[k - 1] = ms
  end

  -- Leases the steps about to be published (out[from..], at attempt 1), and
  -- indexes the task by its creation time unless it is indexed already.
  local function bookkeep(out, from)
    lease_steps(KEYS[2], ARGV[13], now, {unpack(out, from)}, lease_of)
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[14])
    redis.call('ZADD', KEYS[3], 'NX', now, ARGV[12])
    return out
  end

  if ARGV[6] ~= '' then
    -- Recorded in both cases: a requester of an existing task hears of its end too.
    redis.call('HSET', key, 'reply:' .. ARGV[7], ARGV[6])
  end

  if redis.call('HEXISTS', key, 'status') == 1 then
    if ARGV[11] ~= '' then
      redis.call('HSET', key, 'parent', ARGV[11])
    end
    local status = redis.call('HGET', key, 'status')
    local out = {'exists', status}
    if ARGV[8] == '1' and status == 'running' then
      for i = 0, nsteps - 1 do
        if tonumber(ARGV[first_step + i]) == 0
          and redis.call('HGET', key, 's:' .. i) == 'enqueued'
          and redis.call('HGET', key, 'a:' .. i) == '1' then
          out[#out + 1] = i
        end
      end
    end
    return bookkeep(out, 3)
  end

  -- The whole task in one HSET: each call from a script costs about as much
  -- as the work it does.
  local fields = {'ns', ARGV[1], 'name', ARGV[2], 'ver', ARGV[3], 'status', 'running',
    'ctx', ARGV[4], 'created', ARGV[5], 'open', nsteps, 'failed', 0, 'steps', ARGV[9], 'tp', ARGV[10]}
  local function set(...)
    for _, v in ipairs({...}) do
      fields[#fields + 1] = v
    end
  end
  if ARGV[11] ~= '' then
    set('parent', ARGV[11])
  end
  local out = {'created'}
  for i = 0, nsteps - 1 do
    local waiting = tonumber(ARGV[first_step + i])
    if waiting == 0 then
      set('s:' .. i, 'enqueued', 'a:' .. i, 1)
      out[#out + 1] = i
    else
      set('s:' .. i, 'pending', 'a:' .. i, 0, 'w:' .. i, waiting)
    end
  end
  chunked('HSET', key, fields)
  return bookkeep(out, 2)
end

return for_each_item(create_one)
