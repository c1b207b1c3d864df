-- compare_and_swap(key, expected, value, ttl) -> the new version, or nil
-- when the key's version is not `expected` ('' expects the key absent).
local key, expected = ARGV[1], ARGV[2]
local current = ''
if live(key) then
  current = redis.call('HGET', versions, key) or ''
end
if current ~= expected then
  return false
end
return write(key, ARGV[3], ARGV[4])
