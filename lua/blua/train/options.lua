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
    batch_shards = 2,     -- sum each batch's gradient from this many row shares (in share order):
                          -- one process forms the sums a data-parallel run over that many ranks
                          -- forms, and the shares run side by side on the threads
    l1 = false,           -- {[l] = alpha}: α‖x_l‖₁ on hidden layer l's auxiliary variables
                          -- (back-prop: on its activations), docs/design.md "L1 penalties"
  }
end

-- Method knobs and their defaults, on top of the common ones.
options.method_defaults = {
  bregman = {
    inner = 1,          -- inner iterations (X-sweep then W-step) per mini-batch
    xsteps = 1,         -- X-sweeps per inner iteration
    mu = 1.0,           -- X-step: μ = mu times the safe step (see lifted.xstep_size)
    mu_last = false,    -- the multiplier of the last hidden layer's X-step (false: mu)
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

-- Defaults that differ for networks with convolutions (RESULTS.md, "Convolutional networks"):
-- the Bregman rate of 2e-3 protects deep MLPs but slows the CNN down (Fashion-MNIST, 20 000
-- images, 3 epochs: 85.0 % test at 2e-3, 86.3 % at 4e-3, 87.3 % at 8e-3; back-prop 86.7 %).
options.conv_defaults = {
  bregman = {lr = 8e-3},
}

-- Defaults that differ for regression networks, those with an identity output (squared error;
-- RESULTS.md, "Sparse denoising autoencoder"). There the loss is itself the output layer's
-- Bregman penalty, so β = 1 weighs every layer alike: the energy Σ_l B_l of the paper. Every
-- Bregman X-step is a proximal gradient step on a convex smooth part (curvature at most the
-- bound of lifted.xstep_size) with a prox of μΦ, Φ 1-strongly convex; for μ up to 2/curvature
-- the gradient half is non-expansive and the prox contracts by 1/(1 + μ), so mu = 2 is the
-- largest multiplier the bound covers, and the fastest contraction it guarantees. (mu_last
-- past 2 closes the sparse autoencoder's gap to back-prop but diverges or loses on other
-- regression networks, so it stays off: docs/design.md, "The last hidden layer's step".)
-- Classifiers (softmax output) keep β = 0.1 and mu = 1. Back-prop's Adam rate for these
-- networks is Bregman's 2e-3: the classifiers' 4e-3 left the four-layer denoising autoencoder
-- 1.25 dB short (16.47 against 17.72 dB, 3 seeds) and the five-layer one 0.83 dB.
options.regression_defaults = {
  bregman = {loss_weight = 1.0, mu = 2.0},
  backprop = {lr = 2e-3},
}

-- Whether net (checked or not) is a regression network: a blua.nn network whose output
-- activation is the identity.
function options.is_regression(net)
  if getmetatable(net) ~= blua.nn.MLP or type(net.activations) ~= "table" or #net.activations == 0 then return false end
  local ok, act = pcall(net.activation, net, #net.activations)
  return ok and act.name == "identity"
end

-- Whether net (checked or not) has a convolution in any block.
function options.has_conv(net)
  if type(net) ~= "table" or type(net.ops) ~= "table" then return false end
  for _, records in pairs(net.ops) do
    for _, r in ipairs(type(records) == "table" and records or {}) do
      if type(r) == "table" and r.kind == "conv2d" then return true end
    end
  end
  return false
end

-- The option names and defaults of a method (for `net`, when given: see conv_defaults and
-- regression_defaults).
function options.defaults(method, net)
  local o = options.common_defaults()
  for k, v in pairs(options.method_defaults[method]) do o[k] = v end
  if net and options.has_conv(net) then
    for k, v in pairs(options.conv_defaults[method] or {}) do o[k] = v end
  end
  if net and options.is_regression(net) then
    for k, v in pairs(options.regression_defaults[method] or {}) do o[k] = v end
  end
  return o
end

-- What the options not checked by value in options.check may hold: a wrong type is an error
-- up front, not a surprise an epoch later (or a string silently taken as a number).
local kinds = {
  seed = "integer", decay = "number", momentum = "number", weight_decay = "number",
  verbose = "boolean", eval_train = "boolean", track_energy = "boolean",
  log = "string or false", mu_last = "number or false", plot = "string or false", threads = "integer or false",
  on_batch = "function or false", optim_state = "table or false",
  test = "table or false",
}

local function is_kind(v, kind)
  if kind:find("or false", 1, true) and v == false then return true end
  local base = kind:match("^(%a+)")
  if base == "integer" then return math.type(v) == "integer" end
  return type(v) == base
end

local function check_kinds(method, o)
  for k, kind in pairs(kinds) do
    if o[k] ~= nil and not is_kind(o[k], kind) then
      local v = o[k]
      error(string.format("blua.train.%s: option '%s' must be %s %s, got %s", method, k, kind:find("^i") and "an" or "a", kind,
        type(v) == "string" and string.format("string \"%s\"", v) or math.type(v) == "float" and tostring(v) or type(v)), 4)
    end
  end
  local function range(k, ok, what)
    if not ok then error(string.format("blua.train.%s: option '%s' must be %s, got %s", method, k, what, tostring(o[k])), 5) end
  end
  range("decay", o.decay > 0 and o.decay <= 1, "in (0, 1]")
  range("momentum", o.momentum >= 0 and o.momentum < 1, "in [0, 1)")
  range("weight_decay", o.weight_decay >= 0 and o.weight_decay < math.huge, "finite and at least 0")
  for _, k in ipairs{"lr", "mu", "mu_last", "gamma", "loss_weight"} do
    if o[k] then range(k, o[k] < math.huge, "finite") end
  end
  if o.threads then range("threads", o.threads >= 1, "at least 1") end
  range("start_epoch", math.type(o.start_epoch) == "integer" and o.start_epoch >= 1 and o.start_epoch <= o.epochs,
    string.format("an integer in 1..epochs (epochs = %d)", o.epochs))
end

-- The checked options of a run: defaults filled in, unknown names and bad values rejected.
-- Errors point at the caller of blua.train.<method> (level 3 from here, as blua.train.<method> tail-calls the loop).
function options.check(method, opts, net)
  opts = opts or {}
  if type(opts) ~= "table" then error(string.format("blua.train.%s: options table expected", method), 3) end
  local o = options.defaults(method, net)
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
  if o.mu_last then positive_number("mu_last") end
  if o.on_gradients and type(o.on_gradients) ~= "function" then
    error(string.format("blua.train.%s: on_gradients must be a function", method), 3)
  end
  check_kinds(method, o)
  if o.l1 and type(o.l1) ~= "table" then
    error(string.format("blua.train.%s: l1 must be a table {[layer] = alpha}", method), 3)
  end
  return o
end

-- y as a matrix: a 1-D y of N entries is read as N x 1 (N labels, or the N targets of a
-- single-output network), as Torch's criterions take a 1-D vector of class labels.
function options.as_matrix(y)
  if y:dim() == 1 then return y:contiguous():view(y:size(1), 1) end
  return y
end

-- Whether a y of `cols` columns holds class labels for net: a single column when the network
-- has more than one output. A y with one column per output is a target matrix (one-hot or
-- probability rows, or real values for regression).
function options.is_labels(net, cols)
  return cols == 1 and net.sizes[#net.sizes] > 1
end

-- The L1 weights {[l] = alpha > 0} of an l1 option, checked against the network: hidden
-- layers only, non-negative finite weights, no softmax layer (errors at level 3).
function options.check_l1(method, net, l1)
  local out = {}
  for l, alpha in pairs(l1 or {}) do
    if math.type(l) ~= "integer" or l < 1 or l >= net:nLayers() then
      error(string.format("blua.train.%s: l1 layer %s is not a hidden layer (1..%d)", method, tostring(l),
        net:nLayers() - 1), 3)
    end
    if type(alpha) ~= "number" or not (alpha >= 0 and alpha < math.huge) then
      error(string.format("blua.train.%s: l1 weight of layer %d must be a non-negative number, got %s", method, l,
        tostring(alpha)), 3)
    end
    if net:activation(l).name == "softmax" then
      error(string.format("blua.train.%s: l1 on layer %d: softmax takes no L1 penalty", method, l), 3)
    end
    if alpha > 0 then out[l] = alpha end
  end
  return out
end

-- A data set {x =, y =} that fits the network (errors at level 3: the trainer's caller).
-- Returns the set as the trainer uses it: {x =, y = (2-D), n =}. fname names the caller in
-- messages (default blua.train.<method>).
function options.check_data(method, net, data, what, fname)
  fname = fname or "blua.train." .. method
  if type(data) ~= "table" or not blua.isTensor(data.x) or not blua.isTensor(data.y) then
    error(string.format("%s: %s must be a data set {x =, y =} (see blua.data)", fname, what), 3)
  end
  if data.x:dim() ~= 2 then
    error(string.format("size mismatch in '%s': %s x must be N x %d (one sample per row), got a 1-D tensor of %d",
      fname, what, net.sizes[1], data.x:size(1)), 3)
  end
  local n, d = data.x:size()
  if n == 0 then
    error(string.format("%s: %s has no rows (an empty data set has no mean loss)", fname, what), 3)
  end
  local y = options.as_matrix(data.y)
  if d ~= net.sizes[1] or y:size(1) ~= n then
    error(string.format("size mismatch in '%s': %s x is %dx%d and y has %d rows, the network takes %d inputs",
      fname, what, n, d, y:size(1), net.sizes[1]), 3)
  end
  if not data.x:allFinite() then
    error(string.format("%s: %s x contains NaN or Inf", fname, what), 3)
  end
  local out = net.sizes[#net.sizes]
  local cols = y:size(2)
  if cols ~= 1 and cols ~= out then
    error(string.format("size mismatch in '%s': %s y has %d columns; give labels (N x 1) or targets (N x %d)",
      fname, what, cols, out), 3)
  end
  if not y:allFinite() then
    error(string.format("%s: %s y contains NaN or Inf", fname, what), 3)
  end
  if options.is_labels(net, cols) then
    local lo, hi = y:min(), y:max()
    local integral = y:clone():floor():add(-1, y):abs():max() == 0
    if lo < 1 or hi > out or not integral then
      local hint = ""
      if lo == 0 and integral then
        hint = " (1-based: class 1 is the first; add 1 to 0-based labels, y:add(1))"
      elseif not integral then
        hint = string.format(" (for regression give one target column per output, N x %d, and a non-softmax output)", out)
      end
      error(string.format("bad labels in '%s': %s y holds %s..%s; labels are the integers 1..%d%s",
        fname, what, tostring(lo), tostring(hi), out, hint), 3)
    end
  else
    -- The loss is the output's Bregman penalty, finite only for targets in the closure of
    -- the output activation's range (Ψ(y) < ∞): relu needs y ≥ 0, sigmoid [0, 1], softmax
    -- probability rows.
    local act = net:activation(net:nLayers())
    if act:psi(y) == math.huge then
      error(string.format("bad targets in '%s': %s y lies outside the range of the output activation '%s', so the loss is infinite%s",
        fname, what, act.name, act.name == "softmax" and " (softmax targets are rows of probabilities summing to 1)" or ""), 3)
    end
  end
  return {x = data.x, y = y, n = n}
end

-- A network the trainers can take (errors at level 3).
function options.check_network(method, net, fname, o)
  fname = fname or "blua.train." .. method
  if getmetatable(net) ~= blua.nn.MLP then error(string.format("%s: a blua.nn.mlp network expected", fname), 3) end
  local L = net:nLayers()
  if L == 0 then error(string.format("%s: the network has no layers", fname), 3) end
  if method == "backprop" then
    for l = 1, L - 1 do
      local a = net:activation(l)
      if not a.builtin and not a._derivative then
        error(string.format("%s: activation '%s' has no derivative; define it with derivative = function(z) ... end, or train with blua.train.bregman", fname, a.name), 3)
      end
    end
  end
  -- Every method's loss is the output activation's Bregman penalty B(y, z) = Φ(y) + Φ*(z) − ⟨y, z⟩.
  local out = net:activation(L)
  if not out.has_energy then
    error(string.format("%s: the output activation '%s' has no loss: the loss of an output layer is its Bregman penalty, "
      .. "which needs psi and conj; define them in blua.activation.define, or use a built-in output (softmax, identity, sigmoid, ...)",
      fname, out.name), 3)
  end
  if out.name == "softmax" and net.sizes[L + 1] == 1 then
    error(string.format("%s: a softmax over 1 output is the constant 1 and cannot learn; use 2 outputs for two classes, "
      .. "or a sigmoid or identity output", fname), 3)
  end
  for l = 1, L do
    local b = net:block(l)
    for _, p in ipairs(b:params()) do
      if not p:allFinite() then
        error(string.format("%s: layer %d of the network contains NaN or Inf before training", fname, l), 3)
      end
    end
    -- the Lipschitz step of a W-gradient is worked out for dense layers only
    if o and o.optimizer == "proxgrad" and not b.dense then
      error(string.format("%s: optimizer 'proxgrad' needs dense layers; layer %d is a %s block", fname, l,
        net.ops[l][1].kind), 3)
    end
  end
end

-- Training targets of a checked y (2-D): labels become one-hot rows, a target matrix is used
-- as it is. The second result says whether y held labels (then accuracy can be measured).
function options.targets(net, y)
  local out = net.sizes[#net.sizes]
  if not options.is_labels(net, y:size(2)) then return y, false end
  return blua.data.onehot(y, out), true
end

return options
