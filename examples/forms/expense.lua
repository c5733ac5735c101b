-- expense.lua: the "expense" form type (docs/forms.md, "Form types").
--
-- A claimant asks to be paid back for an expense.  The router of the
-- claimant's domain inserts the claimant's manager and, for an amount
-- over the threshold, a finance approver; the final party checks the
-- same rules again before it accepts the form as approved.
--
-- Parameters (each party's own configuration, form.params):
--   threshold  amounts above it need finance (default "1000")
--   finance    the finance approver's mailbox (required above threshold)
--
-- Runs in the Lua sandbox (docs/plugins-lua.md): no io, os or require.

local M = {}

local REQUIRED = { "amount", "currency", "purpose", "date", "manager" }

local function threshold(form)
  local t = tonumber(form.params.threshold or "1000")
  if t == nil then error("the parameter threshold is not a number") end
  return t
end

local function finance(form)
  local f = form.params.finance
  if f ~= nil and f ~= "" then return f:lower() end
end

function M.definition()
  return {
    name = "expense",
    version = "1.0",
    title = "Expense claim",
    fields = {
      { name = "amount", type = "decimal", label = "Amount", required = true },
      { name = "currency", type = "text", label = "Currency",
        required = true },
      { name = "purpose", type = "text", label = "Purpose", required = true },
      { name = "date", type = "date", label = "Date", required = true },
      { name = "manager", type = "mailbox", label = "Your manager",
        required = true },
    },
  }
end

-- The approvers a router inserts: the manager, and finance above the
-- threshold; nobody already on the route, nobody twice.
function M.route(form)
  local f = form.fields
  local wanted = { f.manager }
  local approvers, seen = {}, {}

  if type(f.amount) ~= "number" or f.manager == nil then
    error("the form has no amount or no manager")
  end
  if f.amount > threshold(form) then
    local fin = finance(form)
    if fin == nil then
      error("an expense over " .. threshold(form) .. " needs a finance " ..
        "approver, and the parameter finance is not set")
    end
    wanted[#wanted + 1] = fin
  end
  for _, hop in ipairs(form.route) do seen[hop.name] = true end
  for _, who in ipairs(wanted) do
    if not seen[who] then
      seen[who] = true
      approvers[#approvers + 1] = who
    end
  end
  return approvers
end

-- true, or the reason the form breaks the type's rules.  The approval
-- rules apply to a form that is to be accepted as approved.
function M.check(form)
  local f = form.fields
  for _, name in ipairs(REQUIRED) do
    if f[name] == nil then return "the field " .. name .. " is missing" end
  end
  if type(f.amount) ~= "number" or f.amount <= 0 then
    return "the amount must be greater than zero"
  end
  if f.manager == form.claimant then
    return "a claimant cannot be their own manager"
  end
  if form.outcome ~= "approved" then return true end
  local approved = {}
  for _, a in ipairs(form.approvals) do approved[a.approver] = true end
  if not approved[f.manager] then
    return "the manager " .. f.manager .. " has not approved"
  end
  if f.amount > threshold(form) then
    local fin = finance(form)
    if fin == nil then
      return "an expense over " .. threshold(form) .. " needs finance, " ..
        "and the parameter finance is not set here"
    end
    if not approved[fin] then
      return "an expense over " .. threshold(form) .. " must be approved " ..
        "by finance (" .. fin .. ")"
    end
  end
  return true
end

function M.present(form)
  local t = form.text
  local lines = {
    string.format('Expense claim by %s: %s %s for "%s" on %s',
      form.claimant, t.amount or "?", t.currency or "?", t.purpose or "?",
      t.date or "?"),
    "Manager: " .. (t.manager or "?"),
  }
  for _, a in ipairs(form.approvals) do
    local line = "Approved by " .. a.approver
    if a.signer ~= a.approver then
      line = line .. " (signed by " .. a.signer .. ", delegate)"
    end
    lines[#lines + 1] = line
  end
  lines[#lines + 1] = "Status: " .. form.outcome
  return lines
end

return M
