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

local function epoch(method, act)
  blua.manualSeed(1)
  local net = blua.nn.mlp{784, 64, 64, 64, 10, activation = act}
  local h = blua.train[method](net, train, {epochs = o.epochs, verbose = false, eval_train = false})
  local best = math.huge
  for _, e in ipairs(h) do best = math.min(best, e.seconds) end
  return best
end

print(string.format("MNIST, 784-64-64-64-10, batch 128, %d threads; fastest of %d epochs", o.threads, o.epochs))
print(string.format("%-9s %9s %9s %9s %14s %11s", "trainer", "relu s", "sigmoid s", "tanh s", "sigmoid/relu", "tanh/relu"))
for _, method in ipairs{"backprop", "bregman"} do
  local r, s, t = epoch(method, "relu"), epoch(method, "sigmoid"), epoch(method, "tanh")
  print(string.format("%-9s %9.3f %9.3f %9.3f %13.2fx %10.2fx", method, r, s, t, s / r, t / r))
end
