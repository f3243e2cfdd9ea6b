-- Reproduces the three tables of Wang & Benning's lifted Bregman poster (docs/design.md, "Reproducing the poster") with
-- the library defaults: the paper's 784-64-64-64-10 ReLU network trained by back-propagation,
-- the classical lifted model and lifted Bregman training, on MNIST and Fashion-MNIST, over
-- several seeds. Writes OUT/report.md (tables beside the published numbers, timings, machine)
-- and learning curves OUT/*.png. Finished runs are kept in OUT/runs/, so an interrupted
-- reproduction resumes where it stopped.
--   blua scripts/reproduce.lua [--dataset all] [--methods backprop,lifted,bregman] [--seeds 3]
--   blua scripts/reproduce.lua --quick      # a few minutes on small subsets, for smoke tests
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"dataset", {"mnist", "fashion", "all"}, "all", "data sets to run"},
  {"methods", "string", "backprop,lifted,bregman", "methods, comma-separated"},
  {"seeds", "integer", 3, "seeds per method and data set (1, 2, ...)"},
  {"quick", "flag", false, "small subsets, few epochs, one seed: a smoke test"},
  {"out", "string", "results", "output directory"},
  {"threads", "integer", nil, "threads (default: all cores)"},
  {"fresh", "flag", false, "ignore finished runs in OUT/runs and train again"},
}, {name = "reproduce.lua", usage = "blua scripts/reproduce.lua [options]",
    about = "Reproduces Tables 1-3 of the lifted Bregman poster with blua's default options."})

if o.threads then blua.setNumThreads(o.threads) end
local methods = {}
for m in o.methods:gmatch("[^,%s]+") do
  if not ({backprop = true, lifted = true, bregman = true})[m] then
    io.stderr:write("reproduce.lua: unknown method '", m, "' (backprop, lifted, bregman)\n")
    os.exit(2)
  end
  methods[#methods + 1] = m
end
local datasets = o.dataset == "all" and {"mnist", "fashion"} or {o.dataset}
local seeds = o.quick and 1 or o.seeds
local quick = o.quick and {train = 5000, test = 2000, epochs = 3} or nil

local published = {
  mnist = {backprop = {99.8, 97.7}, lifted = {85.2, 86.3}, bregman = {99.3, 96.7}},
  fashion = {backprop = {95.6, 88.0}, lifted = {81.4, 80.0}, bregman = {93.5, 85.7}},
  linear = {backprop = {38.0, 39.6, 38.4}, lifted = {99.9, 99.9, 99.9}, bregman = {50.6, 12.5, 25.4}},
}
local labels = {backprop = "Back-prop", lifted = "Standard lifted", bregman = "Bregman lifted"}
local titles = {mnist = "MNIST", fashion = "Fashion-MNIST"}

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end
sh("mkdir -p '" .. o.out .. "/runs'")

-- One training run, or its saved result when it finished before.
local function run(dataset, method, seed)
  local path = string.format("%s/runs/%s-%s-%d%s.blua", o.out, dataset, method, seed, quick and "-quick" or "")
  if not o.fresh then
    local f = io.open(path)
    if f then
      f:close()
      local ok, saved = pcall(blua.load, path)
      if ok then
        print(string.format("%-8s %-9s seed %d: kept from %s", dataset, method, seed, path))
        return saved
      end
      print(string.format("%-8s %-9s seed %d: %s is unreadable (%s); training again", dataset, method, seed, path, saved))
    end
  end
  local load = dataset == "mnist" and blua.data.mnist or blua.data.fashion
  local train, test = load("train"), load("test")
  if quick then
    train = blua.data.subset(train, 1, quick.train)
    test = blua.data.subset(test, 1, quick.test)
  end
  blua.manualSeed(seed)
  local net = blua.nn.mlp{784, 64, 64, 64, 10, activation = "relu", output = "softmax"}
  local curve = {}
  local opts = {seed = seed, test = test, verbose = false,
    on_epoch = function(epoch, s)
      curve[#curve + 1] = {epoch = epoch, test = s.test_acc, train = s.train_acc, time = s.time, seconds = s.seconds}
      if blua.isatty(1) then
        io.write(string.format("\r%-8s %-9s seed %d: epoch %d, test %.2f%%  ", dataset, method, seed, epoch, 100 * s.test_acc))
        io.flush()
      end
    end}
  if quick then opts.epochs = quick.epochs end
  local t0 = blua.clock()
  blua.train[method](net, train, opts)
  local result = {
    dataset = dataset, method = method, seed = seed, curve = curve, seconds = blua.clock() - t0,
    train_acc = blua.metrics.accuracy(net, train), test_acc = blua.metrics.accuracy(net, test),
    linear = blua.metrics.linear_fraction(net, dataset == "fashion" and train or test),
    epochs = #curve, threads = blua.getNumThreads(),
  }
  print(string.format("%s%-8s %-9s seed %d: train %.2f%%  test %.2f%%  %.1f s", blua.isatty(1) and "\r" or "", dataset, method, seed,
    100 * result.train_acc, 100 * result.test_acc, result.seconds))
  blua.save(path, result)
  return result
end

local stats = blua.metrics.mean_sd

local function pm(xs, scale)
  local scaled = {}
  for i, x in ipairs(xs) do scaled[i] = x * (scale or 100) end
  local m, s = stats(scaled)
  if #xs == 1 then return string.format("%.2f", m) end
  return string.format("%.2f ± %.2f", m, s)
end

local results = {}
local started = blua.clock()
for _, dataset in ipairs(datasets) do
  results[dataset] = {}
  for _, method in ipairs(methods) do
    results[dataset][method] = {}
    for seed = 1, seeds do results[dataset][method][seed] = run(dataset, method, seed) end
  end
end

-- ------------------------------------------------------------------ report
local lines = {}
local function add(...) lines[#lines + 1] = string.format(...) end
local cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"):gsub("^%s+", "")
add("# Reproduction of the lifted Bregman poster's tables")
add("")
add("Command: `blua scripts/reproduce.lua%s%s` (blua %s). Network 784-64-64-64-10, ReLU hidden layers, softmax output; every method with its library defaults (`blua.train.defaults`). %s; accuracies in %%.",
  o.quick and " --quick" or "", o.dataset ~= "all" and (" --dataset " .. o.dataset) or "", blua.version,
  seeds > 1 and string.format("Mean ± sample standard deviation over seeds 1..%d", seeds) or "One run, seed 1")
add("")
add("Machine: %s, %s cores, %d threads; OpenBLAS %s.", cpu ~= "" and cpu or "unknown CPU", sh("nproc"), blua.getNumThreads(), select(2, blua.blasInfo()))
if quick then add("") add("**Quick mode**: %d training and %d test samples, %d epochs — a smoke test, not the published setting.", quick.train, quick.test, quick.epochs) end
for _, dataset in ipairs(datasets) do
  add("")
  add("## Table %d: classification accuracy on %s", dataset == "mnist" and 1 or 2, titles[dataset])
  add("")
  add("| Model | Train | Test | Published train | Published test | Epochs | Training s/epoch | Run s (with evaluation) |")
  add("|---|---|---|---|---|---|---|---|")
  for _, method in ipairs(methods) do
    local rs = results[dataset][method]
    local tr, te, per, total = {}, {}, {}, {}
    for i, r in ipairs(rs) do
      tr[i], te[i] = r.train_acc, r.test_acc
      local training = 0
      for _, c in ipairs(r.curve) do training = training + c.seconds end
      per[i], total[i] = training / r.epochs, r.seconds
    end
    local p = published[dataset][method]
    add("| %s | %s | %s | %.1f | %.1f | %d | %.2f | %.1f |", labels[method], pm(tr), pm(te), p[1], p[2], rs[1].epochs,
      (stats(per)), (stats(total)))
  end
end
local linear_set = results.fashion and "fashion" or datasets[1]
add("")
add("## Table 3: linear activation percentage per hidden layer (%s, training set)", titles[linear_set])
add("")
add("| Model | Layer 1 | Layer 2 | Layer 3 | Published |")
add("|---|---|---|---|---|")
for _, method in ipairs(methods) do
  local rs = results[linear_set][method]
  local cells = {}
  for l = 1, 3 do
    local xs = {}
    for i, r in ipairs(rs) do xs[i] = r.linear[l] end
    cells[l] = pm(xs)
  end
  local p = published.linear[method]
  add("| %s | %s | %s | %s | %.1f / %.1f / %.1f |", labels[method], cells[1], cells[2], cells[3], p[1], p[2], p[3])
end

add("")
add("## Every run")
add("")
add("| Data set | Method | Seed | Train | Test | Epochs | Training s/epoch | Run s (with evaluation) | Threads |")
add("|---|---|---|---|---|---|---|---|---|")
for _, dataset in ipairs(datasets) do
  for _, method in ipairs(methods) do
    for seed, r in ipairs(results[dataset][method]) do
      local training = 0
      for _, c in ipairs(r.curve) do training = training + c.seconds end
      add("| %s | %s | %d | %.2f | %.2f | %d | %.2f | %.1f | %d |", titles[dataset], labels[method], seed,
        100 * r.train_acc, 100 * r.test_acc, r.epochs, training / r.epochs, r.seconds, r.threads)
    end
  end
end

-- Learning curves: test accuracy (seed 1) against epoch and against wall time.
local plots = {}
for _, dataset in ipairs(datasets) do
  for _, axis in ipairs{"epoch", "time"} do
    local series = {}
    for _, method in ipairs(methods) do
      local xs, ys = {}, {}
      for _, c in ipairs(results[dataset][method][1].curve) do
        xs[#xs + 1] = axis == "epoch" and c.epoch or c.time
        ys[#ys + 1] = 100 * c.test
      end
      series[#series + 1] = {name = labels[method], x = xs, y = ys}
    end
    local file = string.format("%s-%s%s.png", dataset, axis, quick and "-quick" or "")
    local ok = blua.plot.lines{path = o.out .. "/" .. file, title = titles[dataset] .. ": test accuracy (seed 1)",
      xlabel = axis == "epoch" and "epoch" or "wall time (s)", ylabel = "test accuracy %", series = series}
    if ok then plots[#plots + 1] = file end
  end
end
if #plots > 0 then
  add("")
  add("## Learning curves")
  add("")
  for _, file in ipairs(plots) do add("![%s](%s)", file, file) end
end
add("")
local sum = 0
for _, dataset in ipairs(datasets) do
  for _, method in ipairs(methods) do
    for _, r in ipairs(results[dataset][method]) do sum = sum + r.seconds end
  end
end
add("Wall time of all runs: %.1f s (this invocation, which reuses finished runs: %.1f s).", sum, blua.clock() - started)

local report = o.out .. "/report" .. (quick and "-quick" or "") .. ".md"
local f = assert(io.open(report, "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
print("report: " .. report)
