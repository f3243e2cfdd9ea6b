-- Sparse denoising autoencoders on Fashion-MNIST, the paper's second experiment: centred
-- images, 784-784-784-784-784 (four layers) with ReLU, ReLU, soft-threshold ρ (the code, layer 3)
-- and identity; energy Σ_l B_l + α‖x_3‖₁. (The slides' five activations add a ReLU layer after
-- the code: --five-layers; RESULTS.md has a probe of that network.) Lifted Bregman, classical lifted and back-propagation
-- (α‖σ(z_3)‖₁ on its activations), on the first 1 000 and 10 000 training images, several
-- seeds. Writes OUT/autoencoder.md (test PSNR as the network gives it and clipped to the [0, 1]
-- image scale, code sparsity, time) and OUT/autoencoder.png
-- (noisy / clean / each method, on test images), and with --save DIR each method's seed-1
-- network of the largest size (DIR/autoencoder-<method>.blua, for compressed_sensing.lua).
--   blua scripts/autoencoder.lua [--sizes 1000,10000] [--seeds 3] [--sigma 0.3] [--alpha 0.1]
--                                [--rho 0.1] [--test-rho ρ'] [--five-layers] [--loss-weight β] [--bregman-mu mu]
--                                [--bregman-mu-last m] [--lr rate]
--                                [--methods ...] [--trace] [--out results] [--save results] [--quick]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"sizes", "string", "1000,10000", "training set sizes (first images of the training set)"},
  {"seeds", "integer", 3, "seeds per size and method"},
  {"epochs", "integer", 10, "epochs"},
  {"sigma", "number", 0.3, "noise level σ on the [0, 1] pixel scale"},
  {"alpha", "number", 0.1, "L1 weight α on the code layer (RESULTS.md has the sweep that chose it)"},
  {"rho", "number", 0.1, "threshold ρ of the code layer's soft-threshold"},
  {"test-rho", "number", 0, "the code layer's threshold for the test metrics and the image grid (0: ρ, as trained)"},
  {"width", "integer", 784, "width of the hidden layers"},
  {"five-layers", "flag", false, "the slides' network: a ReLU layer after the code (784-784-784-784-784-784)"},
  {"bregman-mu", "number", 0, "Bregman's X-step multiplier mu (0: the library default, 2 for this network)"},
  {"bregman-mu-last", "number", 0, "Bregman's multiplier of the last hidden layer's X-step, mu_last (0: the library default, off)"},
  {"loss-weight", "number", 0, "Bregman's loss weight β (0: the library default, 1 for this network)"},
  {"lr", "number", 0, "Adam's rate for every method (0: each trainer's library default)"},
  {"trace", "flag", false, "print each epoch's loss, layer energies and spectral norms ‖W_l‖₂ (RESULTS.md, the five-layer diagnosis)"},
  {"methods", "string", "bregman,lifted,backprop", "methods, comma-separated"},
  {"test-size", "integer", 10000, "test images"},
  {"threads", "integer", 0, "threads (0: the runtime's default)"},
  {"out", "string", "results", "folder of the report and the image grid"},
  {"save", "string", "", "folder for each method's seed-1 network of the largest size"},
  {"quick", "flag", false, "a smoke test: 200 images, 1 seed, 2 epochs, width 32"},
}, {name = "autoencoder.lua", usage = "blua scripts/autoencoder.lua [options]"})

