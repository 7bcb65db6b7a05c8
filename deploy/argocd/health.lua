-- Argo CD health of JujuSecret, JujuSecretGrant and JujuSecretBackend objects, read from
-- the operator's status: the Ready condition of the current generation.
--   Healthy      Ready=True
--   Suspended    spec.suspend (Ready=False, reason Suspended); the message says what
--                resuming would change (status.plan: keys, never values)
--   Progressing  no status for this generation yet, or a wait the operator retries by
--                itself (the JujuSecret a grant names is not Ready yet, an application
--                not deployed yet, a backend still storing revisions)
--   Degraded     any other Ready=False (Conflict, Forbidden, InvalidSpec, JujuUnavailable ...)
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  return hs
end
local ready = nil
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end
local message = ready.message or ""
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
elseif ready.reason == "Suspended" then
  hs.status = "Suspended"
  local plan = status.plan
  if plan ~= nil then
    local parts = {}
    for _, field in ipairs({"keysChanged", "keysAdded", "keysRemoved"}) do
      if plan[field] ~= nil and #plan[field] > 0 then
        table.insert(parts, field .. ": " .. table.concat(plan[field], ", "))
      end
    end
    local what = string.lower(plan.action)
    if plan.changes ~= nil and #plan.changes > 0 then
      what = what .. " " .. table.concat(plan.changes, ", ")
    end
    if #parts > 0 then
      what = what .. " (" .. table.concat(parts, "; ") .. ")"
    end
    hs.message = "Suspended; resuming would " .. what
  else
    hs.message = message
  end
elseif ready.reason == "SecretNotReady" or ready.reason == "ApplicationNotFound" or ready.reason == "InUse" then
  hs.status = "Progressing"
  hs.message = ready.reason .. ": " .. message
else
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. message
end
return hs
