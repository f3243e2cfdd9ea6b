-- The three trainers: lifted Bregman (eq. 2 of Wang & Benning), classical lifted (eq. 1)
-- and back-propagation, on one loop so they differ only where the methods differ.
--
--   local history = blua.train.bregman(net, data, opts)
--
-- data = {x = N x d, y = N x 1 labels 1..C} (blua.data.*). Every option has a tuned default
-- (RESULTS.md has the sweep behind them); unknown option names are errors. Each returns the
-- per-epoch history: {epoch, loss, energy, energies = {per layer}, train_acc, test_acc,
-- lr, time, seconds}.
local blua = require "blua"

local train = {}

-- ---------------------------------------------------------------------------------------
-- options

local function common_defaults()
  return {
    epochs = 10, batch = 128, seed = 1, lr = 4e-3, schedule = "cosine", decay = 0.85,
    optimizer = "adam", momentum = 0.9, weight_decay = 0,
    test = false, on_epoch = false, on_batch = false, verbose = true, log = false, plot = false,
    eval_train = true, threads = false,
    start_epoch = 1,     -- resume: the first epoch to run (the schedule continues from there)
    optim_state = false, -- resume: the optimiser state table of the earlier run (kept up to date)
  }
end

-- Method knobs and their defaults, on top of the common ones.
local method_defaults = {
  bregman = {
    inner = 1,          -- inner iterations (X-sweep then W-step) per mini-batch
    xsteps = 1,         -- X-sweeps per inner iteration
    mu = 1.0,           -- X-step: μ = mu times the safe step (see xstep_size)
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

local function check_options(method, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error(string.format("blua.train.%s: options table expected", method), 3) end
  local o = common_defaults()
  for k, v in pairs(method_defaults[method]) do o[k] = v end
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
  local function positive_int(k)
    if math.type(o[k]) ~= "integer" or o[k] < 1 then
      error(string.format("blua.train.%s: option '%s' must be a positive integer, got %s", method, k, tostring(o[k])), 4)
    end
  end
  positive_int("epochs"); positive_int("batch")
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
  if not (type(o.lr) == "number" and o.lr > 0) then error(string.format("blua.train.%s: lr must be positive", method), 3) end
  if o.mu and not (type(o.mu) == "number" and o.mu > 0) then error(string.format("blua.train.%s: mu must be positive", method), 3) end
  if o.tau and not (type(o.tau) == "number" and o.tau > 0) then error(string.format("blua.train.%s: tau must be positive", method), 3) end
  if o.gamma and not (type(o.gamma) == "number" and o.gamma > 0) then error(string.format("blua.train.%s: gamma must be positive", method), 3) end
  if o.loss_weight and not (type(o.loss_weight) == "number" and o.loss_weight > 0) then error(string.format("blua.train.%s: loss_weight must be positive", method), 3) end
  return o
end

local function check_data(method, net, data, what)
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
end

-- Labels (N x 1, classes 1..C) become one-hot rows; a target matrix with one column per
-- output (one-hot rows, or values for an identity output) is used as it is.
local function targets(net, y)
  local out = net.sizes[#net.sizes]
  if y:dim() == 2 and y:size(2) == out and out > 1 then return y, false end
  return blua.data.onehot(y, out), true
end

-- ---------------------------------------------------------------------------------------
-- shared pieces

local function all_builtin(net)
  for l = 1, net:nLayers() do
    if not net:activation(l).builtin then return false end
  end
  return true
end

-- Scratch tensors of the shapes a batch of `rows` needs, made once per batch size.
local function workspace(net, rows, cache)
  local ws = cache[rows]
  if ws then return ws end
  cache.power = cache.power or {} -- power-iteration vectors, shared by every batch size
  ws = {X = {}, Z = {}, G = {}, D = {}, power = cache.power}
  for l = 1, net:nLayers() do
    local n = net.sizes[l + 1]
    ws.X[l] = blua.zeros(rows, n)
    ws.Z[l] = blua.zeros(rows, n)
    ws.G[l] = blua.zeros(rows, n)
    ws.D[l] = blua.zeros(rows, n)
  end
  cache[rows] = ws
  return ws
end

-- The optimiser state of one training run over the network's parameters.
local function make_stepper(net, o)
  local params = net:parameters()
  local grads = {}
  for i, p in ipairs(params) do grads[i] = blua.zeros(p:size()) end
  local state = o.optim_state or {}
  local config
  if o.optimizer == "adam" then
    config = {learningRate = o.lr, weightDecay = o.weight_decay}
  else
    config = {learningRate = o.lr, momentum = o.momentum, nesterov = o.optimizer == "nesterov", weightDecay = o.weight_decay}
  end
  local method = o.optimizer == "adam" and blua.optim.adam or blua.optim.sgd
  local function feval() return 0, grads end
  if o.optimizer == "proxgrad" then
    -- Proximal-gradient W-steps with the Lipschitz step of each layer (lipschitz[l], from
    -- the batch) and the anchor term's 1/τ: W ← W − lr/(L_l + 1/τ) ∇.
    local inv_tau = o.tau == math.huge and 0 or 1 / o.tau
    return {
      params = params, grads = grads,
      step = function(lr, lipschitz)
        for i, p in ipairs(params) do p:add(-lr / (lipschitz[(i + 1) // 2] + inv_tau), grads[i]) end
      end,
    }
  end
  return {
    params = params, grads = grads,
    step = function(lr)
      config.learningRate = lr
      method(feval, params, config, state)
    end,
  }
end

local function check_finite(net, epoch, batch)
  for l = 1, net:nLayers() do
    for _, which in ipairs{"W", "b"} do
      if not net[which][l]:allFinite() then
        error(string.format("training diverged in epoch %d, batch %d: layer %d %s contains NaN or Inf",
          epoch, batch, l, which == "W" and "weights" or "biases"), 0)
      end
    end
  end
end

-- ---------------------------------------------------------------------------------------
-- lifted steps (Bregman and classical share them; `penalty` picks the formulation)

-- μ for the X-step of hidden layer l: `mu` times the safe step, the inverse Lipschitz
-- constant of the smooth part of the objective in X_l. That part is the next layer's term:
-- a Bregman penalty (curvature at most ‖W_{l+1}‖₂²), a quadratic penalty (γ‖W_{l+1}‖₂²) or the
-- weighted loss (softmax cross-entropy: curvature at most ½ β‖W_L‖₂²); the classical model adds
-- its own γ‖x − z‖²/2, which the Bregman model keeps inside the prox.
local function xstep_size(net, o, penalty, l, power)
  -- power[l]: the warm start of the power iteration, carried across batches; 8 steps then
  -- track ‖W‖₂ as W moves (a cold start takes 20).
  local v = power and power[l]
  if power and not v then
    v = blua.zeros(1, net.sizes[l + 2])
    power[l] = v
    blua.spectralNorm(net.W[l + 1], 20, v)
  end
  local s = blua.spectralNorm(net.W[l + 1], v and 8 or 20, v)
  local s2 = s * s
  if s2 ~= s2 then error(string.format("training diverged: layer %d weights have no finite norm", l + 1), 0) end
  local next_is_output = l + 1 == net:nLayers()
  local coupling
  if next_is_output then
    coupling = 0.5 * (o.loss_weight or 1) * s2
  else
    coupling = (penalty == "bregman" and 1 or o.gamma) * s2
  end
  local own = penalty == "bregman" and 0 or o.gamma
  return o.mu / math.max(own + coupling, 1e-12)
end

-- The lifted state of one mini-batch: auxiliary variables X[0..L] (X[0] the inputs, X[L] the
-- targets) and pre-activations Z[l] = X[l-1] W_l + b_l, recomputed only when stale. Right
-- after the forward pass every Z is current, so the first backward X-sweep needs no affine
-- map at all, and the W-step reuses Z[1].
local Batch = {}
Batch.__index = Batch

local function new_batch(net, penalty, o, ws, fast)
  return setmetatable({net = net, penalty = penalty, o = o, ws = ws, X = ws.X, Z = ws.Z, fast = fast,
    gamma = o.gamma or 0, beta = o.loss_weight or 1, current = {}}, Batch)
end

function Batch:z(l)
  if not self.current[l] then
    blua._affine(self.Z[l], self.X[l - 1], self.net.W[l], self.net.b[l])
    self.current[l] = true
  end
  return self.Z[l]
end

-- Forward pass from the inputs x; the targets y become X[L].
function Batch:forward(x, y)
  local net, X = self.net, self.X
  X[0] = x
  self.current = {}
  for l = 1, net:nLayers() - 1 do net:activation(l):forward(self:z(l), X[l]) end
  self:z(net:nLayers())
  self.saved_out = X[net:nLayers()]
  X[net:nLayers()] = y
end

function Batch:finish() self.X[self.net:nLayers()] = self.saved_out end

-- r = residual of layer l at z (overwritten), composed from activation methods.
local function residual_lua(self, l, z)
  local act = self.net:activation(l)
  if self.penalty == "bregman" or l == self.net:nLayers() then return act:bregman_grad(self.X[l], z, z) end
  return z:add(-1, self.X[l]):mul(self.gamma)
end

-- One X-step of hidden layer l with step mu (DESIGN.md §4), in place on X[l].
function Batch:xstep(l, mu)
  local net, X, ws = self.net, self.X, self.ws
  local L = net:nLayers()
  local z, zn, g = self:z(l), self:z(l + 1), ws.G[l]
  if self.fast then
    blua._xstep(self.penalty, net:activation(l), net:activation(l + 1), net.W[l + 1], net.b[l + 1],
      l + 1 == L and self.beta or nil, z, zn, X[l], X[l + 1], mu, self.gamma, g)
  else
    residual_lua(self, l + 1, zn)
    g:addmm(0, l + 1 == L and self.beta or 1, zn, net.W[l + 1]:t())
    local v = ws.D[l]
    if self.penalty == "bregman" then
      v:copy(X[l]):add(mu, z):add(-mu, g)                 -- x ← prox_{μΦ}(x + μ (z − g))
      net:activation(l):prox(v, mu, X[l])
    else
      v:copy(X[l]):mul(1 - mu * self.gamma):add(mu * self.gamma, z):add(-mu, g)
      net:activation(l):project(v, X[l])                  -- x ← Π_C(x − μ (γ (x − z) + g))
    end
  end
  self.current[l + 1] = false -- zn now holds the residual, and X[l] has moved
end

-- The layer's term of the energy at the current X (nil when the activation has none).
function Batch:energy(l)
  local act = self.net:activation(l)
  local is_output = l == self.net:nLayers()
  if self.fast then return blua._energy(self.penalty, act, is_output, self.gamma, self.X[l], self:z(l)) end
  if self.penalty == "quadratic" and not is_output then
    local d = self.ws.D[l]:copy(self.X[l]):add(-1, self:z(l))
    return 0.5 * self.gamma * d:dot(d)
  end
  if not act.has_energy then return nil end
  return act:bregman(self.X[l], self:z(l))
end

-- Gradients (times scale) of the batch's energy for every W and b into grads.
function Batch:wgrads(scale, grads)
  local net, X = self.net, self.X
  local L = net:nLayers()
  for l = 1, L do
    local gW, gb, z = grads[2 * l - 1], grads[2 * l], self:z(l)
    local s = l == L and scale * self.beta or scale
    if self.fast then
      blua._wgrad(self.penalty, net:activation(l), l == L, self.gamma, X[l - 1], X[l], z, s, gW, gb)
    else
      residual_lua(self, l, z)
      gW:addmm(0, s, X[l - 1]:t(), z)
      gb:zero():add(s, z:sumRows())
    end
    self.current[l] = false
  end
end

-- Lipschitz constants of the W-gradients of each layer's mean term: curvature of the term in
-- its pre-activation (1 for a Bregman penalty, γ for a quadratic one, ½β for the weighted
-- softmax loss) times ‖[X_{l-1} 1]‖₂²/B ≤ (‖X_{l-1}‖₂² + B)/B.
function Batch:lipschitz()
  local net, X = self.net, self.X
  local L = net:nLayers()
  local rows = X[0]:size(1)
  local out = {}
  for l = 1, L do
    local s = blua.spectralNorm(X[l - 1], 6)
    local curvature = l == L and 0.5 * self.beta or (self.penalty == "bregman" and 1 or self.gamma)
    out[l] = curvature * (s * s + rows) / rows
  end
  return out
end

local function sweep_order(L, order)
  local ls = {}
  if order == "forward" then
    for l = 1, L - 1 do ls[#ls + 1] = l end
  elseif order == "oddeven" then
    -- odd layers couple only to even ones: each half could be updated in parallel
    for l = 1, L - 1, 2 do ls[#ls + 1] = l end
    for l = 2, L - 1, 2 do ls[#ls + 1] = l end
  else
    for l = L - 1, 1, -1 do ls[#ls + 1] = l end
  end
  return ls
end

-- One mini-batch of lifted training: X from a forward pass, then `inner` times
-- (X-sweeps, W-step). Returns the batch's mean loss at the forward pass and the mean hidden
-- energies after the last sweep.
local function lifted_batch(net, penalty, o, xb, yb, ws, stepper, lr, fast)
  local L = net:nLayers()
  local batch = new_batch(net, penalty, o, ws, fast)
  batch:forward(xb, yb)
  local scale = 1 / xb:size(1)
  local loss = batch:energy(L) * scale
  local order = sweep_order(L, o.order)
  local anchor
  if o.tau ~= math.huge and o.inner > 1 then
    anchor = {}
    for i, p in ipairs(stepper.params) do anchor[i] = p:clone() end
  end
  local energies
  for k = 1, o.inner do
    for _ = 1, o.xsteps do
      for _, l in ipairs(order) do batch:xstep(l, xstep_size(net, o, penalty, l, ws.power)) end
    end
    if k == o.inner and o.track_energy then
      energies = {}
      for l = 1, L - 1 do
        local e = batch:energy(l)
        if not e then energies = nil break end
        energies[l] = e * scale
      end
    end
    batch:wgrads(scale, stepper.grads)
    if anchor then
      for i, p in ipairs(stepper.params) do stepper.grads[i]:add(1 / o.tau, p):add(-1 / o.tau, anchor[i]) end
    end
    stepper.step(lr, o.optimizer == "proxgrad" and batch:lipschitz() or nil)
    batch.current = {} -- new weights: every pre-activation is stale
  end
  batch:finish()
  return loss, energies
end

-- ---------------------------------------------------------------------------------------
-- back-propagation

-- Gradients of the mean loss over the batch into grads (W1, b1, W2, ...); returns the loss.
local function backprop_grads(net, xb, yb, ws, grads)
  local L = net:nLayers()
  local Z, X, D = ws.Z, ws.X, ws.D
  X[0] = xb
  for l = 1, L do
    blua._affine(Z[l], X[l - 1], net.W[l], net.b[l])
    if l < L then net:activation(l):forward(Z[l], X[l]) end
  end
  local out = net:activation(L)
  local scale = 1 / xb:size(1)
  local loss = out:bregman(yb, Z[L]) * scale
  -- The output layer's Bregman penalty is the loss (softmax: cross-entropy; identity: squared
  -- error), and its gradient in Z_L is σ(Z_L) − y.
  out:bregman_grad(yb, Z[L], D[L])
  for l = L, 1, -1 do
    grads[2 * l - 1]:addmm(0, scale, X[l - 1]:t(), D[l])
    grads[2 * l]:zero():add(scale, D[l]:sumRows())
    if l > 1 then
      D[l - 1]:addmm(0, 1, D[l], net.W[l]:t())
      D[l - 1]:cmul(net:activation(l - 1):derivative(Z[l - 1], ws.G[l - 1]))
    end
  end
  return loss
end

local function backprop_batch(net, _, xb, yb, ws, stepper, lr)
  local loss = backprop_grads(net, xb, yb, ws, stepper.grads)
  stepper.step(lr)
  return loss
end

-- ---------------------------------------------------------------------------------------
-- the loop

-- The CSV log of the per-epoch history (opts.log).
local function open_log(path)
  local f = assert(io.open(path, "w"))
  f:write("epoch,loss,energy,train_acc,test_acc,lr,seconds\n")
  return f
end

local function log_row(f, s)
  local function opt(fmt, v) return v and string.format(fmt, v) or "" end
  f:write(string.format("%d,%.6g,%s,%s,%s,%.6g,%.3f\n", s.epoch, s.loss, opt("%.6g", s.energy),
    opt("%.6f", s.train_acc), opt("%.6f", s.test_acc), s.lr, s.seconds))
  f:flush()
end

local function summary(s)
  local parts = {string.format("loss %.4f", s.loss)}
  if s.energy then parts[#parts + 1] = string.format("energy %.4f", s.energy) end
  if s.train_acc then parts[#parts + 1] = string.format("train %.2f%%", 100 * s.train_acc) end
  if s.test_acc then parts[#parts + 1] = string.format("test %.2f%%", 100 * s.test_acc) end
  return table.concat(parts, "  ")
end

-- Learning curves of the history as a PNG (opts.plot).
local function plot_history(path, method, history)
  local series = {}
  for _, c in ipairs{{"train", "train_acc"}, {"test", "test_acc"}} do
    local xs, ys = {}, {}
    for _, h in ipairs(history) do
      if h[c[2]] then xs[#xs + 1], ys[#ys + 1] = h.epoch, 100 * h[c[2]] end
    end
    if #xs > 0 then series[#series + 1] = {name = c[1], x = xs, y = ys} end
  end
  local ok, err = blua.plot.lines{path = path, title = method, xlabel = "epoch", ylabel = "accuracy %", series = series}
  if not ok then io.stderr:write("blua: no plot: ", err, "\n") end
end

local function check_network(method, net)
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

-- One epoch over shuffled mini-batches; returns the epoch's statistics before evaluation.
local function run_epoch(method, net, data, Y, o, epoch, state)
  local n = data.x:size(1)
  local nbatches = math.ceil(n / o.batch)
  -- Each epoch's order depends on the seed and the epoch alone, so a resumed run draws the
  -- same batches as an uninterrupted one.
  blua.manualSeed(o.seed * 1000003 + epoch)
  local perm = blua.randperm(n)
  local bar = o.verbose and blua.progress.new{total = nbatches, unit = "batch",
    title = string.format("%s epoch %d/%d", method, epoch, o.epochs)}
  local penalty = method == "bregman" and "bregman" or "quadratic"
  local t0 = blua.clock()
  local loss_sum, layer_sums, lr = 0, {}, nil
  for b = 1, nbatches do
    local first = (b - 1) * o.batch + 1
    local idx = table.move(perm, first, math.min(first + o.batch - 1, n), 1, {})
    local xb, yb = data.x:indexRows(idx), Y:indexRows(idx)
    local ws = workspace(net, #idx, state.caches)
    lr = state.schedule(o.lr, epoch + (b - 1) / nbatches, o.epochs, o.decay)
    local ok, loss, energies
    if method == "backprop" then
      ok, loss = pcall(backprop_batch, net, o, xb, yb, ws, state.stepper, lr)
    else
      ok, loss, energies = pcall(lifted_batch, net, penalty, o, xb, yb, ws, state.stepper, lr, state.fast)
    end
    local where = string.format("training diverged in epoch %d, batch %d: ", epoch, b)
    if not ok then error((tostring(loss):gsub("^training diverged: ", where)), 0) end
    if loss ~= loss or loss == math.huge then error(where .. "the loss is " .. tostring(loss), 0) end
    loss_sum = loss_sum + loss
    for l, e in ipairs(energies or {}) do
      if e ~= e or e == math.huge then error(string.format("%slayer %d energy is %s", where, l, tostring(e)), 0) end
      layer_sums[l] = (layer_sums[l] or 0) + e
    end
    if o.on_batch then o.on_batch(epoch, b, loss) end
    if bar then bar:update(b, string.format("loss %.4f", loss_sum / b)) end
  end
  check_finite(net, epoch, nbatches)
  local stats = {epoch = epoch, loss = loss_sum / nbatches, lr = lr, seconds = blua.clock() - t0}
  if next(layer_sums) then
    stats.energies, stats.energy = {}, stats.loss
    for l, sum in ipairs(layer_sums) do
      stats.energies[l] = sum / nbatches
      stats.energy = stats.energy + sum / nbatches
    end
  end
  return stats, bar
end

local function run(method, net, data, opts)
  local o = check_options(method, opts)
  check_network(method, net)
  check_data(method, net, data, "data")
  if o.test then check_data(method, net, o.test, "opts.test") end
  local state = {
    caches = {}, fast = all_builtin(net), stepper = make_stepper(net, o),
    schedule = blua.optim.schedules[o.schedule],
  }
  local Y, labelled = targets(net, data.y)
  local old_threads = blua.getNumThreads()
  if o.threads then blua.setNumThreads(o.threads) end
  local log = o.log and open_log(o.log)
  local history, started = {}, blua.clock()
  local ok, err = pcall(function()
    for epoch = o.start_epoch, o.epochs do
      local stats, bar = run_epoch(method, net, data, Y, o, epoch, state)
      -- accuracy needs class labels; with target matrices the loss is the measure
      if labelled and o.eval_train then stats.train_acc = blua.metrics.accuracy(net, data) end
      if labelled and o.test then stats.test_acc = blua.metrics.accuracy(net, o.test) end
      stats.time = blua.clock() - started
      history[#history + 1] = stats
      if bar then bar:finish(summary(stats)) end
      if log then log_row(log, stats) end
      if o.on_epoch then o.on_epoch(epoch, stats) end
    end
  end)
  if log then log:close() end
  blua.setNumThreads(old_threads)
  if not ok then error(err, 0) end
  if o.plot then plot_history(o.plot, method, history) end
  return history
end

function train.bregman(net, data, opts) return run("bregman", net, data, opts) end
function train.lifted(net, data, opts) return run("lifted", net, data, opts) end
function train.backprop(net, data, opts) return run("backprop", net, data, opts) end

--- Gradients for checking and for research scripts: a list W1, b1, W2, b2, ...
-- backprop: of the mean loss over the rows of x (the loss is the second result). bregman / lifted: of the mean lifted energy
-- at the auxiliary variables opts.X ({[1] = X1, ...}; default the forward pass), with the
-- targets as X[L], and the loss weighted by opts.loss_weight (default 1, as blua.metrics.energy).
-- opts.lua = true uses the tensor-method path instead of the C kernels.
function train.gradients(method, net, x, y, opts)
  opts = opts or {}
  local L = net:nLayers()
  local Y = targets(net, y)
  local ws = workspace(net, x:size(1), {})
  local grads = {}
  for i, p in ipairs(net:parameters()) do grads[i] = blua.zeros(p:size()) end
  if method == "backprop" then return grads, backprop_grads(net, x, Y, ws, grads) end
  local o = {gamma = opts.gamma or method_defaults.lifted.gamma, loss_weight = opts.loss_weight}
  local batch = new_batch(net, method == "bregman" and "bregman" or "quadratic", o, ws, not opts.lua and all_builtin(net))
  batch:forward(x, Y)
  for l = 1, L - 1 do
    if opts.X and opts.X[l] then
      ws.X[l]:copy(opts.X[l])
      batch.current[l + 1] = false
    end
  end
  batch:wgrads(1 / x:size(1), grads)
  batch:finish()
  return grads
end

--- One X-step of hidden layer l, in place on X[l] (X as in train.gradients, X[L] = one-hot
-- targets). mu defaults to mu_scale (1) times the safe step for the energy with the loss weighted
-- by opts.loss_weight (default 1); returns the step used.
function train.xstep(method, net, X, l, opts)
  opts = opts or {}
  local o = {gamma = opts.gamma or method_defaults.lifted.gamma, mu = opts.mu_scale or 1.0, loss_weight = opts.loss_weight}
  local penalty = method == "bregman" and "bregman" or "quadratic"
  local ws = {X = X, Z = {}, G = {}, D = {}}
  local rows = X[0]:size(1)
  for k = 1, net:nLayers() do
    ws.Z[k] = blua.zeros(rows, net.sizes[k + 1])
    ws.G[k] = blua.zeros(rows, net.sizes[k + 1])
    ws.D[k] = blua.zeros(rows, net.sizes[k + 1])
  end
  local batch = new_batch(net, penalty, o, ws, not opts.lua and all_builtin(net))
  local mu = opts.mu or xstep_size(net, o, penalty, l)
  batch:xstep(l, mu)
  return mu
end

-- The option names and defaults of a method, for help texts and scripts.
function train.defaults(method)
  if not method_defaults[method] then error("blua.train.defaults: unknown method '" .. tostring(method) .. "'", 2) end
  local o = common_defaults()
  for k, v in pairs(method_defaults[method]) do o[k] = v end
  return o
end

return train
