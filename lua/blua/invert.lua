-- Network inversion: an input u of layers from..L of a trained network whose output matches
-- measurements y under a linear operator A (docs/design.md, "Network inversion"):
--
--   min_u ½‖A f(u) − y‖² + α‖u‖₁          (per sample; rows are samples, Y ≈ f(U) Aᵀ)
--
--   local u, info = blua.invert(net, y, {from = 4, A = A, l1 = 1e-3, method = "bregman"})
--
-- method "bregman": the lifted Bregman energy with the weights fixed,
--   Σ_{l=from}^{L} B_l(x_l, W_l x_{l-1} + b_l) + β(½‖A x_L − y‖² + α‖u‖₁),  x_{from-1} = u,
-- (β weighs the problem against the layer penalties; the smaller β, the closer the lifted
-- minimiser to the problem's, and the more iterations it takes),
-- minimised by backward sweeps of the training X-steps (x_l ← prox_{μΦ_l}(x_l + μ(z_l − g))),
-- the output's step with the measurement term in g, and u ← S_{μα}(u − μ g).
-- method "gradient": back-propagation through the layers to u, Adam steps, each followed by the
-- soft-threshold of the L1 term in Adam's metric (a proximal step).
local blua = require "blua"

local defaults = {
  from = 1, A = false, l1 = 0, method = "bregman", iterations = 300, x0 = false,
  lr = 0.01,          -- gradient: Adam's rate
  mu = 1.0,           -- bregman: multiplier of the safe X-step sizes
  beta = 1,           -- bregman: weight of the problem (measurements and L1) against the layer penalties
  verbose = false,
}

local function options(net, y, opts)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if defaults[k] == nil then
      local names = {}
      for name in pairs(defaults) do names[#names + 1] = name end
      table.sort(names)
      error(string.format("blua.invert: unknown option '%s' (accepted: %s)", tostring(k), table.concat(names, ", ")), 3)
    end
    o[k] = v
  end
  local L = net:nLayers()
  if math.type(o.from) ~= "integer" or o.from < 1 or o.from > L then
    error(string.format("blua.invert: from must be a layer in 1..%d, got %s", L, tostring(o.from)), 3)
  end
  if o.method ~= "bregman" and o.method ~= "gradient" then
    error(string.format("blua.invert: unknown method '%s' (accepted: bregman, gradient)", tostring(o.method)), 3)
  end
  if type(o.l1) ~= "number" or not (o.l1 >= 0 and o.l1 < math.huge) then
    error("blua.invert: l1 must be a non-negative number", 3)
  end
  if math.type(o.iterations) ~= "integer" or o.iterations < 1 then
    error("blua.invert: iterations must be a positive integer", 3)
  end
  -- the inversions use W[l] and b[l] directly: convolution chains have no such tensors
  for l = o.from, L do
    if not net:block(l).dense then
      error(string.format("blua.invert: layer %d is a %s block; inversion handles dense layers only (from = %d .. %d)",
        l, net.ops[l][1].kind, o.from, L), 3)
    end
  end
  -- the step sizes and the rate: a NaN, an infinity or a tensor here would only fail deep in a kernel
  for _, k in ipairs{"mu", "beta", "lr"} do
    local v = o[k]
    if type(v) ~= "number" or not (v > 0 and v < math.huge) then
      error(string.format("blua.invert: %s must be a positive finite number, got %s", k,
        type(v) == "number" and tostring(v) or blua.isTensor(v) and "a tensor" or type(v)), 3)
    end
  end
  if o.method == "gradient" then
    for l = o.from, L do -- back-propagation to u needs each layer's derivative entry by entry
      local act = net:activation(l)
      if not act.elementwise then
        error(string.format("blua.invert: method 'gradient' needs elementwise activations, layer %d is %s (use method 'bregman')",
          l, act.name), 3)
      end
    end
  end
  local out = net.sizes[L + 1]
  if not blua.isTensor(y) or y:dim() ~= 2 then error("blua.invert: y must be a matrix (one row per sample)", 3) end
  if o.A and (not blua.isTensor(o.A) or o.A:dim() ~= 2 or o.A:size(2) ~= out) then
    error(string.format("size mismatch in 'blua.invert': A must be m x %d (the network's outputs)", out), 3)
  end
  if not y:allFinite() or (o.A and not o.A:allFinite()) or (blua.isTensor(o.x0) and not o.x0:allFinite()) then
    error("blua.invert: y, A and x0 must hold finite numbers (NaN or Inf found)", 3)
  end
  local m = o.A and o.A:size(1) or out
  if y:size(2) ~= m then
    error(string.format("size mismatch in 'blua.invert': y is %dx%d, the measurements have %d entries", y:size(1), y:size(2), m), 3)
  end
  local n_in = net.sizes[o.from]
  if o.x0 and (not blua.isTensor(o.x0) or o.x0:dim() ~= 2 or o.x0:size(1) ~= y:size(1) or o.x0:size(2) ~= n_in) then
    error(string.format("size mismatch in 'blua.invert': x0 must be %dx%d", y:size(1), n_in), 3)
  end
  return o
end

-- Forward pass of layers from..L from u: Z[l], X[l] (X[from-1] = u).
local function forward(net, from, u)
  local Z, X = {}, {[from - 1] = u}
  for l = from, net:nLayers() do
    Z[l] = blua._affine(blua.zeros(u:size(1), net.sizes[l + 1]), X[l - 1], net.W[l], net.b[l])
    X[l] = net:activation(l):forward(Z[l])
  end
  return Z, X
end

-- The objective per sample, the measurement residual A f(u) − y (rows are samples) and f(u).
local function objective(net, o, y, u)
  local _, X = forward(net, o.from, u)
  local out = X[net:nLayers()]
  local r = (o.A and out:mm(o.A:t()) or out:clone()):add(-1, y)
  local value = 0.5 * r:dot(r)
  if o.l1 > 0 then value = value + o.l1 * u:clone():abs():sum() end
  return value / u:size(1), r, out
end

local function soft_threshold(u, t)
  if t > 0 then blua.activation.get("identity"):project_l1(u, t, u) end
  return u
end

-- Adam on the smooth part with the L1 prox in Adam's own diagonal metric: each entry is
-- soft-thresholded by α times its step lr / (√v̂ + ε), so entries settle at exact zeros.
local function invert_gradient(net, o, y, u)
  local L, from = net:nLayers(), o.from
  local b1, b2, eps = 0.9, 0.999, 1e-8
  local m, v = blua.zeros(u:size()), blua.zeros(u:size())
  for it = 1, o.iterations do
    local Z, X = forward(net, from, u)
    -- d/dX_L of ½‖A X_L − y‖², then back through the activations and the affine maps
    local d = (o.A and X[L]:mm(o.A:t()) or X[L]:clone()):add(-1, y)
    if o.A then d = d:mm(o.A) end
    for l = L, from, -1 do
      d:cmul(net:activation(l):derivative(Z[l]))
      d = d:mm(net.W[l]:t())
    end
    m:mul(b1):add(1 - b1, d)
    v:mul(b2):add(1 - b2, d:cmul(d))
    local step = v:clone():mul(1 / (1 - b2 ^ it)):sqrt():add(eps):pow(-1):mul(o.lr) -- lr / (√v̂ + ε)
    u:add(-1 / (1 - b1 ^ it), step:clone():cmul(m))
    if o.l1 > 0 then
      local shrunk = u:clone():abs():add(-o.l1, step):cmax(0)
      u:sign():cmul(shrunk)
    end
    if o.verbose and it % 50 == 0 then print(string.format("invert gradient %d  objective %.6g", it, (objective(net, o, y, u)))) end
  end
  return u
end

local function invert_bregman(net, o, y, u)
  local L, from, rows = net:nLayers(), o.from, u:size(1)
  local Z, X = forward(net, from, u)
  local G, R = {}, {}
  for l = from - 1, L do
    G[l] = blua.zeros(rows, net.sizes[l + 1])
    R[l] = blua.zeros(rows, net.sizes[l + 1])
  end
  -- Safe steps: the inverse curvature of the smooth part in each block.
  local step = {}
  local a_norm = o.A and blua.spectralNorm(o.A, 30) or 1
  for l = from - 1, L - 1 do
    local s = blua.spectralNorm(net.W[l + 1], 30)
    step[l] = o.mu / math.max(s * s, 1e-12)
  end
  local function refresh(l) blua._affine(Z[l], X[l - 1], net.W[l], net.b[l]) end
  local beta = o.beta
  step[L] = o.mu / (beta * a_norm * a_norm)
  for it = 1, o.iterations do
    -- output block: its own Bregman penalty plus the measurement term
    local r = (o.A and X[L]:mm(o.A:t()) or X[L]:clone()):add(-1, y)
    G[L]:copy(o.A and r:mm(o.A) or r):mul(beta)
    net:activation(L):xstep_bregman(X[L], Z[L], G[L], step[L])
    -- hidden blocks, output side first, then the unknown
    for l = L - 1, from - 1, -1 do
      net:activation(l + 1):bregman_grad(X[l + 1], Z[l + 1], R[l + 1])
      G[l]:addmm(0, 1, R[l + 1], net.W[l + 1]:t())
      if l >= from then
        net:activation(l):xstep_bregman(X[l], Z[l], G[l], step[l])
      else
        X[l]:add(-step[l], G[l])
        soft_threshold(X[l], step[l] * beta * o.l1)
      end
      refresh(l + 1)
    end
    if o.verbose and it % 50 == 0 then print(string.format("invert bregman %d  objective %.6g", it, (objective(net, o, y, u)))) end
  end
  return u
end

--- blua.invert(net, y, opts) → u, info. opts: from (layer whose input is the unknown, default
-- 1), A (m x n_out measurement matrix, default the identity), l1 (α on u, default 0), method
-- ("bregman" or "gradient"), iterations (300), x0 (start, default zeros), lr (gradient: Adam's
-- rate, 0.01), mu and beta (bregman: step multiplier and the problem's weight, 1 and 1).
-- info = {objective = per-sample ½‖A f(u) − y‖² + α‖u‖₁, residual = per-sample ‖A f(u) − y‖²,
-- output = f(u), the network's output from u (e.g. the image a decoder makes of the code)}.
return function(net, y, opts, ...)
  blua._noExtra("blua.invert", "net, y [, opts]", nil, ...)
  if getmetatable(net) ~= blua.nn.MLP then error("blua.invert: a blua.nn network expected", 2) end
  local o = options(net, y, opts)
  local u = o.x0 and o.x0:clone() or blua.zeros(y:size(1), net.sizes[o.from])
  if o.method == "gradient" then invert_gradient(net, o, y, u) else invert_bregman(net, o, y, u) end
  local value, r, out = objective(net, o, y, u)
  return u, {objective = value, residual = r:dot(r) / u:size(1), output = out}
end
