-- list_by_prefix(prefix, limit) -> {key, value, version, key, value, ...}
-- for the live keys starting with `prefix`, in byte order, at most `limit`.
--
-- The index holds every key at score 0, so ZRANGE BYLEX walks them in
-- byte order: from `[prefix` up to `(prefix` followed by the byte 0xFF,
-- which never occurs in UTF-8 text, so every key with the prefix is inside.
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local from, to = '-', '+'
if prefix ~= '' then
  from, to = '[' .. prefix, '(' .. prefix .. '\255'
end
local found, listed, offset = {}, 0, 0
while listed < limit do
  local page = math.min(limit - listed, 1000)
  local keys = redis.call('ZRANGE', index, from, to, 'BYLEX', 'LIMIT', offset, page)
  offset = offset + #keys
  for _, key in ipairs(keys) do
    local value = redis.call('HGET', values, key)
    if value and live(key) then
      found[#found + 1] = key
      found[#found + 1] = value
      found[#found + 1] = redis.call('HGET', versions, key)
      listed = listed + 1
    end
  end
  if #keys < page then
    break
  end
end
return found