if o.threads > 0 then blua.setNumThreads(o.threads) end
local sizes, methods = {}, {}
for s in o.sizes:gmatch("%d+") do sizes[#sizes + 1] = math.tointeger(tonumber(s)) end
for m in o.methods:gmatch("[%a_]+") do methods[#methods + 1] = m end
if o.quick then sizes, o.seeds, o.epochs, o.width, o.test_size = {200}, 1, 2, 32, 200 end

-- Centred images (the training set's mean image), then Gaussian noise of level σ; the targets
-- are the clean centred images. The noise is seeded, so every method sees the same.
local train_all = blua.data.fashion("train")
local largest = math.max(table.unpack(sizes))
local clean = blua.data.centre(blua.data.subset(train_all, 1, largest))
local test = blua.data.noisy(blua.data.centre(blua.data.subset(blua.data.fashion("test"), 1, o.test_size), clean.mean),
  o.sigma, {seed = 2})
local noisy_psnr = blua.metrics.psnr(test.x, test.y)
print(string.format("Fashion-MNIST, σ = %g: noisy test input %.2f dB PSNR", o.sigma, noisy_psnr))

local function network(seed)
  blua.manualSeed(seed)
  local w = o.width
  local acts = {"relu", "relu", {name = "soft_threshold", params = {lambda = o.rho}}}
  if o.five_layers then
    acts[4] = "relu"
    return blua.nn.mlp{784, w, w, w, w, 784, output = "identity", activation = acts}
  end
  return blua.nn.mlp{784, w, w, w, 784, output = "identity", activation = acts}
end

local results, grids = {}, {}
for _, n in ipairs(sizes) do
  local train = blua.data.noisy(blua.data.subset(clean, 1, n), o.sigma, {seed = 1})
  train.mean = clean.mean
  for _, method in ipairs(methods) do
    local r = {psnr = {}, clipped = {}, sparsity = {}, time = {}, train_psnr = {}}
    for seed = 1, o.seeds do
      local net = network(seed)
      local t0 = blua.clock()
      local opts = {epochs = o.epochs, seed = seed, verbose = false, l1 = {[3] = o.alpha}}
      if o.lr > 0 then opts.lr = o.lr end
      if o.trace then
        opts.on_epoch = function(epoch, st)
          local parts = {string.format("  %s epoch %d: loss %.3f", method, epoch, st.loss)}
          for l, e in ipairs(st.energies or {}) do parts[#parts + 1] = string.format("E%d %.4f", l, e) end
          local norms = {}
          for l = 1, net:nLayers() do norms[l] = string.format("%.2f", blua.spectralNorm(net.W[l], 30)) end
          parts[#parts + 1] = "‖W‖₂ " .. table.concat(norms, " ")
          print(table.concat(parts, "  "))
        end
      end
      if method == "bregman" then
        if o.loss_weight > 0 then opts.loss_weight = o.loss_weight end
        if o.bregman_mu > 0 then opts.mu = o.bregman_mu end
        if o.bregman_mu_last > 0 then opts.mu_last = o.bregman_mu_last end
      end
      blua.train[method](net, train, opts)
      local t = blua.clock() - t0
      -- Read the trained network with another code threshold, e.g. ρ + α, the minimiser of the code
      -- layer's penalised term (RESULTS.md): only the metrics and the grid; the saved network keeps ρ.
      if o.test_rho > 0 then net.activations[3].params.lambda = o.test_rho end
      r.psnr[seed], r.sparsity[seed], r.time[seed] = blua.metrics.psnr(net, test), blua.metrics.sparsity(net, test, 3), t
      r.train_psnr[seed] = blua.metrics.psnr(net, train)
      r.clipped[seed] = blua.metrics.psnr(net, test, {clip = true})
      print(string.format("n = %-6d %-9s seed %d  test %.2f dB (clipped %.2f)  train %.2f dB  code zeros %.1f%%  %.1f s", n,
        method, seed, r.psnr[seed], r.clipped[seed], r.train_psnr[seed], 100 * r.sparsity[seed], t))
      if seed == 1 and n == largest then
        grids[method] = net:forward(test.x:narrow(1, 1, 10))
        net.activations[3].params.lambda = o.rho
        if o.save ~= "" then
          os.execute("mkdir -p '" .. o.save .. "'")
          blua.save(o.save .. "/autoencoder-" .. method .. ".blua", {net = net, mean = clean.mean, sigma = o.sigma,
            alpha = o.alpha, rho = o.rho, n = n})
        end
      end
    end
    results[#results + 1] = {n = n, method = method, r = r}
  end
end

local function stats(t)
  local m = 0
  for _, v in ipairs(t) do m = m + v end
  m = m / #t
  local s = 0
  for _, v in ipairs(t) do s = s + (v - m) ^ 2 end
  return m, #t > 1 and math.sqrt(s / (#t - 1)) or 0
end

local bregman_defaults = blua.train.defaults("bregman", network(1))
if o.loss_weight > 0 then bregman_defaults.loss_weight = o.loss_weight end
if o.bregman_mu > 0 then bregman_defaults.mu = o.bregman_mu end
if o.bregman_mu_last > 0 then bregman_defaults.mu_last = o.bregman_mu_last end
local names = {bregman = "Bregman lifted", lifted = "classical lifted", backprop = "back-prop"}
local lines = {
  "# Sparse denoising autoencoder (Fashion-MNIST)",
  "",
  string.format("Command: `blua scripts/autoencoder.lua%s` (σ = %g, α = %g, ρ = %g, %d epochs, %s weight layers with %d-wide hidden layers, " ..
    "seeds 1..%d, %d test images%s; Bregman's loss weight β = %g and X-step multiplier mu = %g%s, %s, every other option " ..
    "the library default for this network). " ..
    "Noisy test input: **%.2f dB**. Mean ± standard deviation over seeds.",
    #arg > 0 and " " .. table.concat(arg, " ") or "", o.sigma, o.alpha, o.rho, o.epochs,
    o.five_layers and "five" or "four", o.width, o.seeds, o.test_size,
    o.test_rho > 0 and string.format(", read with the code threshold %g", o.test_rho) or "",
    bregman_defaults.loss_weight, bregman_defaults.mu,
    bregman_defaults.mu_last and string.format(" (mu_last = %g on the last hidden layer)", bregman_defaults.mu_last) or "",
    o.lr > 0 and string.format("Adam's rate %g for every method", o.lr) or "each trainer's default Adam rate", noisy_psnr),
  "",
  "| training images | method | test PSNR (dB) | gain over noisy (dB) | test PSNR, clipped to [0, 1] (dB) | train PSNR (dB) | code zeros (%) | time (s) |",
  "|---|---|---|---|---|---|---|---|",
}
for _, e in ipairs(results) do
  local p, ps = stats(e.r.psnr)
  local tp = stats(e.r.train_psnr)
  local cp, cps = stats(e.r.clipped)
  local s, ss = stats(e.r.sparsity)
  local t = stats(e.r.time)
  lines[#lines + 1] = string.format("| %d | %s | %.2f ± %.2f | %+.2f | %.2f ± %.2f | %.2f | %.1f ± %.1f | %.1f |", e.n,
    names[e.method] or e.method, p, ps, p - noisy_psnr, cp, cps, tp, 100 * s, 100 * ss, t)
end
os.execute("mkdir -p '" .. o.out .. "'")
local suffix = o.quick and "-quick" or ""
local path = o.out .. "/autoencoder" .. suffix .. ".md"
local f = assert(io.open(path, "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
print(table.concat(lines, "\n"))
print("report: " .. path)

local rows, labels = {test.x:narrow(1, 1, 10), test.y:narrow(1, 1, 10)}, {"noisy", "clean"}
for _, method in ipairs(methods) do
  rows[#rows + 1] = grids[method]
  labels[#labels + 1] = names[method] or method
end
local ok, err = blua.plot.images{path = o.out .. "/autoencoder" .. suffix .. ".png", rows = rows, labels = labels,
  shape = {28, 28}, mean = clean.mean}
print(ok and ("images: " .. o.out .. "/autoencoder" .. suffix .. ".png") or ("no image grid: " .. tostring(err)))
