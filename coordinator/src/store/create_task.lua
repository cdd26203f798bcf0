-- Creates tasks, or recognises ones that exist. The roots to publish run
-- under a lease from now on, and the task is in the index, in the same
-- call: a batch of requests costs one round trip.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}; the namespace's lease
-- set; the task index.
--
-- ARGV, per item, one JSON object:
--   task_id          the task id
--   namespace        the template's namespace
--   name             the template's name
--   version          the template's version
--   context          the context JSON
--   now              unix ms
--   reply_queue      the requester's reply queue (optional)
--   correlation_id   the id the requester's replies carry (with reply_queue)
--   request_id       the request's id, which its replies name (optional,
--                    with reply_queue)
--   same_context     for a task that exists, refuse the request unless its
--                    context is the task's: a request with an idempotency
--                    key, which names the task its context describes
--   redelivered      whether this request was delivered before
--   steps            each step in template order, {name, waiting, lease_ms}:
--                    waiting counts its dependencies
--   traceparent      the span that accepted the task (optional)
--   parent           for a child task, the parent step JSON (optional): kept
--                    as parent, and for a task that exists, put in place of
--                    the old one (a later attempt of the parent step waits
--                    for it now)
--   lease_prefix     the lease members' prefix, "<task_id>|<ns>|<name>|<version>|"
--   index_horizon    index entries older than this (unix ms) are dropped
--
-- Reply, per item, one JSON object:
--   created          whether the task is new; otherwise it existed, and the
--                    requester is added to its replies
--   conflict         the task existed with another context, and
--                    same_context was asked: nothing was written
--   status           the task's status
--   publish          the roots, enqueued at attempt 1, to publish: every
--                    root of a new task; for a task that existed, only for
--                    a redelivery, those still enqueued at attempt 1 (the
--                    first delivery may have died before publishing them)
local function create_one(KEYS, args)
  local key, leases, index = KEYS[1], KEYS[2], KEYS[3]
  local now = args.now

  -- Leases the roots about to be published, and indexes the task by its
  -- creation time unless it is indexed already.
  local function bookkeep(roots)
    local entries = {}
    for _, i in ipairs(roots) do
      entries[#entries + 1] = {step = i, attempt = 1, lease_ms = args.steps[i + 1].lease_ms}
    end
    lease_steps(leases, args.lease_prefix, now, entries)
    redis.call('ZREMRANGEBYSCORE', index, '-inf', args.index_horizon)
    redis.call('ZADD', index, 'NX', now, args.task_id)
  end

  local exists = redis.call('HEXISTS', key, 'status') == 1
  if exists and args.same_context and redis.call('HGET', key, 'ctx') ~= args.context then
    return {created = false, status = redis.call('HGET', key, 'status'), conflict = true}
  end

  if args.reply_queue then
    -- Recorded in both cases: a requester of an existing task hears of its end too.
    redis.call('HSET', key, 'reply:' .. args.correlation_id, args.reply_queue)
    if args.request_id then
      redis.call('HSET', key, 'rid:' .. args.correlation_id, args.request_id)
    end
  end

  if exists then
    if args.parent then
      redis.call('HSET', key, 'parent', args.parent)
    end
    local status = redis.call('HGET', key, 'status')
    local roots = {}
    if args.redelivered and status == 'running' then
      for k, step in ipairs(args.steps) do
        local i = k - 1
        if step.waiting == 0
          and redis.call('HGET', key, 's:' .. i) == 'enqueued'
          and redis.call('HGET', key, 'a:' .. i) == '1' then
          roots[#roots + 1] = i
        end
      end
    end
    bookkeep(roots)
    return {created = false, status = status, publish = nonempty(roots)}
  end

  -- The whole task in one HSET: each call from a script costs about as much
  -- as the work it does.
  local names = {}
  for k, step in ipairs(args.steps) do
    names[k] = step.name
  end
  local fields = {'ns', args.namespace, 'name', args.name, 'ver', args.version, 'status', 'running',
    'ctx', args.context, 'created', now, 'open', #args.steps, 'failed', 0,
    'steps', table.concat(names, ','), 'tp', args.traceparent or ''}
  local function set(...)
    for _, v in ipairs({...}) do
      fields[#fields + 1] = v
    end
  end
  if args.parent then
    set('parent', args.parent)
  end
  local roots = {}
  for k, step in ipairs(args.steps) do
    local i = k - 1
    if step.waiting == 0 then
      set('s:' .. i, 'enqueued', 'a:' .. i, 1)
      roots[#roots + 1] = i
    else
      set('s:' .. i, 'pending', 'a:' .. i, 0, 'w:' .. i, step.waiting)
    end
  end
  chunked('HSET', key, fields)
  bookkeep(roots)
  return {created = true, status = 'running', publish = nonempty(roots)}
end

return for_each_item(3, create_one)
