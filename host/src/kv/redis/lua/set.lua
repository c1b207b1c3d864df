-- set(key, value, ttl) -> the new version.
return write(ARGV[1], ARGV[2], ARGV[3])
