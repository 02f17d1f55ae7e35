-- Argo CD health check for kubetask.io/Task (resource.customizations.health.kubetask.io_Task).
--   Succeeded                              -> Healthy
--   Failed, Cancelled                      -> Degraded
--   Queued because its TaskQueue is paused -> Suspended
--   Pending, Queued, Running               -> Progressing (Degraded when Stalled=True, e.g. UnknownTaskType)
--   no status yet, or status older than the spec (observedGeneration < generation) -> Progressing
-- Tested by running it on Tasks in every phase: tests/chart/test_gitops.py.
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

local function explain(fallback)
  local c = condition("Ready")
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubetask operator to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubetask operator to observe generation " .. tostring(generation)
  return hs
end

local phase = obj.status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = explain("Succeeded")
elseif phase == "Failed" or phase == "Cancelled" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. explain(phase)
elseif phase == "Pending" or phase == "Queued" or phase == "Running" then
  local queued = condition("Queued")
  local stalled = condition("Stalled")
  if phase == "Queued" and queued ~= nil and queued.reason == "QueuePaused" then
    hs.status = "Suspended"
    hs.message = explain("The Task's TaskQueue is paused")
  elseif stalled ~= nil and stalled.status == "True" then
    hs.status = "Degraded"
    hs.message = (stalled.reason or phase) .. ": " .. (stalled.message or "")
  else
    hs.status = "Progressing"
    hs.message = phase .. ": " .. explain(phase)
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
