-- Epochs of the paper's network with sigmoid or tanh hidden layers against ReLU ones, side by
-- side in one run (MNIST, batch 128): the cost of the smooth activations' exp/log and of the
-- Newton solve in their prox, as a ratio to the ReLU epoch, per trainer.
--   blua scripts/bench/smooth.lua [--threads N] [--epochs 2]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"threads", "integer", blua.getNumThreads(), "threads"},
  {"epochs", "integer", 2, "epochs per run (the fastest is reported)"},
}, {usage = "blua scripts/bench/smooth.lua [options]"})

blua.setNumThreads(o.threads)
local train = blua.data.mnist("train")

-- Fastest epoch in wall-clock seconds and in CPU seconds of the process (os.clock): on a
-- loaded machine the CPU time still measures the work.
local function epoch(method, act)
  blua.manualSeed(1)
  local net = blua.nn.mlp{784, 64, 64, 64, 10, activation = act}
  local wall, cpu, c0 = math.huge, math.huge, os.clock()
  blua.train[method](net, train, {epochs = o.epochs, verbose = false, eval_train = false,
    on_epoch = function(_, stats)
      local c = os.clock()
      wall, cpu, c0 = math.min(wall, stats.seconds), math.min(cpu, c - c0), c
    end})
  return wall, cpu
end

print(string.format("MNIST, 784-64-64-64-10, batch 128, %d threads; fastest of %d epochs, wall s (CPU s)", o.threads, o.epochs))
print(string.format("%-9s %15s %15s %15s %13s %13s", "trainer", "relu", "sigmoid", "tanh", "sigmoid/relu", "tanh/relu"))
for _, method in ipairs{"backprop", "bregman"} do
  local r, rc = epoch(method, "relu")
  local s, sc = epoch(method, "sigmoid")
  local t, tc = epoch(method, "tanh")
  print(string.format("%-9s %6.3f (%6.3f) %6.3f (%6.3f) %6.3f (%6.3f) %5.2f (%5.2f) %5.2f (%5.2f)", method, r, rc, s, sc,
    t, tc, s / r, sc / rc, t / r, tc / rc))
end
