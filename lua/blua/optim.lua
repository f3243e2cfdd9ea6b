-- Optimisers in the call shape of Torch's optim package:
--   x, {fx} = blua.optim.adam(opfunc, x, config, state)
-- opfunc(x) returns f(x) and the gradient df/dx. x may be one tensor or a list of tensors
-- (then the gradient is a list of the same shapes). State (moments, step count) lives in the
-- state table, so several parameter groups can each keep their own. Updates are fused C
-- kernels (runtime/optim.c). Unknown config names are errors.
local blua = require "blua"

local optim = {}

-- The state keys an optimiser keeps in config when it is called without a state table.
local state_keys = {m = true, v = true, t = true, buf = true, anchor = true}

local function check_config(name, config, defaults)
  config = config or {}
  if type(config) ~= "table" then
    error(string.format("blua.optim.%s: config must be a table, got %s", name, type(config)), 3)
  end
  for k in pairs(config) do
    if defaults[k] == nil and not state_keys[k] then
      local names = {}
      for d in pairs(defaults) do names[#names + 1] = d end
      table.sort(names)
      error(string.format("blua.optim.%s: unknown option '%s' (accepted: %s)", name, tostring(k),
        table.concat(names, ", ")), 3)
    end
  end
  local c = {}
  for k, v in pairs(defaults) do
    c[k] = config[k]
    if c[k] == nil then c[k] = v end
    if type(c[k]) ~= type(v) then
      error(string.format("blua.optim.%s: option '%s' must be a %s, got %s", name, k, type(v), type(c[k])), 3)
    end
  end
  return c
end

local function as_list(x) return blua.isTensor(x) and {x} or x end

-- The moment buffers of state, made on first use with the shapes of params.
local function buffers(state, key, params)
  local b = state[key]
  if not b then
    b = {}
    for i, p in ipairs(params) do b[i] = blua.zeros(p:size()) end
    state[key] = b
  end
  return b
end

local adam_defaults = {learningRate = 1e-3, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weightDecay = 0}

function optim.adam(opfunc, x, config, state)
  local c = check_config("adam", config, adam_defaults)
  state = state or config or {}
  local fx, grads = opfunc(x)
  local params, g = as_list(x), as_list(grads)
  local m, v = buffers(state, "m", params), buffers(state, "v", params)
  state.t = (state.t or 0) + 1
  blua._adam(params, g, m, v, c.learningRate, c.beta1, c.beta2, c.epsilon, c.weightDecay, state.t)
  return x, {fx}
end

-- The flat lists of the last _adam_groups call per states table (a training run calls it with
-- the same tensors every batch): still right when every tensor is the one the lists hold.
local group_lists = setmetatable({}, {__mode = "k"})

local function same_lists(lists, params, grads, states)
  local xs, gs, ms, vs = lists[1], lists[2], lists[3], lists[4]
  local i = 0
  for k, st in ipairs(states) do
    local m, v, g = st.m, st.v, grads[k]
    if not (m and v) then return false end
    for j, p in ipairs(params[k]) do
      i = i + 1
      if xs[i] ~= p or gs[i] ~= g[j] or ms[i] ~= m[j] or vs[i] ~= v[j] then return false end
    end
  end
  return i == #xs
end

-- Adam on several parameter groups (params[k], grads[k]: lists), each with a state of its own as
-- optim.adam keeps it (states[k]): one fused call for them all when their step counts agree,
-- as they do in a training run, else group by group. For the trainers: one hand-off to the
-- threads per batch instead of one per tensor.
-- config: as for optim.adam; or settings that optim._adam_settings checked already (a
-- trainer's, made once per run, whose rate it sets each batch), passed as `checked`.
function optim._adam_groups(params, grads, states, config, checked)
  local c = checked or check_config("adam", config, adam_defaults)
  local t
  for _, st in ipairs(states) do
    local next_t = (st.t or 0) + 1
    if t == nil then t = next_t elseif t ~= next_t then t = false end
  end
  if not t then
    for k, st in ipairs(states) do optim.adam(function() return 0, grads[k] end, params[k], config, st) end
    return
  end
  local lists = group_lists[states]
  if not (lists and same_lists(lists, params, grads, states)) then
    local xs, gs, ms, vs = {}, {}, {}, {}
    for k, st in ipairs(states) do
      local m, v = buffers(st, "m", params[k]), buffers(st, "v", params[k])
      for j, p in ipairs(params[k]) do
        local i = #xs + 1
        xs[i], gs[i], ms[i], vs[i] = p, grads[k][j], m[j], v[j]
      end
    end
    lists = {xs, gs, ms, vs}
    group_lists[states] = lists
  end
  for _, st in ipairs(states) do st.t = t end
  blua._adam(lists[1], lists[2], lists[3], lists[4], c.learningRate, c.beta1, c.beta2, c.epsilon, c.weightDecay, t)
end

-- Adam's settings from config, checked (every option filled in): for optim._adam_groups.
function optim._adam_settings(config) return check_config("adam", config, adam_defaults) end

-- For an epoch that runs its Adam steps in C (blua._backpropEpoch): the moments of the groups
-- params[k] with states states[k] as two flat lists, made when missing as optim._adam_groups
-- makes them, and the groups' step count; nil when the groups' counts differ (then
-- optim._adam_groups steps them group by group).
function optim._adam_moments(params, states)
  local t
  for _, st in ipairs(states) do
    if t == nil then t = st.t or 0 elseif t ~= (st.t or 0) then return nil end
  end
  local ms, vs = {}, {}
  for k, st in ipairs(states) do
    local m, v = buffers(st, "m", params[k]), buffers(st, "v", params[k])
    for j = 1, #params[k] do ms[#ms + 1], vs[#vs + 1] = m[j], v[j] end
  end
  return ms, vs, t or 0
end

local sgd_defaults = {learningRate = 1e-2, momentum = 0, nesterov = false, weightDecay = 0}

function optim.sgd(opfunc, x, config, state)
  local c = check_config("sgd", config, sgd_defaults)
  if c.nesterov and c.momentum <= 0 then error("blua.optim.sgd: nesterov needs a positive momentum", 2) end
  state = state or config or {}
  local fx, grads = opfunc(x)
  local params, g = as_list(x), as_list(grads)
  local buf = buffers(state, "buf", params)
  for i, p in ipairs(params) do
    blua._sgd(p, g[i], buf[i], c.learningRate, c.momentum, c.nesterov, c.weightDecay)
  end
  return x, {fx}
end

-- The proximal-gradient step on a smooth term plus the anchor (1/(2τ))‖x − anchor‖²: a
-- gradient step with the Lipschitz step 1/(lipschitz + 1/τ). config: lipschitz (default 1),
-- tau (math.huge for no anchor); state.anchor holds the anchor tensors.
local prox_defaults = {lipschitz = 1.0, tau = math.huge, scale = 1.0}

function optim.proxgrad(opfunc, x, config, state)
  local c = check_config("proxgrad", config, prox_defaults)
  state = state or {}
  local fx, grads = opfunc(x)
  local params, g = as_list(x), as_list(grads)
  local inv_tau = c.tau == math.huge and 0 or 1 / c.tau
  local step = c.scale / (c.lipschitz + inv_tau)
  for i, p in ipairs(params) do
    if inv_tau > 0 and state.anchor then
      -- gradient of the anchor term: (p − anchor)/τ
      g[i]:add(inv_tau, p):add(-inv_tau, state.anchor[i])
    end
    p:add(-step, g[i])
  end
  return x, {fx}
end

-- Learning-rate schedules: rate at epoch e (1-based, fractional within an epoch) of n.
optim.schedules = {
  constant = function(base) return base end,
  cosine = function(base, e, n) return base * 0.5 * (1 + math.cos(math.pi * math.min(e - 1, n) / n)) end,
  exponential = function(base, e, _, decay) return base * (decay or 0.85) ^ (e - 1) end,
}

return optim
