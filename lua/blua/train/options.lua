-- Trainer options and input checks: the defaults of every method, the validation of an
-- options table, of a data set against the network, and of the network itself.
local blua = require "blua"

local options = {}

function options.common_defaults()
  return {
    epochs = 10, batch = 128, seed = 1, lr = 4e-3, schedule = "cosine", decay = 0.85,
    optimizer = "adam", momentum = 0.9, weight_decay = 0,
    test = false, on_epoch = false, on_batch = false, verbose = true, log = false, plot = false,
    eval_train = true, threads = false,
    start_epoch = 1,     -- resume: the first epoch to run (the schedule continues from there)
    optim_state = false, -- resume: the optimiser state table of the earlier run (kept up to date)
    on_gradients = false, -- function(grads, params): runs once per step between the gradients
                          -- and the optimiser (distributed training all-reduces here)
    distributed = false,  -- "data": split every mini-batch over the ranks of mpirun (blua.dist)
    batch_shards = 1,     -- sum each batch's gradient from this many row shares: a single process
                          -- then forms the sums a data-parallel run over that many ranks forms
  }
end

-- Method knobs and their defaults, on top of the common ones.
options.method_defaults = {
  bregman = {
    inner = 1,          -- inner iterations (X-sweep then W-step) per mini-batch
    xsteps = 1,         -- X-sweeps per inner iteration
    mu = 1.0,           -- X-step: μ = mu times the safe step (see lifted.xstep_size)
    order = "backward", -- X-sweep order: backward (output first), forward, or oddeven
    tau = math.huge,    -- proximal anchor (1/(2τ))‖W − W^k‖² of the implicit SGD; off by default
    loss_weight = 0.1,  -- weight β of the loss against the layer penalties: E = β ℓ + Σ B_l;
                        -- below 1 it keeps the last hidden layer from turning linear (RESULTS.md)
    lr = 2e-3,          -- Adam's rate; 4e-3 let a deep (6 hidden layers) network collapse
    track_energy = true,
  },
  lifted = {
    inner = 1, xsteps = 1, mu = 1.0, order = "backward", tau = math.huge, track_energy = true,
    loss_weight = 1.0,
    gamma = 0.1,        -- weight of the quadratic penalties
    lr = 3e-3,
  },
  backprop = {},
}

-- The option names and defaults of a method.
function options.defaults(method)
  local o = options.common_defaults()
  for k, v in pairs(options.method_defaults[method]) do o[k] = v end
  return o
end

