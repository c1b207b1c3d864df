-- The start of every key-value script: one namespace's keys, Redis's clock,
-- and the steps the scripts share. The layout is documented in plume's
-- `host/src/kv/redis.rs`. Each script runs atomically, so nothing here needs
-- a lock, and every step keeps the indexes and the counters in step.
--
-- KEYS: values (HASH key -> value), versions (HASH key -> version), index
-- (ZSET of keys, score 0), expiries (ZSET key -> expires-at ms), counters
-- (HASH seq, keys, bytes): all tagged with the namespace, one cluster slot.
local values, versions, index, expiries, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

-- Redis's clock, not plume's: every node sees a key expire at the same time.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- How many expired keys a script removes before its work, so that no
-- script runs long when many keys expire at once. Expired keys left over
-- are invisible all the same (`live`) and go with the next scripts.
local PURGE_BATCH = 100

-- Whether the key has not expired (a key with no expiry is live if stored).
local function live(key)
  local at = redis.call('ZSCORE', expiries, key)
  return not at or tonumber(at) > now
end

-- Make sure the counters exist. They are missing in a new namespace, and
-- after they were lost (evicted, deleted by hand): the usage is then counted
-- again from the values, and the version counter starts from Redis's clock
-- in microseconds, above every version handed out before (unless those
-- averaged more than one write a microsecond), so no version comes back.
local function ensure_counters()
  if redis.call('EXISTS', counters) == 1 then
    return
  end
  local keys, bytes = 0, 0
  local all = redis.call('HGETALL', values)
  for i = 1, #all, 2 do
    keys = keys + 1
    bytes = bytes + #all[i] + #all[i + 1]
  end
  local micros = clock[2]
  local seq = clock[1] .. string.rep('0', 6 - #micros) .. micros
  redis.call('HSET', counters, 'seq', seq, 'keys', keys, 'bytes', bytes)
end

-- Remove a key, expired or not; returns whether it was stored.
local function remove(key)
  local value = redis.call('HGET', values, key)
  redis.call('ZREM', expiries, key)
  if not value then
    return false
  end
  ensure_counters()
  redis.call('HDEL', values, key)
  redis.call('HDEL', versions, key)
  redis.call('ZREM', index, key)
  redis.call('HINCRBY', counters, 'keys', -1)
  redis.call('HINCRBY', counters, 'bytes', -(#key + #value))
  return true
end

-- Remove up to `limit` expired keys; returns how many were removed.
local function purge(limit)
  local due = redis.call('ZRANGEBYSCORE', expiries, '-inf', now, 'LIMIT', 0, limit)
  local removed = 0
  for _, key in ipairs(due) do
    if remove(key) then
      removed = removed + 1
    end
  end
  return removed
end

-- Store `value` under a new version; `ttl` (milliseconds, '' for none)
-- replaces the key's expiry. Returns the version, as Redis's decimal text.
local function write(key, value, ttl)
  ensure_counters()
  local old = redis.call('HGET', values, key)
  if old then
    redis.call('HINCRBY', counters, 'bytes', #value - #old)
  else
    redis.call('HINCRBY', counters, 'keys', 1)
    redis.call('HINCRBY', counters, 'bytes', #key + #value)
    redis.call('ZADD', index, 0, key)
  end
  redis.call('HINCRBY', counters, 'seq', 1)
  local version = redis.call('HGET', counters, 'seq')
  redis.call('HSET', values, key, value)
  redis.call('HSET', versions, key, version)
  if ttl == '' then
    redis.call('ZREM', expiries, key)
  else
    redis.call('ZADD', expiries, now + tonumber(ttl), key)
  end
  return version
end

-- Every script starts by removing what has expired.
local purged = purge(PURGE_BATCH)
