-- usage() -> {keys, bytes}: the namespace's keys and their bytes (keys and
-- values), read from the counters every write keeps, not counted. Expired
-- keys are removed first, a larger batch than other scripts remove, so that
-- keys which expired together do not count against the quota.
purge(1000)
if redis.call('EXISTS', values) == 1 then
  ensure_counters()
end
local usage = redis.call('HMGET', counters, 'keys', 'bytes')
return {usage[1] or '0', usage[2] or '0'}
