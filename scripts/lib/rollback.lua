-- lib.rollback: choosing what to roll back to.
local rollback = {}

-- The newest ready deployment other than the current one, from a list ordered newest
-- first ({uid, ready} tables). nil when there is nothing to go back to.
function rollback.previous_ready(current_uid, candidates)
  for _, candidate in ipairs(candidates or {}) do
    if candidate.uid ~= current_uid and candidate.ready then
      return candidate
    end
  end
  return nil
end

return rollback
