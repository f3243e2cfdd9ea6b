-- The lifted steps that lifted Bregman and classical lifted training share (docs/design.md,
-- "Blocks and operators"): the batch state of auxiliary variables, X-steps, W-gradients,
-- energies and the X-step sizes. `penalty` ("bregman" or "quadratic") picks the formulation.
local blua = require "blua"
local kernels = require("blua.core")._act -- (the X-step points without the prox)

local lifted = {}

-- The curvature in z of the output loss B(y, z): its Hessian is the Jacobian of σ_L, at most
-- ½ for softmax (diag(p) − p pᵀ) and at most 1 for any other proximal activation (σ is
-- 1-Lipschitz), e.g. exactly 1 for an identity output (squared error).
function lifted.output_curvature(net)
  return net:activation(net:nLayers()).name == "softmax" and 0.5 or 1
end

-- μ for the X-step of hidden layer l: `mu` times the safe step, the inverse Lipschitz
-- constant of the smooth part of the objective in X_l. That part is the next layer's term:
-- a Bregman penalty (curvature at most ‖A_{l+1}‖₂²), a quadratic penalty (γ‖A_{l+1}‖₂²) or the
-- weighted loss (curvature at most c β‖A_L‖₂², c from lifted.output_curvature); the classical
-- model adds its own γ‖x − z‖²/2, which the Bregman model keeps inside the prox. ‖A‖₂ is the
-- operator norm of the next block's linear map (‖W‖₂ for a dense block).
-- The multiplier is o.mu_last for the last hidden layer (the one feeding the output) when set,
-- else o.mu (docs/design.md, "The last hidden layer's step").
-- μ from s = ‖A_{l+1}‖₂.
function lifted.step_multiplier(net, o, l)
  if o.mu_last and l + 1 == net:nLayers() then return o.mu_last end
  return o.mu
end

local function step_from_norm(net, o, penalty, l, s)
  local s2 = s * s
  if s2 ~= s2 then error(string.format("training diverged: layer %d weights have no finite norm", l + 1), 0) end
  local next_is_output = l + 1 == net:nLayers()
  local coupling
  if next_is_output then
    coupling = lifted.output_curvature(net) * (o.loss_weight or 1) * s2
  else
    coupling = (penalty == "bregman" and 1 or o.gamma) * s2
  end
  local own = penalty == "bregman" and 0 or o.gamma
  return lifted.step_multiplier(net, o, l) / math.max(own + coupling, 1e-12)
end

function lifted.xstep_size(net, o, penalty, l, power)
  -- power[l]: the warm start of the power iteration, carried across batches; 8 steps then
  -- track ‖A_{l+1}‖₂ as the weights move (a cold start takes 20).
  local nextb = net:block(l + 1)
  local v = power and power[l]
  if power and not v then
    v = blua.zeros(1, net.sizes[l + 2])
    power[l] = v
    nextb:norm(20, v)
  end
  return step_from_norm(net, o, penalty, l, nextb:norm(v and 8 or 20, v))
end

-- The X-step sizes of one sweep over the hidden layers `order` (each at most once) into mu,
-- as lifted.xstep_size gives them one after another. When every next block is dense and has
-- its warm start, the norms come from one call (blua.spectralNorm on lists; lists: tables it
-- may keep for the next call); each power iteration is its own layer's, so the steps are the
-- same.
function lifted.sweep_step_sizes(net, o, penalty, order, power, mu, lists)
  lists = lists or {}
  local Ws, vs = lists.W or {}, lists.v or {}
  lists.W, lists.v = Ws, vs
  for i, l in ipairs(order) do
    local nextb = net:block(l + 1)
    if not (power and power[l] and nextb.dense) then
      for j, m in ipairs(order) do mu[j] = lifted.xstep_size(net, o, penalty, m, power) end
      return mu
    end
    Ws[i], vs[i] = net.W[l + 1], power[l]
  end
  for i = #order + 1, #Ws do Ws[i], vs[i] = nil, nil end
  local norms = blua.spectralNorm(Ws, 8, vs)
  for i, l in ipairs(order) do mu[i] = step_from_norm(net, o, penalty, l, norms[i]) end
  return mu
