-- The three trainers: lifted Bregman (eq. 2 of Wang & Benning), classical lifted (eq. 1)
-- and back-propagation, on one loop so they differ only where the methods differ.
--
--   local history = blua.train.bregman(net, data, opts)
--
-- data = {x = N x d, y = N x 1 labels 1..C} (blua.data.*). Every option has a tuned default
-- (RESULTS.md has the sweep behind them); unknown option names are errors. Each returns the
-- per-epoch history: {epoch, loss, energy, energies = {per layer}, train_acc, test_acc,
-- lr, time, seconds}.
--
-- The trainer is split by job (docs/design.md, "Trainer structure"):
--   train/options.lua   defaults and checks of options, data and network
--   train/loop.lua      epochs, mini-batches, scratch space, evaluation, history
--   train/stepper.lua   gradient buffers, optimiser state per block, the on_gradients hook
--   train/lifted.lua    the lifted batch state: X-steps, W-gradients, energies, step sizes
--   train/backprop.lua  back-propagation
--   train/report.lua    CSV log, epoch summary, plot
local blua = require "blua"
local options = require "blua.train.options"
local loop = require "blua.train.loop"
local lifted = require "blua.train.lifted"
local backprop = require "blua.train.backprop"

local train = {}

-- opts of the research building blocks: a table of known names only (a misspelt one would
-- silently fall back to its default).
local function check_opts(fname, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(string.format("blua.train.%s: options table expected", fname), 3) end
  local names = {}
  for k in pairs(known) do names[#names + 1] = k end
  table.sort(names)
  for k in pairs(opts) do
    if not known[k] then
      error(string.format("blua.train.%s: unknown option '%s' (accepted: %s)", fname, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  for _, k in ipairs{"gamma", "loss_weight", "mu", "mu_scale"} do
    if opts[k] ~= nil and not (type(opts[k]) == "number" and opts[k] > 0 and opts[k] < math.huge) then
      error(string.format("blua.train.%s: option '%s' must be a positive number, got %s", fname, k, tostring(opts[k])), 3)
    end
  end
  return opts
end

-- X[l] (l in first..last) must be rows x sizes[l+1]: tensor copies accept any shape with the
-- same element count, so a transposed X would otherwise be taken silently.
local function check_aux(fname, net, X, rows, first, last)
  for l = first, last do
    local t = X[l]
    if t ~= nil then
      local r, c = blua.isTensor(t) and t:dim() == 2 and t:size(1), blua.isTensor(t) and t:dim() == 2 and t:size(2)
      if r ~= rows or c ~= net.sizes[l + 1] then
        error(string.format("size mismatch in 'train.%s': X[%d] is %s, layer %d needs %dx%d", fname, l,
          blua.isTensor(t) and table.concat({t:size()}, "x") or type(t), l, rows, net.sizes[l + 1]), 3)
      end
    end
  end
end

-- blua.train.<method> tail-calls the loop, so option errors raised two levels down point at
-- the caller's line. A fourth argument (a second options table, say) is an error.
local usage, hint = "net, data [, opts]", "; every option goes in opts"
function train.bregman(net, data, opts, ...)
  blua._noExtra("blua.train.bregman", usage, hint, ...)
  return loop.run("bregman", net, data, opts)
end
function train.lifted(net, data, opts, ...)
  blua._noExtra("blua.train.lifted", usage, hint, ...)
  return loop.run("lifted", net, data, opts)
end
function train.backprop(net, data, opts, ...)
  blua._noExtra("blua.train.backprop", usage, hint, ...)
  return loop.run("backprop", net, data, opts)
end

--- Gradients for checking and for research scripts: a list in the order of net:parameters()
-- (W1, b1, W2, b2, ... for dense layers).
-- backprop: of the mean loss over the rows of x (the loss is the second result). bregman / lifted: of the mean lifted energy
-- at the auxiliary variables opts.X ({[1] = X1, ...}; default the forward pass), with the
-- targets as X[L], and the loss weighted by opts.loss_weight (default 1, as blua.metrics.energy).
-- opts.lua = true uses the tensor-method path instead of the C kernels. opts.l1 = {[l] = alpha}
-- as the trainers' option (it enters the back-prop loss; the lifted W-gradients do not see it).
function train.gradients(method, net, x, y, opts)
  opts = check_opts("gradients", opts, {X = true, gamma = true, loss_weight = true, lua = true, l1 = true})
  if method ~= "backprop" and method ~= "bregman" and method ~= "lifted" then
    error(string.format("blua.train.gradients: unknown method '%s' (accepted: backprop, bregman, lifted)", tostring(method)), 2)
  end
  options.check_network(method, net, "blua.train.gradients")
  local d = options.check_data(method, net, {x = x, y = y}, "the batch", "blua.train.gradients")
  local L = net:nLayers()
  if opts.X ~= nil then
    if type(opts.X) ~= "table" then error("blua.train.gradients: opts.X must be a table {[1] = X1, ...}", 2) end
    check_aux("gradients", net, opts.X, d.n, 1, L - 1)
  end
  local Y = options.targets(net, d.y)
  local ws = loop.workspace(net, x:size(1), {})
  local grads, per_block = {}, {}
  for l = 1, L do
    per_block[l] = {}
    for j, p in ipairs(net:block(l):params()) do
      grads[#grads + 1] = blua.zeros(p:size())
      per_block[l][j] = grads[#grads]
    end
  end
  local l1 = options.check_l1("gradients", net, opts.l1)
  if method == "backprop" then return grads, backprop.gradients(net, x, Y, ws, per_block, nil, l1) end
  local o = {gamma = opts.gamma or options.method_defaults.lifted.gamma, loss_weight = opts.loss_weight}
  local batch = lifted.new_batch(net, method == "bregman" and "bregman" or "quadratic", o, ws, opts.lua)
  batch:forward(x, Y)
  for l = 1, L - 1 do
    if opts.X and opts.X[l] then batch:set_x(l, opts.X[l]) end
  end
  batch:wgrads(1 / x:size(1), per_block)
  batch:finish()
  return grads
end

--- One X-step of hidden layer l, in place on X[l] (X as in train.gradients, X[L] = one-hot
-- targets). mu defaults to mu_scale (1) times the safe step for the energy with the loss weighted
-- by opts.loss_weight (default 1); returns the step used. opts.l1 = {[l] = alpha} as the trainers'.
function train.xstep(method, net, X, l, opts)
  opts = check_opts("xstep", opts, {mu = true, mu_scale = true, gamma = true, loss_weight = true, lua = true, l1 = true})
  if method ~= "bregman" and method ~= "lifted" then
    error(string.format("blua.train.xstep: unknown method '%s' (accepted: bregman, lifted)", tostring(method)), 2)
  end
  options.check_network(method, net, "blua.train.xstep")
  local L = net:nLayers()
  if math.type(l) ~= "integer" or l < 1 or l >= L then
    error(string.format("blua.train.xstep: l must be a hidden layer, an integer in 1..%d, got %s", L - 1, tostring(l)), 2)
  end
  if type(X) ~= "table" or not blua.isTensor(X[0]) or X[0]:dim() ~= 2 or X[0]:size(1) == 0 then
    error("blua.train.xstep: X[0] must be the batch's inputs (a tensor with rows)", 2)
  end
  if X[0]:size(2) ~= net.sizes[1] then
    error(string.format("size mismatch in 'train.xstep': X[0] is %dx%d, the network takes %d inputs", X[0]:size(1), X[0]:size(2), net.sizes[1]), 2)
  end
  for k = 1, L do
    if X[k] == nil then error(string.format("blua.train.xstep: X[%d] is missing (X[1..L-1] auxiliary variables, X[L] the targets)", k), 2) end
  end
  check_aux("xstep", net, X, X[0]:size(1), 1, L)
  local o = {gamma = opts.gamma or options.method_defaults.lifted.gamma, mu = opts.mu_scale or 1.0,
    loss_weight = opts.loss_weight, l1_layers = options.check_l1("xstep", net, opts.l1)}
  local penalty = method == "bregman" and "bregman" or "quadratic"
  local ws = {X = X, Z = {}, G = {}, D = {}}
  local rows = X[0]:size(1)
  for k = 1, net:nLayers() do
    ws.Z[k] = blua.zeros(rows, net.sizes[k + 1])
    ws.G[k] = blua.zeros(rows, net.sizes[k + 1])
    ws.D[k] = blua.zeros(rows, net.sizes[k + 1])
  end
  local batch = lifted.new_batch(net, penalty, o, ws, opts.lua)
  local mu = opts.mu or lifted.xstep_size(net, o, penalty, l)
  batch:xstep(l, mu)
  return mu
end

-- The option names and defaults of a method, for help texts and scripts; with a network, the
-- defaults for that network (a few differ for networks with convolutions).
function train.defaults(method, net)
  if not options.method_defaults[method] then error("blua.train.defaults: unknown method '" .. tostring(method) .. "'", 2) end
  return options.defaults(method, net)
end

return train
