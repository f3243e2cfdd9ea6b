-- Metrics of a trained network on a data set {x =, y =}: accuracy, the linear-activation
-- share per hidden layer (docs/design.md), the lifted energy, an evaluation summary (loss,
-- accuracy, per-class accuracy), a confusion matrix and top-k accuracy. Test-time prediction
-- is always the plain forward pass.
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

-- The data set as the metrics use it, {x =, y = (2-D)}, or an error naming fname: x must fit
-- the network and have rows (a mean over no samples is no number), y as many rows. A 1-D y of
-- N labels is taken as N x 1.
local function check(net, data, fname)
  if type(net) ~= "table" or type(net.sizes) ~= "table" or math.type(net.sizes[1]) ~= "integer" then
    error(string.format("blua.metrics.%s: a blua.nn network expected, got %s", fname,
      blua.isTensor(net) and "a tensor" or type(net)), 3)
  end
  if type(data) ~= "table" or not blua.isTensor(data.x) or not blua.isTensor(data.y) then
    error(string.format("blua.metrics.%s: a data set {x =, y =} expected", fname), 3)
  end
  local x, y = data.x, data.y
  if x:dim() ~= 2 or x:size(2) ~= net.sizes[1] then
    error(string.format("size mismatch in 'metrics.%s': x is %s, the network takes N x %d", fname,
      table.concat({x:size()}, "x"), net.sizes[1]), 3)
  end
  if x:size(1) == 0 then error(string.format("blua.metrics.%s: the data set has no rows", fname), 3) end
  if y:size(1) ~= x:size(1) then
    error(string.format("size mismatch in 'metrics.%s': x has %d rows and y %d", fname, x:size(1), y:size(1)), 3)
  end
  return {x = x, y = y:dim() == 1 and y:contiguous():view(y:size(1), 1) or y}
end

