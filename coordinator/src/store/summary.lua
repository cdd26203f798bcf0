-- One line of `tasker list` per task: its template, status and progress.
--
-- KEYS, per item: the task hash, tasker:{<task_id>}.
--
-- ARGV, per item, one JSON object, empty.
--
-- Reply, per item, one JSON object (empty when the task is gone):
--   namespace        the template's namespace
--   name             the template's name
--   version          the template's version
--   status           the task's status
--   created          when it was accepted (unix ms)
--   finished         when it ended (unix ms), if it has
--   steps            how many steps it has
--   done             how many of them will change no more: completed,
--                    failed, blocked or cancelled
local function summarise_one(KEYS, _)
  local key = KEYS[1]
  local f = redis.call('HMGET', key, 'ns', 'name', 'ver', 'status', 'created', 'finished', 'steps')
  if not f[1] then
    return {}
  end
  local steps, fields = 0, {}
  for _ in string.gmatch(f[7] or '', '[^,]+') do
    fields[#fields + 1] = 's:' .. steps
    steps = steps + 1
  end
  local done = 0
  for _, state in ipairs(hmget(key, fields)) do
    if state == 'completed' or state == 'failed' or state == 'blocked' or state == 'cancelled' then
      done = done + 1
    end
  end
  return {namespace = f[1], name = f[2], version = f[3], status = f[4], created = tonumber(f[5]),
    finished = tonumber(f[6]), steps = steps, done = done}
end

return for_each_item(1, summarise_one)
