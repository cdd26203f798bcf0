-- Helpers shared by the task scripts; prepended to each script at load time.
--
-- A task is one hash, tasker:{<task_id>}. Task fields: ns, name, ver,
-- status (running | complete | failed | cancelled), cancel ('1' once an
-- operator cancelled the task), ctx (the context JSON), steps (the
-- step names in template order, as "a,b,c"), tp (the traceparent of the
-- span that accepted the task, so that its whole-life span can be recorded
-- when it finishes), created and
-- finished (unix ms), open (steps not yet terminal), failed (failed steps),
-- and reply:<correlation id> = <reply queue> for every requester. Step
-- fields, by step index i: s:i state (pending | enqueued | retry |
-- completed | failed | blocked | cancelled), a:i current attempt, w:i dependencies not
-- yet completed, r:i result JSON, e:i last error JSON, t0:i and t1:i the
-- last attempt's start and end (unix ms), due:i when a retry is due, f:i
-- how often the step was released by its dependency counter since it was
-- last reset (always 1), q:i when the counter released it (unix ms), b:i the last attempt before an operator's retry
-- (attempts are budgeted from it), ch:i the child task the step's handler
-- started. A child task also has parent, the JSON of the parent step
-- that waits for it.

-- Runs `apply(keys, args)` for each item of a batched call, in order, and
-- returns the list of their replies. Item r has KEYS[3r-2 .. 3r]; its
-- arguments follow their count in ARGV: n1, then n1 arguments, n2, then
-- n2 arguments, and so on.
local function for_each_item(apply)
  local replies, at = {}, 1
  for r = 1, #KEYS / 3 do
    local n, args = tonumber(ARGV[at]), {}
    for j = 1, n do
      args[j] = ARGV[at + j]
    end
    replies[r] = apply({KEYS[3 * r - 2], KEYS[3 * r - 1], KEYS[3 * r]}, args)
    at = at + n + 1
  end
  return replies
end

-- Splits "1,2,3" into a list of strings; "" gives an empty list.
local function split(csv)
  local out = {}
  for item in string.gmatch(csv, '[^,]+') do
    out[#out + 1] = item
  end
  return out
end

-- Runs `command` on `key` with `items` as its arguments, in chunks, since
-- unpack cannot spread thousands of values; returns the chunks' replies
-- joined. For commands that take any number of fields or pairs (HMGET,
-- HSET, ZADD): one call rather than one per field, since each call from a
-- script costs about as much as the work it does.
local function chunked(command, key, items)
  local replies = {}
  for from = 1, #items, 500 do
    local reply = redis.call(command, key, unpack(items, from, math.min(from + 499, #items)))
    if type(reply) == 'table' then
      for _, v in ipairs(reply) do
        replies[#replies + 1] = v
      end
    end
  end
  return replies
end

-- The values of the hash fields `fields`, in order (false for a missing one).
local function hmget(key, fields)
  return chunked('HMGET', key, fields)
end

-- Leases attempt 1 of each step in `steps` (indices) in the lease set
-- `leases`, until now + lease_ms[step] (a table by index, as numbers or
-- strings). Members are `prefix` .. step .. '|1', prefix being
-- "<task_id>|<ns>|<name>|<version>|".
local function lease_steps(leases, prefix, now, steps, lease_ms)
  local entries = {}
  for _, s in ipairs(steps) do
    entries[#entries + 1] = now + tonumber(lease_ms[s])
    entries[#entries + 1] = prefix .. s .. '|1'
  end
  chunked('ZADD', leases, entries)
end

-- Appends the context and the results of the steps in `indices` to `out`:
-- what a step-ready message carries.
local function append_inputs(key, out, indices)
  local fields = {'ctx'}
  for _, j in ipairs(indices) do
    fields[#fields + 1] = 'r:' .. j
  end
  local values = hmget(key, fields)
  out[#out + 1] = values[1]
  for k, j in ipairs(indices) do
    if values[k + 1] then
      out[#out + 1] = j
      out[#out + 1] = values[k + 1]
    end
  end
end

-- Marks the task finished once no step is open; returns its status.
-- `open`, when the caller has it, saves reading it again.
local function finish_if_done(key, now, retention, open)
  if (open or tonumber(redis.call('HGET', key, 'open'))) > 0 then
    return 'running'
  end
  local status = 'complete'
  local cancel, failed = unpack(redis.call('HMGET', key, 'cancel', 'failed'))
  if cancel == '1' then
    status = 'cancelled'
  elseif tonumber(failed) > 0 then
    status = 'failed'
  end
  redis.call('HSET', key, 'status', status, 'finished', now)
  redis.call('EXPIRE', key, retention)
  return status
end
