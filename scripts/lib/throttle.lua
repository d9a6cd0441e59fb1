-- lib.throttle: computing a tighter rate limit.
local throttle = {}

-- The limit multiplied by `factor` (0 < factor < 1), rounded down, never below `floor`.
-- Returns the new limit, or nil when it would not be lower than the current one.
function throttle.tighten(current, factor, floor)
  assert(factor > 0 and factor < 1, "throttle.tighten: factor must be between 0 and 1")
  local limit = math.max(floor, math.floor(current * factor))
  if limit >= current then return nil end
  return limit
end

return throttle
