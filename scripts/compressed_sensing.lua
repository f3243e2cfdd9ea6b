-- Compressed sensing with a trained decoder: y = A x + noise with A Gaussian (m x 784), x a
-- centred Fashion-MNIST test image. Recovery (1) through the decoder of autoencoder.lua
-- (layer 4, the output layer, with the code unknown, α‖code‖₁) by lifted Bregman inversion and by gradient descent
-- (blua.invert), and (2) by the Lasso in the orthonormal 2-D DCT basis, solved with FISTA.
-- The decoder's L1 weight α is chosen per method from a small grid at one m (--select-m; 0:
-- at every m), the Lasso's λ from its grid at every m (it is cheap); both are stated.
-- Writes OUT/compressed_sensing.md (per-pixel MSE per m) and OUT/compressed_sensing.png.
--   blua scripts/compressed_sensing.lua [--model results/autoencoder-bregman.blua] [--quick]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"model", "string", "results/autoencoder-bregman.blua", "a network saved by autoencoder.lua --save"},
  {"ms", "string", "25,50,100,200,400", "numbers of measurements m"},
  {"images", "integer", 300, "test images"},
  {"noise", "number", 0.05, "standard deviation of the measurement noise"},
  {"alphas", "string", "0.01,0.1,0.3,1", "grid of the decoder's L1 weight on the code"},
  {"lambdas", "string", "0.001,0.01,0.03,0.1,0.3,1", "grid of the DCT-Lasso weight"},
  {"iterations", "integer", 300, "inversion iterations (FISTA: 4x as many)"},
  {"select-m", "integer", 100, "the m at which each inversion's α is chosen from the grid (0: at every m)"},
  {"threads", "integer", 0, "threads (0: the runtime's default)"},
  {"out", "string", "results", "folder of the report and the plot"},
  {"quick", "flag", false, "a smoke test: a small autoencoder trained here, 20 images, m = 25 and 100"},
}, {name = "compressed_sensing.lua", usage = "blua scripts/compressed_sensing.lua [options]"})

