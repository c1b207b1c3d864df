-- delete(key) -> 1 when a live key was removed, else 0.
local key = ARGV[1]
local was_live = live(key)
if remove(key) and was_live then
  return 1
end
return 0
