-- get(key) -> {value, version}, or nil when the key is absent or expired.
local key = ARGV[1]
if not live(key) then
  return false
end
local value = redis.call('HGET', values, key)
if not value then
  return false
end
return {value, redis.call('HGET', versions, key)}
