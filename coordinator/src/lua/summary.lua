-- One line of `tasker list`: a task's template, status and progress.
--
-- KEYS[1]  the task hash, tasker:{<task_id>}
--
-- Returns {} if the task is gone (expired), else
-- {namespace, name, version, status, created ms, finished ms or '', steps, steps done},
-- where a step is done once it is completed, failed or blocked.
local key = KEYS[1]
local f = redis.call('HMGET', key, 'ns', 'name', 'ver', 'status', 'created', 'finished', 'steps')
if not f[1] then
  return {}
end
local steps, done = 0, 0
for _ in string.gmatch(f[7] or '', '[^,]+') do
  local state = redis.call('HGET', key, 's:' .. steps)
  if state == 'completed' or state == 'failed' or state == 'blocked' then
    done = done + 1
  end
  steps = steps + 1
end
return {f[1], f[2], f[3], f[4], f[5], f[6] or '', tostring(steps), tostring(done)}
