-- Helpers shared by the store's scripts; prepended to each script at load
-- time. The keys and fields the scripts keep are documented once, in
-- store/mod.rs.
--
-- Every script takes items: any number in one call, each applied in order
-- as if it were a call of its own. An item's keys are consecutive in KEYS
-- (as many per item as the script says), and its arguments are one JSON
-- object in ARGV, named as the script's header lists them. Each item's
-- reply is one JSON object, named as the header lists them too; a field
-- with nothing to say is left out (cjson cannot tell an empty list from an
-- empty object).

-- Runs `apply(keys, args)` for each item, in order, and returns the list of
-- their replies, each encoded as JSON. `keys_per_item` is how many of KEYS
-- each item has.
local function for_each_item(keys_per_item, apply)
  local replies = {}
  for r = 1, #ARGV do
    local keys = {}
    for k = 1, keys_per_item do
      keys[k] = KEYS[(r - 1) * keys_per_item + k]
    end
    replies[r] = cjson.encode(apply(keys, cjson.decode(ARGV[r])))
  end
  return replies
end

-- `list`, or nil when it is empty: an empty table would encode as {}.
local function nonempty(list)
  if #list == 0 then
    return nil
  end
  return list
end

-- Whether a step's state is waiting_retry. 'retry' is how stores written
-- before the state names were unified spell it.
local function is_waiting_retry(state)
  return state == 'waiting_retry' or state == 'retry'
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

-- Leases each of `entries`, {step, attempt, lease_ms}, in the lease set
-- `leases` until now + lease_ms. Members are `prefix` .. step .. '|' ..
-- attempt, prefix being "<task_id>|<ns>|<name>|<version>|".
local function lease_steps(leases, prefix, now, entries)
  local scored = {}
  for _, e in ipairs(entries) do
    scored[#scored + 1] = now + e.lease_ms
    scored[#scored + 1] = prefix .. e.step .. '|' .. e.attempt
  end
  chunked('ZADD', leases, scored)
end

-- What a step-ready message carries: the task's context and the results
-- of the steps in `steps`, as {context, results = {<step> = result JSON}}.
local function inputs_of(key, steps)
  local fields = {'ctx'}
  for _, j in ipairs(steps) do
    fields[#fields + 1] = 'r:' .. j
  end
  local values = hmget(key, fields)
  local results = {}
  for k, j in ipairs(steps) do
    if values[k + 1] then
      -- String keys: a table keyed 1..n would encode as a list.
      results[tostring(j)] = values[k + 1]
    end
  end
  return {context = values[1], results = results}
end

-- For each of `steps` that is a join (it has `parents`), what its publish
-- needs: {step, links, wait_ms}, the traceparents of the spans that
-- recorded its parents' results, and the time from its first parent's end
-- to its last. Nil when none is a join.
local function joins_of(key, steps)
  local joins = {}
  for _, s in ipairs(steps) do
    if s.parents then
      local fields = {}
      for _, p in ipairs(s.parents) do
        fields[#fields + 1] = 'sc:' .. p
        fields[#fields + 1] = 't1:' .. p
      end
      local values = hmget(key, fields)
      local links, first, last = {}, nil, nil
      for k = 1, #values, 2 do
        if values[k] then
          links[#links + 1] = values[k]
        end
        local t = tonumber(values[k + 1])
        if t then
          first = math.min(first or t, t)
          last = math.max(last or t, t)
        end
      end
      joins[#joins + 1] = {step = s.step, links = nonempty(links), wait_ms = first and (last - first)}
    end
  end
  return nonempty(joins)
end

-- The task's hash, field by field.
local function hash_of(key)
  local flat, hash = redis.call('HGETALL', key), {}
  for k = 1, #flat, 2 do
    hash[flat[k]] = flat[k + 1]
  end
  return hash
end

-- Marks the task finished once no step is open; returns its status.
-- `open`, when the caller has it, saves reading it again.
local function finish_if_done(key, now, retention_secs, open)
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
  redis.call('EXPIRE', key, retention_secs)
  return status
end