if o.threads > 0 then blua.setNumThreads(o.threads) end
local function numbers(s)
  local t = {}
  for v in s:gmatch("[^,]+") do t[#t + 1] = tonumber(v) end
  return t
end
local ms, alphas, lambdas = numbers(o.ms), numbers(o.alphas), numbers(o.lambdas)

local model
if o.quick then
  ms, o.images, o.iterations, alphas, lambdas = {25, 100}, 20, 30, {0, 0.01}, {0.01}
  local clean = blua.data.centre(blua.data.subset(blua.data.fashion("train"), 1, 200))
  local train = blua.data.noisy(clean, 0.3, {seed = 1})
  blua.manualSeed(1)
  local net = blua.nn.mlp{784, 32, 32, 32, 784, output = "identity",
    activation = {"relu", "relu", {name = "soft_threshold", params = {lambda = 0.1}}}}
  blua.train.bregman(net, train, {epochs = 1, verbose = false, l1 = {[3] = 0.01}})
  model = {net = net, mean = clean.mean}
else
  model = blua.load(o.model)
end
local net, mean = model.net, model.mean
local FROM = 4 -- the decoder: layer 4 of autoencoder.lua's four layers; its input is the code

local test = blua.data.centre(blua.data.subset(blua.data.fashion("test"), 1, o.images), mean)
local x = test.x

-- The orthonormal 2-D DCT-II basis of 28 x 28 images: row k of B is basis image k, so an image
-- row x has coefficients c = x Bᵀ and x = c B.
local function dct_basis(n)
  local c = {}
  for k = 0, n - 1 do
    c[k] = {}
    local s = k == 0 and math.sqrt(1 / n) or math.sqrt(2 / n)
    for i = 0, n - 1 do c[k][i] = s * math.cos(math.pi * (i + 0.5) * k / n) end
  end
  local rows = {}
  for k1 = 0, n - 1 do
    for k2 = 0, n - 1 do
      local row = {}
      for i1 = 0, n - 1 do
        for i2 = 0, n - 1 do row[#row + 1] = c[k1][i1] * c[k2][i2] end
      end
      rows[#rows + 1] = row
    end
  end
  return blua.tensor(rows)
end
local B = dct_basis(28)

-- min_c ½‖c (A B)ᵀ − y‖² + λ‖c‖₁ per row, by FISTA with the step 1/‖A‖² (B is orthonormal).
local function dct_lasso(A, y, lambda, iterations)
  local M = A:mm(B:t()) -- m x 784: measurements of each basis image
  local s = blua.spectralNorm(A, 50)
  local step = 1 / (s * s)
  local c = blua.zeros(y:size(1), 784)
  local z, prev = c:clone(), c:clone()
  local t = 1
  local shrink = blua.activation.get("identity")
  for _ = 1, iterations do
    local grad = z:mm(M:t()):add(-1, y):mm(M)
    prev:copy(c)
    shrink:project_l1(z:clone():add(-step, grad), step * lambda, c)
    local t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
    z:copy(c):add((t - 1) / t_next, c:clone():add(-1, prev))
    t = t_next
  end
  return c:mm(B)
end

-- The select-m run comes first, so its choice of α holds for every other m.
if o.select_m ~= 0 then
  table.sort(ms, function(a, b)
    if (a == o.select_m) ~= (b == o.select_m) then return a == o.select_m end
    return a < b
  end)
end
local chosen = {}
local rows = {}
local series = {m = {}, lifted = {}, gradient = {}, dct = {}}
print(string.format("compressed sensing: %d test images, noise %g, decoder from %s", o.images, o.noise,
  o.quick and "a quick training" or o.model))
for _, m in ipairs(ms) do
  blua.manualSeed(1000 + m)
  local A = blua.randn(m, 784):mul(1 / math.sqrt(m))
  local y = x:mm(A:t()):add(blua.randn(o.images, m):mul(o.noise))
  local best = {}
  local function try(key, value, mse)
    if not best[key] or mse < best[key].mse then best[key] = {mse = mse, value = value} end
  end
  local t0 = blua.clock()
  for _, method in ipairs{"bregman", "gradient"} do
    local grid = (o.select_m == 0 or m == o.select_m or not chosen[method]) and alphas or {chosen[method]}
    for _, alpha in ipairs(grid) do
      local _, info = blua.invert(net, y, {from = FROM, A = A, l1 = alpha, method = method, iterations = o.iterations})
      try(method, alpha, blua.metrics.mse(info.output, x))
    end
    if m == o.select_m then chosen[method] = best[method].value end
  end
  local t_dec = blua.clock() - t0
  for _, lambda in ipairs(lambdas) do try("dct", lambda, blua.metrics.mse(dct_lasso(A, y, lambda, 4 * o.iterations), x)) end
  rows[#rows + 1] = {m = m, best = best, time = t_dec}
  print(string.format("m = %-4d lifted %.5f (α %g)  gradient %.5f (α %g)  DCT-Lasso %.5f (λ %g)  inversions %.1f s", m,
    best.bregman.mse, best.bregman.value, best.gradient.mse, best.gradient.value, best.dct.mse, best.dct.value, t_dec))
end

local lines = {
  "# Compressed sensing with a trained decoder (Fashion-MNIST)",
  "",
  string.format("Command: `blua scripts/compressed_sensing.lua%s`. %d centred test images, A Gaussian m × 784 " ..
    "(entries N(0, 1/m)), measurement noise N(0, %g²), %d inversion iterations (FISTA %d). Per-pixel MSE on the [0, 1] " ..
    "scale. The decoder's α on the code is the best of {%s} %s; the Lasso's λ the best of {%s} at each m.",
    #arg > 0 and " " .. table.concat(arg, " ") or "", o.images, o.noise, o.iterations, 4 * o.iterations,
    table.concat(alphas, ", "), o.select_m == 0 and "at each m" or ("for each inversion at m = " .. o.select_m),
    table.concat(lambdas, ", ")),
  "",
  "| m | lifted Bregman inversion | gradient inversion | lifted / gradient | DCT-Lasso (FISTA) | best decoder / Lasso |",
  "|---|---|---|---|---|---|",
}
table.sort(rows, function(a, b) return a.m < b.m end)
for _, r in ipairs(rows) do
  local b = r.best
  lines[#lines + 1] = string.format("| %d | %.5f (α %g) | %.5f (α %g) | %.2f | %.5f (λ %g) | %.2f |", r.m, b.bregman.mse,
    b.bregman.value, b.gradient.mse, b.gradient.value, b.bregman.mse / b.gradient.mse, b.dct.mse, b.dct.value,
    math.min(b.bregman.mse, b.gradient.mse) / b.dct.mse)
end
for _, r in ipairs(rows) do
  series.m[#series.m + 1] = r.m
  series.lifted[#series.lifted + 1], series.gradient[#series.gradient + 1], series.dct[#series.dct + 1] =
    r.best.bregman.mse, r.best.gradient.mse, r.best.dct.mse
end
os.execute("mkdir -p '" .. o.out .. "'")
local suffix = o.quick and "-quick" or ""
local f = assert(io.open(o.out .. "/compressed_sensing" .. suffix .. ".md", "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
print(table.concat(lines, "\n"))
local ok, err = blua.plot.lines{path = o.out .. "/compressed_sensing" .. suffix .. ".png", title = "compressed sensing, Fashion-MNIST",
  xlabel = "measurements m", ylabel = "per-pixel MSE", series = {
    {name = "lifted Bregman inversion", x = series.m, y = series.lifted},
    {name = "gradient inversion", x = series.m, y = series.gradient},
    {name = "DCT-Lasso (FISTA)", x = series.m, y = series.dct}}}
print(ok and ("plot: " .. o.out .. "/compressed_sensing" .. suffix .. ".png") or ("no plot: " .. tostring(err)))
