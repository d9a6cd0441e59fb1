-- CPU saturation on an ECS service: scale out, at most doubling, at most 10 tasks per
-- step, and never past the service's ceiling.
local max_step, ceiling = 10, 50

return {
  name = "saturation-scale-out",
  description = "Capped ECS scale-out on CPU saturation",
  priority = 10,
  cooldown = "10m",
  matches = { alerts = { "CPUSaturation" } },

  propose = function(incident)
    local service = incident.labels.ecs_service or incident.service
    local ecs = mitigate.state("aws", "ecs/" .. service)
    if ecs == nil then return {} end
    local desired = lib.scale.capped_out(ecs.desired_count, 2, max_step, ceiling)
    if desired == nil then
      mitigate.log("already at the ceiling", ecs.desired_count)
      return {}
    end
    return {
      {
        provider = "aws", action = "ecs.scale", target = "ecs/" .. service,
        parameters = { desired_count = desired }, ttl = "2h",
        reason = string.format("CPU saturated: %d -> %d tasks", ecs.desired_count, desired),
      },
    }
  end,
}
