-- A latency regression: throttle abusive traffic at the WAF (halve the rate limit, never
-- below 100 requests per window) and turn off the most expensive feature.
return {
  name = "latency-throttle",
  description = "Halve the WAF rate limit and kill the expensive-recommendations flag",
  priority = 10,
  cooldown = "15m",
  matches = { alerts = { "HighLatency" }, environments = { "prod", "stage" } },

  propose = function(incident)
    local proposals = {}
    local acl = incident.labels.web_acl or "storefront-acl"
    local waf = mitigate.state("aws", "waf/" .. acl)
    if waf and waf.rate_limit then
      local limit = lib.throttle.tighten(waf.rate_limit, 0.5, 100)
      if limit then
        proposals[#proposals + 1] = {
          provider = "aws", action = "waf.rate_limit", target = "waf/" .. acl,
          parameters = { rule = waf.rule, limit = limit }, ttl = "30m",
          reason = string.format("p99 latency regression: rate limit %d -> %d", waf.rate_limit, limit),
        }
      end
    end
    proposals[#proposals + 1] = {
      provider = "flags", action = "flag.set", target = "expensive-recommendations",
      parameters = { variant = "off" }, ttl = "30m",
      reason = "p99 latency regression: shed the most expensive feature",
    }
    return proposals
  end,
}
