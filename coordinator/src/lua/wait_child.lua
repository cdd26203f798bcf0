-- Notes that one attempt of a step waits for a child task: its result
-- comes from the child's coordinator when the child finishes.
--
-- KEYS[1]  the task hash, tasker:{<task_id>}
-- ARGV[1]  step index        ARGV[2]  attempt        ARGV[3]  the child task id
--
-- Applied only while that attempt is current and enqueued: the child may
-- have finished, and its result been recorded, before this note arrived.
-- Returns 'applied' or 'ignored'.
local key = KEYS[1]
local i = ARGV[1]
if redis.call('HGET', key, 's:' .. i) == 'enqueued' and redis.call('HGET', key, 'a:' .. i) == ARGV[2] then
  redis.call('HSET', key, 'ch:' .. i, ARGV[3])
  return 'applied'
end
return 'ignored'
