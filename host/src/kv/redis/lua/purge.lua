-- purge(limit) -> how many expired keys were removed: the prelude's batch
-- and up to `limit` more.
return purged + purge(tonumber(ARGV[1]))
