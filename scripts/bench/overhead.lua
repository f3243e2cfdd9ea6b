-- The per-batch cost of everything but the arithmetic: epochs of a tiny network (8-4-4-2, so
-- its products and kernels take almost no time) on 60 000 random rows, batch 128, for each
-- trainer with 1 and 2 threads. What it measures is the Lua loop, the gathers, the C calls,
-- the hand-offs to other threads and the optimiser's calls.
--   blua scripts/bench/overhead.lua [--epochs 3]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"epochs", "integer", 3, "epochs per run (the fastest is reported)"},
  {"methods", "string", "backprop,bregman", "trainers"},
}, {usage = "blua scripts/bench/overhead.lua [options]"})

blua.manualSeed(1)
local n, batch = 60000, 128
local data = {x = blua.rand(n, 8), y = blua.zeros(n, 1):fill(1)}
for i = 1, n, 2 do data.y:set(i, 1, 2) end
local batches = math.ceil(n / batch)

print(string.format("tiny network 8-4-4-2, %d rows, batch %d: microseconds per batch, fastest of %d epochs", n, batch, o.epochs))
for method in o.methods:gmatch("[^,%s]+") do
  local row = {}
  for _, threads in ipairs{1, 2} do
    blua.manualSeed(2)
    local net = blua.nn.mlp{8, 4, 4, 2}
    local best = math.huge
    blua.train[method](net, data, {epochs = o.epochs, batch = batch, verbose = false, eval_train = false,
      threads = threads, on_epoch = function(_, stats) best = math.min(best, stats.seconds) end})
    row[#row + 1] = string.format("%d thread%s %6.1f", threads, threads > 1 and "s" or " ", best / batches * 1e6)
  end
  print(string.format("%-9s %s", method, table.concat(row, "   ")))
end