end

-- The lifted state of one mini-batch: auxiliary variables X[0..L] (X[0] the inputs, X[L] the
-- targets) and pre-activations Z[l] = A_l(X[l-1]) + b_l, recomputed only when stale. Right
-- after the forward pass every Z is current, so the first backward X-sweep needs no affine
-- map at all, and the W-step reuses Z[1].
--
-- Each layer picks its own path: a built-in activation runs the C kernels, one defined in
-- Lua is composed from its tensor methods, and a dense next block with both activations
-- built in runs the fused X-step kernel (an L1 term included). `lua` forces the composed path
-- everywhere (checks).
local Batch = {}
Batch.__index = Batch

function lifted.new_batch(net, penalty, o, ws, lua)
  local L = net:nLayers()
  local fast, blocks = {}, {}
  for l = 1, L do
    fast[l] = not lua and net:activation(l).builtin
    blocks[l] = net:block(l)
  end
  return setmetatable({net = net, penalty = penalty, o = o, ws = ws, X = ws.X, Z = ws.Z, fast = fast, blocks = blocks,
    gamma = o.gamma or 0, beta = o.loss_weight or 1, l1 = o.l1_layers or {}, current = {}}, Batch)
end

function Batch:z(l)
  if not self.current[l] then
    self.blocks[l]:forward(self.X[l - 1], self.Z[l])
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

-- Auxiliary variables of hidden layer l set from outside (X[l] := x); its next layer's
-- pre-activation becomes stale.
function Batch:set_x(l, x)
  self.X[l]:copy(x)
  self.current[l + 1] = false
end

-- r = residual of layer l at z (overwritten), composed from activation methods.
local function residual_lua(self, l, z)
  local act = self.net:activation(l)
  if self.penalty == "bregman" or l == self.net:nLayers() then return act:bregman_grad(self.X[l], z, z) end
  return z:add(-1, self.X[l]):mul(self.gamma)
end

-- One X-step of hidden layer l with step mu (docs/design.md, "Blocks and operators"), in place on X[l].
function Batch:xstep(l, mu)
  local net, X, ws = self.net, self.X, self.ws
  local L = net:nLayers()
  local nextb = self.blocks[l + 1]
  local alpha = self.l1[l] -- an L1 term on this layer folds into the prox (docs/design.md)
  if self.fast[l] and self.fast[l + 1] and nextb.dense then
    local z, zn, g = self:z(l), self:z(l + 1), ws.G[l]
    blua._xstep(self.penalty, net:activation(l), net:activation(l + 1), net.W[l + 1], net.b[l + 1],
      l + 1 == L and self.beta or nil, z, zn, X[l], X[l + 1], mu, self.gamma, g, alpha)
  else
    self:xstep_apply(l, self:xstep_coupling(l), mu)
  end
  self.current[l + 1] = false -- zn now holds the residual, and X[l] has moved
end

-- The two halves of an X-step of hidden layer l off the fused kernel, for schedules that run
-- them on different processes (train/layers.lua): the coupling term g = A*_{l+1} r_{l+1} needs
-- only block l+1 (and X[l]); the update of X[l] needs only layer l and g.
function Batch:xstep_coupling(l)
  local zn, g = self:z(l + 1), self.ws.G[l]
  residual_lua(self, l + 1, zn)
  self.blocks[l + 1]:adjoint(zn, g, l + 1 == self.net:nLayers() and self.beta or 1)   -- g = A*_{l+1} r
  self.current[l + 1] = false -- zn now holds the residual
  return g
end

