-- An error-rate spike shortly after a production deploy: roll back to the deployment
-- that was live before. Vercel rollback is instant and its revert promotes the newer one.
local recent_deploy_window = mitigate.duration("2h")

return {
  name = "error-rate-after-deploy",
  description = "Roll back a Vercel project when errors spike within 2h of a deploy",
  priority = 20,
  cooldown = "30m",
  matches = { alerts = { "HighErrorRate" } },

  propose = function(incident)
    local project = incident.labels.vercel_project or incident.service
    local deployments = mitigate.state("vercel", project)
    if deployments == nil or deployments.production == nil then
      mitigate.log("no deployment state for", project)
      return {}
    end
    local current = deployments.production
    local previous = lib.rollback.previous_ready(current.uid, deployments.candidates)
    local age = deployments.seconds_since_production_deploy or math.huge
    if previous == nil or age > recent_deploy_window then
      mitigate.log("not a recent deploy, or nothing to roll back to")
      return {}
    end
    return {
      {
        provider = "vercel", action = "rollback", target = project,
        parameters = { to_deployment = previous.uid, from_deployment = current.uid },
        ttl = "1h",
        reason = string.format("%s: error rate up %d minutes after deploy %s; back to %s",
                               incident.title, age // 60, current.uid, previous.uid),
      },
    }
  end,
}
