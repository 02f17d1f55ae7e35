-- Argo CD health check for kubetask.io/TaskSchedule (resource.customizations.health.kubetask.io_TaskSchedule).
--   spec.suspend (Suspended=True)                             -> Suspended
--   Ready=False (InvalidSchedule, TaskCreateRefused)          -> Degraded
--   Ready=True                                                -> Healthy (the runs' own Tasks have their own health)
--   no status yet, or status older than the spec (observedGeneration < generation) -> Progressing
-- Tested on statuses from the operator's own schedule plans: tests/chart/test_chart_gitops.py.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local ready = condition("Ready")
local generation = obj.metadata and obj.metadata.generation
local observed = obj.status and obj.status.observedGeneration
if ready == nil or (generation ~= nil and observed ~= nil and observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubetask operator to observe the schedule"
  return hs
end

local suspended = condition("Suspended")
if suspended ~= nil and suspended.status == "True" then
  hs.status = "Suspended"
  hs.message = "Suspended: no Tasks are created until spec.suspend is false"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
else
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
end
return hs