function Batch:xstep_apply(l, g, mu)
  local X, z, ws = self.X, self:z(l), self.ws
  local act = self.net:activation(l)
  local alpha = self.l1[l]
  if alpha then
    -- (the point from the plain X-step's kernel: then a built-in activation gets the bits of
    -- the fused kernel, blua_act_xstep_bregman_l1 and blua_act_xstep_lifted_l1)
    local v = ws.D[l]
    if self.penalty == "bregman" then
      kernels.xstep_bregman_point(v, X[l], z, g, mu)
      act:prox_l1(v, mu, alpha, X[l])                     -- x ← prox_{μ(Φ + α|·|)}(x + μ (z − g))
    else
      kernels.xstep_lifted_point(v, X[l], z, g, mu, self.gamma)
      act:project_l1(v, mu * alpha, X[l])                 -- argmin over C of μα|u| + ½(u − v)²
    end
  elseif self.fast[l] then
    if self.penalty == "bregman" then act:xstep_bregman(X[l], z, g, mu) else act:xstep_lifted(X[l], z, g, mu, self.gamma) end
  else
    local v = ws.D[l]
    if self.penalty == "bregman" then
      v:copy(X[l]):add(mu, z):add(-mu, g)                 -- x ← prox_{μΦ}(x + μ (z − g))
      act:prox(v, mu, X[l])
    else
      v:copy(X[l]):mul(1 - mu * self.gamma):add(mu * self.gamma, z):add(-mu, g)
      act:project(v, X[l])                                -- x ← Π_C(x − μ (γ (x − z) + g))
    end
  end
  self.current[l + 1] = false -- X[l] has moved
end

-- The layer's term of the energy at the current X (nil when the activation has none),
-- with the layer's L1 term α‖X_l‖₁ when it has one.
function Batch:energy(l)
  local e = self:penalty_energy(l)
  local alpha = self.l1[l]
  if e and alpha then e = e + alpha * self.ws.D[l]:copy(self.X[l]):abs():sum() end
  return e
end

function Batch:penalty_energy(l)
  local act = self.net:activation(l)
  local is_output = l == self.net:nLayers()
  if self.fast[l] then return blua._energy(self.penalty, act, is_output, self.gamma, self.X[l], self:z(l)) end
  if self.penalty == "quadratic" and not is_output then
    local d = self.ws.D[l]:copy(self.X[l]):add(-1, self:z(l))
    return 0.5 * self.gamma * d:dot(d)
  end
  if not act.has_energy then return nil end
  return act:bregman(self.X[l], self:z(l))
end

-- Gradients (times scale) of the batch's energy for every block's parameters into grads
-- (grads[l]: the list of block l's gradient tensors, in the order of its params()).
function Batch:wgrads(scale, grads)
  for l = 1, self.net:nLayers() do self:wgrad(l, scale, grads[l]) end
end

-- Gradients (times scale) of layer l's term into grads_l (block l's gradient tensors).
function Batch:wgrad(l, scale, grads_l)
  local net, X = self.net, self.X
  local L = net:nLayers()
  local z = self:z(l)
  local s = l == L and scale * self.beta or scale
  local b = self.blocks[l]
  if self.fast[l] and b.dense then
    blua._wgrad(self.penalty, net:activation(l), l == L, self.gamma, X[l - 1], X[l], z, s, grads_l[1], grads_l[2])
  else
    residual_lua(self, l, z)
    b:wgrad(X[l - 1], z, s, grads_l)
  end
  self.current[l] = false
end

-- Lipschitz constants of the W-gradients of each layer's mean term: curvature of the term in
-- its pre-activation (1 for a Bregman penalty, γ for a quadratic one, c β for the weighted
-- loss, c from lifted.output_curvature) times ‖[X_{l-1} 1]‖₂²/B ≤ (‖X_{l-1}‖₂² + B)/B. A batch
-- in several parts (row shares, on one process or over ranks) uses Σ over parts of
-- ‖X_{l-1}‖₂², a bound of the whole batch's; `sum` adds those (a tensor, in place) over the ranks.
-- Xs: the parts' auxiliary variables (Xs[k][l], l = 0..L-1).
local function lipschitz(net, penalty, beta, gamma, Xs, rows, sum)
  local L = net:nLayers()
  -- float32 sums, in part order: what an all-reduce over ranks holding the parts adds up
  local s2, part = blua.zeros(L), blua.zeros(L)
  for _, X in ipairs(Xs) do
    for l = 1, L do
      local s = blua.spectralNorm(X[l - 1], 6)
      part:set(l, s * s)
    end
    s2:add(part)
  end
  if sum then sum(s2) end
  local out = {}
  for l = 1, L do
    local curvature = l == L and lifted.output_curvature(net) * beta or (penalty == "bregman" and 1 or gamma)
    out[l] = curvature * (s2:get(l) + rows) / rows
  end
  return out
