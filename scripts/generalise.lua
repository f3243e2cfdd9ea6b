-- Do the default options generalise? Lifted Bregman training against back-propagation, both
-- with their library defaults and no other change, on Fashion-MNIST for networks other than
-- the paper's: other widths, depths and proximal activations. Writes OUT/generalise.md.
--   blua scripts/generalise.lua [--seeds 1] [--out results] [--quick]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"seeds", "integer", 1, "seeds per architecture and method"},
  {"out", "string", "results", "output directory"},
  {"dataset", {"mnist", "fashion"}, "fashion", "data set"},
  {"quick", "flag", false, "small subsets and few epochs: a smoke test"},
}, {name = "generalise.lua", usage = "blua scripts/generalise.lua [options]"})

local architectures = {
  {name = "paper: 64-64-64 relu", hidden = {64, 64, 64}, activation = "relu"},
  {name = "wide: 256-256 relu", hidden = {256, 256}, activation = "relu"},
  {name = "deep: 6 x 64 relu", hidden = {64, 64, 64, 64, 64, 64}, activation = "relu"},
  {name = "64-64-64 leaky_relu (0.1)", hidden = {64, 64, 64}, activation = blua.activation.get("leaky_relu", {slope = 0.1})},
  {name = "64-64-64 clip [0, 1]", hidden = {64, 64, 64}, activation = blua.activation.get("clip", {lo = 0, hi = 1})},
  {name = "64-64-64 clip [-1, 1] (hard tanh)", hidden = {64, 64, 64}, activation = "clip"},
  {name = "128-128 sigmoid", hidden = {128, 128}, activation = "sigmoid"},
}

local load = o.dataset == "mnist" and blua.data.mnist or blua.data.fashion
local train, test = load("train"), load("test")
if o.quick then
  train, test = blua.data.subset(train, 1, 3000), blua.data.subset(test, 1, 1000)
end

local lines = {
  string.format("# Generalisation of the default options (%s)", o.dataset == "mnist" and "MNIST" or "Fashion-MNIST"),
  "",
  string.format("Command: `blua scripts/generalise.lua%s`. Test accuracy in %%, mean over seeds 1..%d; both methods with their library defaults%s.",
    o.quick and " --quick" or "", o.seeds, o.quick and " but 2 epochs on 3000 samples (quick mode)" or ""),
  "",
  "| Network | Back-prop | Bregman lifted | Gap | Bregman s/epoch | Back-prop s/epoch |",
  "|---|---|---|---|---|---|",
}
for _, a in ipairs(architectures) do
  local acc, secs = {}, {}
  for _, method in ipairs{"backprop", "bregman"} do
    local sum, time = 0, 0
    for seed = 1, o.seeds do
      blua.manualSeed(seed)
      local spec = {784}
      for _, w in ipairs(a.hidden) do spec[#spec + 1] = w end
      spec[#spec + 1] = 10
      spec.activation = a.activation
      local net = blua.nn.mlp(spec)
      local h = blua.train[method](net, train, {seed = seed, verbose = false, epochs = o.quick and 2 or nil})
      sum = sum + blua.metrics.accuracy(net, test)
      local run_time = 0
      for _, e in ipairs(h) do run_time = run_time + e.seconds end
      time = time + run_time / #h
    end
    acc[method], secs[method] = 100 * sum / o.seeds, time / o.seeds
    print(string.format("%-36s %-9s test %.2f%%  %.2f s/epoch", a.name, method, acc[method], secs[method]))
  end
  lines[#lines + 1] = string.format("| %s | %.2f | %.2f | %+.2f | %.2f | %.2f |", a.name, acc.backprop, acc.bregman,
    acc.bregman - acc.backprop, secs.bregman, secs.backprop)
end
os.execute("mkdir -p '" .. o.out .. "'")
local path = o.out .. "/generalise" .. (o.quick and "-quick" or "") .. ".md"
local f = assert(io.open(path, "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
print("report: " .. path)
