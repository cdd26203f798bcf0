-- Starts the next attempt of a step whose retry is due.
--
-- KEYS[1]  the task hash, tasker:{<task_id>}
-- ARGV[1]  step index     ARGV[2]  the attempt that failed
-- ARGV[3]  the step's ancestors, as "0,1", whose results the message carries
--
-- Returns {'dispatch', context JSON, index, result, ...} when the step is
-- now enqueued at the next attempt. The same is returned if it already was:
-- the coordinator that claimed the retry may have died before publishing.
-- Returns {'stale'} when the retry no longer applies.
local key = KEYS[1]
local i = ARGV[1]
local failed = tonumber(ARGV[2])
local state = redis.call('HGET', key, 's:' .. i)
local current = tonumber(redis.call('HGET', key, 'a:' .. i))

if state == 'retry' and current == failed then
  redis.call('HSET', key, 's:' .. i, 'enqueued', 'a:' .. i, failed + 1)
  redis.call('HDEL', key, 'due:' .. i)
elseif not (state == 'enqueued' and current == failed + 1) then
  return {'stale'}
end
local out = {'dispatch'}
append_inputs(key, out, split(ARGV[3]))
return out