end

-- Spare gradient buffers shaped like the parameters, for the second and later parts of a
-- batch: the flat list, and the same tensors per block (as stepper.grads, stepper.block_grads).
function lifted.spare_grads(stepper)
  if not stepper.spare then
    stepper.spare, stepper.spare_blocks = {}, {}
    local i = 0
    for k, list in ipairs(stepper.block_grads) do
      stepper.spare_blocks[k] = {}
      for j, g in ipairs(list) do
        i = i + 1
        stepper.spare[i] = blua.zeros(g:size())
        stepper.spare_blocks[k][j] = stepper.spare[i]
      end
    end
  end
  return stepper.spare, stepper.spare_blocks
end

-- Spare gradient tensors shaped like grads (a list per block of gradient tensors), made once
-- per grads table: where the second and later shares of a batch put theirs.
local spares = setmetatable({}, {__mode = "k"})
function lifted.spare_like(grads)
  local spare = spares[grads]
  if not spare then
    spare = {}
    for k, list in ipairs(grads) do
      spare[k] = {}
      for j, g in ipairs(list) do spare[k][j] = blua.zeros(g:size()) end
    end
    spares[grads] = spare
  end
  return spare
end

-- The spare gradient tensors of shares 2..shares for the C batch steps, flat (W1, b1, W2, ...
-- per share), shaped like grads (a list per block of W and b), made once per grads table.
local spare_lists = setmetatable({}, {__mode = "k"})
function lifted.spare_flat(grads, shares)
  local per = spare_lists[grads] or {}
  spare_lists[grads] = per
  local flat = per[shares]
  if not flat then
    flat = {}
    for _ = 2, shares do
      for _, list in ipairs(grads) do
        for _, g in ipairs(list) do flat[#flat + 1] = blua.zeros(g:size()) end
      end
    end
    per[shares] = flat
  end
  return flat
end

-- The hidden layers of one X-sweep in `order` (backward, forward or oddeven) for L layers.
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

lifted.sweep_order = sweep_order

-- The weights W^k at the start of a batch, for the anchor term (1/(2τ))‖W − W^k‖² of the
-- implicit SGD; nil when the term is off or only one inner step runs (W = W^k at its start).
function lifted.anchor(o, stepper)
  if o.tau == math.huge or o.inner == 1 then return nil end
  local anchor = {}
  for i, p in ipairs(stepper.params) do anchor[i] = p:clone() end
  return anchor
end

-- One mini-batch of lifted training: X from a forward pass, then `inner` times
-- (X-sweeps, W-step). Returns the batch's mean loss at the forward pass and the mean hidden
-- energies after the last sweep.
--
-- parts: the batch as a list of {x =, y =, ws =} row shares (usually one: the whole batch);
-- rows: the rows of the whole (global) batch. X-steps are per sample, so each part runs them
-- alone with the step sizes of the whole batch; the gradients, loss and energies are the
-- parts' sums in part order. This is what a data-parallel run does across ranks, where each
-- rank holds one part and `sum` adds a tensor over the ranks (train/distributed.lua); with
-- parts of the same rows a single process computes the same bits.
--
-- A network with built-in activations, of dense blocks or of operators (L1 terms included),
-- runs each inner step in one C call (blua._lifted_batch, blua.op.lifted_batch) that runs the
-- shares side by side as tasks of the thread team; other networks run the shares one after
-- another here. Both take the same steps with the same kernels, so they compute the same bits.
function lifted.batch_step(net, penalty, o, parts, stepper, lr, rows, sum, paths)
  local acts, ops, params
  if parts.whole then
    -- (once per `paths` table when the training loop keeps one: see backprop.batch_step)
    local c = paths and paths[#parts] -- (operators are made per share count)
    if c == nil then
      acts, ops, params = lifted.c_batch_path(net, o, #parts)
      c = acts and {acts, ops, params} or false
      if paths then paths[#parts] = c end
    end
    if c then acts, ops, params = c[1], c[2], c[3] end
  end
  if acts then return lifted.c_batch_step(net, penalty, o, parts, stepper, lr, rows, sum, acts, ops, params) end
  blua._teamJoin() -- (rows the team may still be gathering: loop.prefetch; the C steps wait in C)
  local L = net:nLayers()
  local scale = 1 / rows
  local batches, loss = {}, 0
  for k, part in ipairs(parts) do
    local batch = lifted.new_batch(net, penalty, o, part.ws)
    batch:forward(part.x, part.y)
    loss = loss + batch:energy(L) * scale
    batches[k] = batch
  end
  local power = parts[1].ws.power
  local order = sweep_order(L, o.order)
  local anchor = lifted.anchor(o, stepper)
  local energies
  for k = 1, o.inner do
    for _ = 1, o.xsteps do
      for _, l in ipairs(order) do
        local mu = lifted.xstep_size(net, o, penalty, l, power)
        for _, batch in ipairs(batches) do batch:xstep(l, mu) end
      end
    end
    if k == o.inner and o.track_energy then
      energies = {}
      for l = 1, L - 1 do
        for _, batch in ipairs(batches) do
          local e = batch:energy(l)
          if not e then energies = nil break end
          energies[l] = (energies[l] or 0) + e * scale
        end
        if not energies then break end
      end
    end
    for j, batch in ipairs(batches) do
      if j == 1 then
        batch:wgrads(scale, stepper.block_grads)
      else
        local spare, spare_blocks = lifted.spare_grads(stepper)
        batch:wgrads(scale, spare_blocks)
        for i, g in ipairs(stepper.grads) do g:add(spare[i]) end
      end
    end
    local Xs
    if o.optimizer == "proxgrad" then
      Xs = {}
      for j, batch in ipairs(batches) do Xs[j] = batch.X end
    end
    stepper.step(lr, Xs and lipschitz(net, penalty, o.loss_weight or 1, o.gamma or 0, Xs, rows, sum), anchor)
    for _, batch in ipairs(batches) do batch.current = {} end -- new weights: every pre-activation is stale
  end
  for _, batch in ipairs(batches) do batch:finish() end
  return loss, energies
end

-- The activations of a network of dense blocks with built-in activations, the networks whose
-- batches run in one C call (L1 terms on hidden layers included: the C steps take them); else
-- nil. (l1, the trainer's {[l] = alpha}, does not change the answer.)
function lifted.dense_builtin(net, _l1)
  local acts = {}
  for l = 1, net:nLayers() do
    local a = net:activation(l)
    if not a.builtin or not net:block(l).dense then return nil end
    acts[l] = a
  end
  return acts
end

-- A network with other blocks (convolutions, pools) runs its batches in C through its
-- operators when every activation is built in (L1 terms included: l1, the trainer's
-- {[l] = alpha}, does not change the answer): acts, the operators of `parts` row shares (share
-- by share, each share's its own: block:ops(parts)) and every block's parameters in order;
-- else nil. (blua.op.backprop and blua.op.lifted_batch take 64 shares at most.)
function lifted.op_path(net, _l1, parts)
  if blua.op == nil or parts > 64 then return nil end
  local L = net:nLayers()
  local acts, per_part, params = {}, {}, {}
  for l = 1, L do
    local a, b = net:activation(l), net:block(l)
    if not a.builtin then return nil end
    local ops = b:ops(parts)
    if not ops then return nil end
    acts[l], per_part[l] = a, ops
    for _, p in ipairs(b:params()) do params[#params + 1] = p end
  end
  local ops = {}
  for p = 1, parts do
    for l = 1, L do ops[(p - 1) * L + l] = per_part[l][p] end
  end
  return acts, ops, params
end

-- The activations of a network whose batches of `parts` shares (default o.batch_shards) the C
-- batch step can run, else nil; for a network of operators also its operators and parameters
-- (lifted.op_path). (lifted.c_batch = false forces the share-by-share path, for checks.)
lifted.c_batch = true
function lifted.c_batch_path(net, o, parts)
  if not lifted.c_batch or net:nLayers() < 2 then return nil end
  local acts = lifted.dense_builtin(net, o.l1_layers)
  if acts then return acts end
  return lifted.op_path(net, o.l1_layers, parts or o.batch_shards or 1)
end

-- The argument lists of a C batch step that stay the same from batch to batch (the gradient
-- list, the auxiliary variables, the sweep order), made once per workspace and stepper: the
-- per-batch Lua work is what the other threads wait for.
local c_step_lists = setmetatable({}, {__mode = "k"})

local function c_step_args(net, o, ws, stepper, shares)
  local per_ws = c_step_lists[ws] or setmetatable({}, {__mode = "k"})
  c_step_lists[ws] = per_ws
  local a = per_ws[stepper]
  if a and a.shares == shares and a.order_name == o.order then return a end
  local L = net:nLayers()
  a = {shares = shares, order_name = o.order, order = sweep_order(L, o.order), flat = {}, X = {}, steps = {}, mu = {},
    sweep_mu = {}, norm_lists = {}, spare = lifted.spare_flat(stepper.block_grads, shares), copts = {}}
  for _, list in ipairs(stepper.block_grads) do
    for _, g in ipairs(list) do a.flat[#a.flat + 1] = g end
  end
  for l = 1, L - 1 do a.X[l] = ws.X[l] end
  per_ws[stepper] = a
  return a
end

-- lifted.batch_step in one C call per inner step (blua._lifted_batch for dense layers,
-- blua.op.lifted_batch for operators). The step sizes are computed here first, with the
-- power-iteration calls in the order and number the share-by-share path makes them (they
-- depend on the weights and the warm starts only, not on X).
function lifted.c_batch_step(net, penalty, o, parts, stepper, lr, rows, sum, acts, ops, params)
  local L = net:nLayers()
  local scale = 1 / rows
  local whole = parts.whole
  local ws = whole.ws
  local anchor = lifted.anchor(o, stepper)
  local a = c_step_args(net, o, ws, stepper, #parts)
  local order, flat, X, spare, copts = a.order, a.flat, a.X, a.spare, a.copts
  copts.gamma, copts.beta, copts.scale = o.gamma or 0, o.loss_weight or 1, scale
  copts.l1 = o.l1_layers and next(o.l1_layers) and o.l1_layers or nil
  local loss, energies = 0, nil
  for k = 1, o.inner do
    local steps, mu, sweep = a.steps, a.mu, a.sweep_mu
    local i = 0
    for _ = 1, o.xsteps do
      lifted.sweep_step_sizes(net, o, penalty, order, ws.power, sweep, a.norm_lists)
      for j, l in ipairs(order) do
        i = i + 1
        steps[i], mu[i] = l, sweep[j]
      end
    end
    for j = #steps, i + 1, -1 do steps[j], mu[j] = nil, nil end
    copts.forward, copts.energies, copts.steps, copts.mu = k == 1, k == o.inner and o.track_energy, steps, mu
    local losses, es
    if ops then
      losses, es = blua.op.lifted_batch(penalty, acts, ops, params, whole.x, whole.y, X, ws.Z, ws.G, #parts, copts, flat,
        spare)
    else
      losses, es = blua._lifted_batch(penalty, acts, net.W, net.b, whole.x, whole.y, X, ws.Z, ws.G, #parts, copts, flat,
        spare)
    end
    if k == 1 then
      for _, e in ipairs(losses) do loss = loss + e * scale end
    end
    if es then
      energies = {}
      for l = 1, L - 1 do
        for _, e in ipairs(es) do energies[l] = (energies[l] or 0) + e[l] * scale end
      end
    end
    local Xs
    if o.optimizer == "proxgrad" then
      Xs = {}
      for j, part in ipairs(parts) do
        Xs[j] = {[0] = part.x}
        for l = 1, L - 1 do Xs[j][l] = part.ws.X[l] end
      end
    end
    stepper.step(lr, Xs and lipschitz(net, penalty, o.loss_weight or 1, o.gamma or 0, Xs, rows, sum), anchor)
  end
  return loss, energies
end

return lifted
