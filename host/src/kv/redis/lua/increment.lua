-- increment(key, delta, ttl) -> {'ok', sum} | {'not-a-number'} | {'overflow'}.
--
-- The arithmetic is Redis's own 64-bit HINCRBY, on a scratch field of the
-- counters: Lua's numbers are doubles, exact only up to 2^53. The stored
-- text is read as plume's other engines read it (Rust's
-- `text.trim().parse::<i64>()`: Unicode whitespace around it, an optional
-- sign, leading zeros), then handed to HINCRBY in the form it accepts.

-- Rust's `char::is_whitespace` beyond ASCII, in UTF-8 (U+0085, U+00A0,
-- U+1680, U+2000 to U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
local SPACES = {'\194\133', '\194\160', '\225\154\128', '\226\128\168', '\226\128\169',
  '\226\128\175', '\226\129\159', '\227\128\128'}
for last = 128, 138 do
  SPACES[#SPACES + 1] = '\226\128' .. string.char(last)
end

local function trim(text)
  local trimmed = true
  while trimmed do
    trimmed = false
    local inner = string.match(text, '^%s*(.-)%s*$')
    if inner ~= text then
      text, trimmed = inner, true
    end
    for _, space in ipairs(SPACES) do
      if string.sub(text, 1, #space) == space then
        text, trimmed = string.sub(text, #space + 1), true
      end
      if #text >= #space and string.sub(text, -#space) == space then
        text, trimmed = string.sub(text, 1, -#space - 1), true
      end
    end
  end
  return text
end

-- The integer in `text` as canonical decimal (what HINCRBY reads), or nil.
local function integer(text)
  local sign, digits = string.match(trim(text), '^([+-]?)(%d+)$')
  if not digits then
    return nil
  end
  digits = string.match(digits, '^0*(.-)$')
  if digits == '' then
    return '0'
  end
  if sign == '-' then
    return '-' .. digits
  end
  return digits
end

local key, delta, ttl = ARGV[1], ARGV[2], ARGV[3]
local stored = '0'
if live(key) then
  stored = redis.call('HGET', values, key) or '0'
end
local old = integer(stored)
if not old then
  return {'not-a-number'}
end
ensure_counters()
redis.call('HSET', counters, 'sum', old)
local added = redis.pcall('HINCRBY', counters, 'sum', delta)
local sum = redis.call('HGET', counters, 'sum')
redis.call('HDEL', counters, 'sum')
if type(added) == 'table' and added.err then
  if string.find(added.err, 'overflow', 1, true) then
    return {'overflow'}
  end
  return {'not-a-number'}
end
write(key, sum, ttl)
return {'ok', sum}
