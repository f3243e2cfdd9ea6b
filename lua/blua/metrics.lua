-- Metrics of a trained network on a data set {x =, y =}: accuracy, the linear-activation
-- share per hidden layer (DESIGN.md §6), the lifted energy and a confusion matrix. Test-time
-- prediction is always the plain forward pass.
local blua = require "blua"

local metrics = {}

local CHUNK = 10000 -- rows per forward pass, to bound memory on big sets

-- Calls fn(Z, X, first, count) for each chunk's forward pass.
local function each_chunk(net, data, fn)
  local n = data.x:size(1)
  for first = 1, n, CHUNK do
    local count = math.min(CHUNK, n - first + 1)
    local Z, X = net:forwardAll(data.x:narrow(1, first, count))
    fn(Z, X, first, count)
  end
  return n
end

local function check(data, fname)
  if type(data) ~= "table" or not blua.isTensor(data.x) or not blua.isTensor(data.y) then
    error(string.format("blua.metrics.%s: a data set {x =, y =} expected", fname), 3)
  end
end

--- Fraction in [0, 1] of rows whose arg-max output is the label.
function metrics.accuracy(net, data)
  check(data, "accuracy")
  local right = 0
  local n = each_chunk(net, data, function(Z, _, first, count)
    local pred = Z[#Z]:argmax(2)
    local y = data.y:narrow(1, first, count)
    right = right + pred:add(-1, y):abs():lt(0.5):sum()
  end)
  return n > 0 and right / n or 0 / 0
end

--- {layer1, layer2, ...}: share of (sample, unit) pairs of each hidden layer at which the
-- activation acts as the identity (ReLU: z > 0).
function metrics.linear_fraction(net, data)
  check(data, "linear_fraction")
  local L = net:nLayers()
  local counts = {}
  for l = 1, L - 1 do counts[l] = 0 end
  each_chunk(net, data, function(Z)
    for l = 1, L - 1 do counts[l] = counts[l] + net:activation(l):linear_mask(Z[l]):sum() end
  end)
  local n = data.x:size(1)
  local out = {}
  for l = 1, L - 1 do out[l] = counts[l] / (n * net.sizes[l + 1]) end
  return out
end

--- The lifted objective at auxiliary variables X (default: the forward pass, where every
-- hidden term is zero), averaged per sample: returns total, {per-layer terms}. The last
-- term is the loss, times opts.loss_weight (default 1). opts: X = {[1] = ..., [L-1] = ...},
-- penalty = "bregman"|"quadratic", gamma (default: the lifted trainer's), loss_weight.
function metrics.energy(net, data, opts)
  check(data, "energy")
  opts = opts or {}
  local penalty, gamma = opts.penalty or "bregman", opts.gamma or blua.train.defaults("lifted").gamma
  local L = net:nLayers()
  local Y = blua.data.onehot(data.y, net.sizes[L + 1])
  local _, Xf = net:forwardAll(data.x)
  local X = {[0] = data.x}
  for l = 1, L - 1 do X[l] = opts.X and opts.X[l] or Xf[l] end
  X[L] = Y
  local n = data.x:size(1)
  local terms, total = {}, 0
  for l = 1, L do
    local act = net:activation(l)
    local z = blua._affine(blua.zeros(n, net.sizes[l + 1]), X[l - 1], net.W[l], net.b[l])
    local e
    if penalty == "quadratic" and l < L then
      local d = X[l]:clone():add(-1, z)
      e = 0.5 * gamma * d:dot(d)
    elseif act.has_energy == false then
      e = 0 / 0
    else
      e = act:bregman(X[l], z)
    end
    if l == L then e = e * (opts.loss_weight or 1) end
    terms[l] = e / n
    total = total + terms[l]
  end
  return total, terms
end

--- C x C table: confusion[true][predicted] counts.
function metrics.confusion(net, data)
  check(data, "confusion")
  local C = net.sizes[#net.sizes]
  local m = {}
  for i = 1, C do
    m[i] = {}
    for j = 1, C do m[i][j] = 0 end
  end
  each_chunk(net, data, function(Z, _, first, count)
    local pred = Z[#Z]:argmax(2)
    for i = 1, count do
      local t, p = math.tointeger(data.y:get(first + i - 1, 1)), math.tointeger(pred:get(i, 1))
      m[t][p] = m[t][p] + 1
    end
  end)
  return m
end

return metrics