-- An error naming fname unless data.y holds class labels of net: one column of the integers
-- 1..C, C the network's output size (> 1).
local function check_labels(net, data, fname)
  local C = net.sizes[#net.sizes]
  local y = data.y
  if C == 1 or y:size(2) ~= 1 then
    error(string.format("blua.metrics.%s: class labels expected (N x 1, the integers 1..C for a network of C > 1 outputs); "
      .. "y is %dx%d and the network has %d output%s", fname, y:size(1), y:size(2), C, C == 1 and "" or "s"), 3)
  end
  if not y:allFinite() or y:min() < 1 or y:max() > C or y:clone():floor():add(-1, y):abs():max() ~= 0 then
    error(string.format("bad labels in 'metrics.%s': y holds %s..%s; labels are the integers 1..%d", fname,
      tostring(y:min()), tostring(y:max()), C), 3)
  end
end

--- Fraction in [0, 1] of rows whose arg-max output is the label.
function metrics.accuracy(net, data)
  data = check(net, data, "accuracy")
  check_labels(net, data, "accuracy")
  local right = 0
  local n = each_chunk(net, data, function(Z, _, first, count)
    local pred = Z[#Z]:argmax(2)
    local y = data.y:narrow(1, first, count)
    right = right + pred:add(-1, y):abs():lt(0.5):sum()
  end)
  return right / n
end

--- {layer1, layer2, ...}: share of (sample, unit) pairs of each hidden layer at which the
-- activation acts as the identity (ReLU: z > 0).
function metrics.linear_fraction(net, data)
  data = check(net, data, "linear_fraction")
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
local energy_options = {X = true, gamma = true, loss_weight = true, penalty = true}

function metrics.energy(net, data, opts)
  data = check(net, data, "energy")
  opts = opts or {}
  if type(opts) ~= "table" then error("blua.metrics.energy: options table expected", 2) end
  for k in pairs(opts) do
    if not energy_options[k] then
      error(string.format("blua.metrics.energy: unknown option '%s' (accepted: X, gamma, loss_weight, penalty)", tostring(k)), 2)
    end
  end
  if opts.penalty ~= nil and opts.penalty ~= "bregman" and opts.penalty ~= "quadratic" then
    error(string.format("blua.metrics.energy: unknown penalty '%s' (accepted: bregman, quadratic)", tostring(opts.penalty)), 2)
  end
  for _, k in ipairs{"gamma", "loss_weight"} do
    if opts[k] ~= nil and not (type(opts[k]) == "number" and opts[k] > 0 and opts[k] < math.huge) then
      error(string.format("blua.metrics.energy: option '%s' must be a positive number, got %s", k, tostring(opts[k])), 2)
    end
  end
  local penalty, gamma = opts.penalty or "bregman", opts.gamma or blua.train.defaults("lifted").gamma
  local L = net:nLayers()
  local Y = require("blua.train.options").targets(net, data.y) -- labels one-hot, as the trainers take y
  local _, Xf = net:forwardAll(data.x)
  local X = {[0] = data.x}
  for l = 1, L - 1 do X[l] = opts.X and opts.X[l] or Xf[l] end
  X[L] = Y
  local n = data.x:size(1)
  local terms, total = {}, 0
  for l = 1, L do
    local act = net:activation(l)
    local z = net:block(l):forward(X[l - 1], blua.zeros(n, net.sizes[l + 1]))
    local e
    if penalty == "quadratic" and l < L then
      local d = X[l]:clone():add(-1, z)
      e = 0.5 * gamma * d:dot(d)
    elseif act.has_energy == false then
      -- no number is right here: say what is missing rather than return NaN
      error(string.format("blua.metrics.energy: layer %d's activation '%s' has no Bregman penalty (define psi and conj)%s",
        l, act.name, l < L and ", or ask for penalty = 'quadratic'" or ""), 2)
    else
      e = act:bregman(X[l], z)
    end
    if l == L then e = e * (opts.loss_weight or 1) end
    terms[l] = e / n
    total = total + terms[l]
  end
  return total, terms
end

-- A confusion matrix prints as a grid: rows are true classes, columns predictions.
local Confusion = {}
Confusion.__index = Confusion

function Confusion:__tostring()
  local C = #self
  local width = 5
  for i = 1, C do
    for j = 1, C do width = math.max(width, #tostring(self[i][j]) + 1) end
  end
  local lines = {"true \\ predicted"}
  local head = {string.format("%5s", "")}
  for j = 1, C do head[#head + 1] = string.format("%" .. width .. "d", j) end
  lines[#lines + 1] = table.concat(head)
  for i = 1, C do
    local row = {string.format("%5d", i)}
    for j = 1, C do row[#row + 1] = string.format("%" .. width .. "d", self[i][j]) end
    lines[#lines + 1] = table.concat(row)
  end
  return table.concat(lines, "\n")
end

--- C x C table: confusion[true][predicted] counts; tostring prints it as a grid.
function metrics.confusion(net, data)
  data = check(net, data, "confusion")
  check_labels(net, data, "confusion")
  local C = net.sizes[#net.sizes]
  local m = setmetatable({}, Confusion)
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

--- {loss =, accuracy =, per_class = {acc of class 1, ...}, n =}: the mean output loss (the
-- training loss: cross-entropy for softmax, squared error for identity), the accuracy, and
-- each class's accuracy (recall; NaN for a class with no samples).
function metrics.evaluate(net, data)
  data = check(net, data, "evaluate")
  check_labels(net, data, "evaluate")
  local C = net.sizes[#net.sizes]
  local L = net:nLayers()
  local out = net:activation(L)
  local loss_sum = 0
  each_chunk(net, data, function(Z, _, first, count)
    local Y = blua.data.onehot(data.y:narrow(1, first, count), C)
    loss_sum = loss_sum + out:bregman(Y, Z[L])
  end)
  local m = metrics.confusion(net, data)
  local n, right, per_class = data.y:size(1), 0, {}
  for c = 1, C do
    local total = 0
    for j = 1, C do total = total + m[c][j] end
    right = right + m[c][c]
    per_class[c] = total > 0 and m[c][c] / total or 0 / 0
  end
  return {loss = loss_sum / n, accuracy = right / n, per_class = per_class, n = n}
end

--- Fraction in [0, 1] of rows whose label is among the k highest outputs (ties count for the
-- label: only strictly higher outputs push it out).
function metrics.topk(net, data, k)
  data = check(net, data, "topk")
  local C = net.sizes[#net.sizes]
  if math.type(k) ~= "integer" or k < 1 then
    error(string.format("blua.metrics.topk: k must be a positive integer, got %s", tostring(k)), 2)
  end
  check_labels(net, data, "topk")
  local ones_c = blua.ones(C, 1)
  local hits = 0
  local n = each_chunk(net, data, function(Z, _, first, count)
    local scores = Z[#Z]
    local Y = blua.data.onehot(data.y:narrow(1, first, count), C)
    local own = scores:clone():cmul(Y) * ones_c              -- count x 1: the label's output
    local above = (scores - own * ones_c:t()):gt(0) * ones_c -- outputs strictly above it
    hits = hits + above:lt(k - 0.5):sum()
  end)
  return hits / n
end

-- ---------------------------------------------------------------------------------------
-- regression and denoising

local function squared_error(a, b)
  local d = a:clone():add(-1, b)
  return d:dot(d)
end

--- Mean squared error per entry of net:forward(data.x) against the target matrix data.y.
--- metrics.mse(a, b) with two tensors of one shape compares them directly.
function metrics.mse(net, data)
  if blua.isTensor(net) then
    if not blua.isTensor(data) or net:nElement() ~= data:nElement() then
      error("size mismatch in 'blua.metrics.mse': two tensors of one shape expected", 2)
    end
    return squared_error(net, data) / net:nElement()
  end
  check(net, data, "mse")
  local out = net.sizes[#net.sizes]
  if data.y:dim() ~= 2 or data.y:size(2) ~= out then
    error(string.format("size mismatch in 'blua.metrics.mse': y needs %d columns (targets), got %s", out,
      table.concat({data.y:size()}, "x")), 2)
  end
  local sum = 0
  local n = each_chunk(net, data, function(_, X, first, count)
    sum = sum + squared_error(X[#X], data.y:narrow(1, first, count))
  end)
  return sum / (n * out)
end

-- Mean squared error per entry after clipping the output to the image scale [0, peak]: the
-- output is moved to that scale by the set's mean (centred data), clipped, and moved back.
local function clipped_mse(net, data, peak, fname)
  local function clip(t, mean)
    if mean then t:addRow(mean) end
    t:cmax(0):cmin(peak)
    if mean then t:addRow(mean, -1) end
    return t
  end
  if blua.isTensor(net) then
    metrics.mse(net, data) -- the shape checks
    return squared_error(clip(net:clone()), data) / net:nElement()
  end
  metrics.mse(net, data)
  local mean = data.mean
  if mean ~= nil and not (blua.isTensor(mean) and mean:nElement() == net.sizes[#net.sizes]) then
    error(string.format("size mismatch in '%s': the set's mean must have %d entries", fname, net.sizes[#net.sizes]), 3)
  end
  mean = mean and mean:contiguous():view(1, mean:nElement())
  local sum = 0
  local n = each_chunk(net, data, function(_, X, first, count)
    sum = sum + squared_error(clip(X[#X]:clone(), mean), data.y:narrow(1, first, count))
  end)
  return sum / (n * net.sizes[#net.sizes])
end

--- Peak signal-to-noise ratio in dB, 10 log10(peak² / mse), peak 1 (the [0, 1] image scale).
--- A common offset of output and target (centred data, blua.data.centre) leaves it unchanged.
--- metrics.psnr(a, b [, peak]) with two tensors compares them directly (e.g. noisy vs clean).
--- The third argument may be {peak =, clip = true}: the output is then clipped to [0, peak] on
--- the image scale first (a centred set's mean added back for the clip), as an image shows it.
--- Without clip the output is scored as the network gives it.
function metrics.psnr(net, data, peak)
  local clip = false
  if type(peak) == "table" then
    for k in pairs(peak) do
      if k ~= "peak" and k ~= "clip" then
        error(string.format("blua.metrics.psnr: unknown option '%s' (accepted: clip, peak)", tostring(k)), 2)
      end
    end
    peak, clip = peak.peak, peak.clip
  end
  peak = peak or 1
  if type(peak) ~= "number" or not (peak > 0 and peak < math.huge) then
    error(string.format("blua.metrics.psnr: peak must be a positive number, got %s", tostring(peak)), 2)
  end
  local mse = clip and clipped_mse(net, data, peak, "blua.metrics.psnr") or metrics.mse(net, data)
  return 10 * math.log(peak * peak / mse, 10)
end

--- Fraction in [0, 1] of exact zeros in layer l's activations σ_l(z_l) on data.x.
function metrics.sparsity(net, data, l)
  check(net, data, "sparsity")
  if math.type(l) ~= "integer" or l < 1 or l > net:nLayers() then
    error(string.format("bad argument #3 to 'blua.metrics.sparsity' (a layer in 1..%d expected, got %s)",
      net:nLayers(), tostring(l)), 2)
  end
  local zeros = 0
  local n = each_chunk(net, data, function(_, X)
    zeros = zeros + X[l]:clone():abs():gt(0):mul(-1):add(1):sum()
  end)
  return zeros / (n * net.sizes[l + 1])
end

--- Mean and sample standard deviation (n − 1 in the denominator; 0 for one value) of a list
--- of numbers: the "mean ± sd over seeds" of every results table.
function metrics.mean_sd(xs)
  if type(xs) ~= "table" or #xs == 0 then
    error("bad argument #1 to 'blua.metrics.mean_sd' (a non-empty list of numbers expected)", 2)
  end
  local sum = 0
  for i, x in ipairs(xs) do
    if type(x) ~= "number" then
      error(string.format("bad argument #1 to 'blua.metrics.mean_sd' (entry %d is a %s, not a number)", i, type(x)), 2)
    end
    sum = sum + x
  end
  local n = #xs
  local mean, var = sum / n, 0
  for _, x in ipairs(xs) do var = var + (x - mean) ^ 2 end
  return mean, n > 1 and math.sqrt(var / (n - 1)) or 0
end

-- An argument past a metric's last is an error, not ignored.
blua._refuseExtra(metrics, "blua.metrics.", {accuracy = "net, data", linear_fraction = "net, data",
  energy = "net, data [, opts]", confusion = "net, data", evaluate = "net, data", topk = "net, data, k",
  mse = "net, data", psnr = "net, data [, peak]", sparsity = "net, data, l", mean_sd = "xs"})

return metrics
