-- Notes that one attempt of a step waits for a child task: its result
-- comes from the child's coordinator when the child finishes.
--
-- KEYS[1]  the task hash, tasker:{<task_id>}
-- ARGV[1]  step index        ARGV[2]  attempt        ARGV[3]  the child task id
--
-- Applied only while that attempt is current and enqueued. The child may
-- have finished, and its result been recorded, before this note arrived:
-- then the step still names the child its attempt started, and nothing
-- else changes. Returns 'applied' or 'ignored'.
local key = KEYS[1]
local i = ARGV[1]
local state, attempt = unpack(redis.call('HMGET', key, 's:' .. i, 'a:' .. i))
if attempt ~= ARGV[2] then
  return 'ignored'
end
if state == 'enqueued' then
  redis.call('HSET', key, 'ch:' .. i, ARGV[3])
  return 'applied'
end
if state == 'completed' or state == 'failed' then
  redis.call('HSETNX', key, 'ch:' .. i, ARGV[3])
end
return 'ignored'
