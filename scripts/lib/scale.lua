-- lib.scale: capped scaling steps.
local scale = {}

-- Scale out from `current`: at most `factor` times it, at most `max_step` more, never past
-- `ceiling`. Returns the new count, or nil when no step is possible.
function scale.capped_out(current, factor, max_step, ceiling)
  local desired = math.min(math.floor(current * factor), current + max_step, ceiling)
  if desired <= current then return nil end
  return desired
end

return scale
