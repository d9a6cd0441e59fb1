-- Database errors: when most queries fail, put the app in maintenance mode; otherwise
-- switch off the features that hit the database hardest.
return {
  name = "database-errors",
  description = "Supabase maintenance_mode or kill_switch_database on database errors",
  priority = 30,
  cooldown = "15m",
  matches = { alerts = { "DatabaseErrors" } },

  propose = function(incident)
    local ratio = tonumber(incident.annotations.error_ratio or "0") or 0
    local flag, value = "kill_switch_database", true
    if ratio >= 0.5 then flag = "maintenance_mode" end
    return {
      {
        provider = "supabase", action = "flag.set", target = flag,
        parameters = { value = value }, ttl = "30m",
        reason = string.format("database error ratio %.2f: %s on", ratio, flag),
      },
    }
  end,
}