-- The checked options of a run: defaults filled in, unknown names and bad values rejected.
-- Errors point at the caller of blua.train.<method> (level 3 from here, as blua.train.<method> tail-calls the loop).
function options.check(method, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error(string.format("blua.train.%s: options table expected", method), 3) end
  local o = options.defaults(method)
  for k, v in pairs(opts) do
    if o[k] == nil then
      local names = {}
      for name in pairs(o) do names[#names + 1] = name end
      table.sort(names)
      error(string.format("blua.train.%s: unknown option '%s' (accepted: %s)", method, tostring(k),
        table.concat(names, ", ")), 3)
    end
    o[k] = v
  end
  -- The message names the type when the type is wrong ("2" is a string, not a bad number).
  local function got(v)
    if type(v) == "number" then return tostring(v) end
    return type(v) == "string" and string.format("string \"%s\"", v) or type(v)
  end
  local function positive_int(k)
    local v = o[k]
    if math.type(v) ~= "integer" then
      error(string.format("blua.train.%s: option '%s' must be an integer, got %s", method, k, got(v)), 4)
    elseif v < 1 then
      error(string.format("blua.train.%s: option '%s' must be a positive integer, got %d", method, k, v), 4)
    end
  end
  local function positive_number(k)
    local v = o[k]
    if type(v) ~= "number" then
      error(string.format("blua.train.%s: option '%s' must be a number, got %s", method, k, got(v)), 4)
    elseif not (v > 0) then
      error(string.format("blua.train.%s: option '%s' must be positive, got %s", method, k, tostring(v)), 4)
    end
  end
  positive_int("epochs"); positive_int("batch"); positive_int("batch_shards")
  if math.type(o.start_epoch) ~= "integer" then
    error(string.format("blua.train.%s: option 'start_epoch' must be an integer, got %s", method, got(o.start_epoch)), 3)
  end
  if o.on_epoch and type(o.on_epoch) ~= "function" then
    error(string.format("blua.train.%s: option 'on_epoch' must be a function, got %s", method, got(o.on_epoch)), 3)
  end
  if method ~= "backprop" then positive_int("inner"); positive_int("xsteps") end
  if not blua.optim.schedules[o.schedule] then
    error(string.format("blua.train.%s: unknown schedule '%s' (accepted: constant, cosine, exponential)", method, tostring(o.schedule)), 3)
  end
  local optimizers = {adam = true, sgd = true, nesterov = true, proxgrad = method ~= "backprop"}
  if not optimizers[o.optimizer] then
    error(string.format("blua.train.%s: unknown optimizer '%s' (accepted: adam, nesterov, sgd%s)", method,
      tostring(o.optimizer), method ~= "backprop" and ", proxgrad" or ""), 3)
  end
  -- proxgrad steps are 1/Lipschitz; lr is then the multiplier of that step.
  if o.optimizer == "proxgrad" and opts.lr == nil then o.lr = 1.0 end
  if o.order and not ({backward = true, forward = true, oddeven = true})[o.order] then
    error(string.format("blua.train.%s: unknown order '%s' (accepted: backward, forward, oddeven)", method, tostring(o.order)), 3)
  end
  positive_number("lr")
  for _, k in ipairs{"mu", "tau", "gamma", "loss_weight"} do
    if o[k] ~= nil then positive_number(k) end
  end
  if o.on_gradients and type(o.on_gradients) ~= "function" then
    error(string.format("blua.train.%s: on_gradients must be a function", method), 3)
  end
  return o
end

-- A data set {x =, y =} that fits the network (errors at level 3: the trainer's caller).
function options.check_data(method, net, data, what)
  if type(data) ~= "table" or not blua.isTensor(data.x) or not blua.isTensor(data.y) then
    error(string.format("blua.train.%s: %s must be a data set {x =, y =} (see blua.data)", method, what), 3)
  end
  local n, d = data.x:size()
  if d ~= net.sizes[1] or data.y:size(1) ~= n then
    error(string.format("size mismatch in 'train.%s': %s x is %dx%d and y has %d rows, the network takes %d inputs",
      method, what, n, d, data.y:size(1), net.sizes[1]), 3)
  end
  if not data.x:allFinite() then
    error(string.format("blua.train.%s: %s x contains NaN or Inf", method, what), 3)
  end
  local out = net.sizes[#net.sizes]
  local cols = data.y:dim() == 2 and data.y:size(2) or 1
  if cols ~= 1 and cols ~= out then
    error(string.format("size mismatch in 'train.%s': %s y has %d columns; give labels (N x 1) or targets (N x %d)",
      method, what, cols, out), 3)
  end
  if cols > 1 and not data.y:allFinite() then
    error(string.format("blua.train.%s: %s y contains NaN or Inf", method, what), 3)
  end
  if cols == 1 and n > 0 and out > 1 then
    local lo, hi = data.y:min(), data.y:max()
    if lo < 1 or hi > out or data.y:clone():floor():add(-1, data.y):abs():max() ~= 0 then
      error(string.format("bad labels in 'train.%s': %s y holds %s..%s; labels are the integers 1..%d%s",
        method, what, tostring(lo), tostring(hi), out,
        lo == 0 and " (1-based: class 1 is the first; add 1 to 0-based labels, y:add(1))" or ""), 3)
    end
  end
end

-- A network the trainers can take (errors at level 3).
function options.check_network(method, net)
  if getmetatable(net) ~= blua.nn.MLP then error(string.format("blua.train.%s: a blua.nn.mlp network expected", method), 3) end
  local L = net:nLayers()
  if L == 0 then error(string.format("blua.train.%s: the network has no layers", method), 3) end
  if method == "backprop" then
    for l = 1, L - 1 do
      local a = net:activation(l)
      if not a.builtin and not a._derivative then
        error(string.format("blua.train.backprop: activation '%s' has no derivative; define it with derivative = function(z) ... end, or train with blua.train.bregman", a.name), 3)
      end
    end
  end
  for l = 1, L do
    if not (net.W[l]:allFinite() and net.b[l]:allFinite()) then
      error(string.format("blua.train.%s: layer %d of the network contains NaN or Inf before training", method, l), 3)
    end
  end
end

-- Labels (N x 1, classes 1..C) become one-hot rows; a target matrix with one column per
-- output (one-hot rows, or values for an identity output) is used as it is. The second
-- result says whether y held labels (then accuracy can be measured).
function options.targets(net, y)
  local out = net.sizes[#net.sizes]
  if y:dim() == 2 and y:size(2) == out and out > 1 then return y, false end
  return blua.data.onehot(y, out), true
end

return options
