-- Distributed throughput: one rank against two, side by side in one job.
--   mpirun -np 2 blua scripts/bench/dist.lua [--mode data|layer] [--method bregman]
--                 [--hidden 1024,1024] [--batches 60] [--batch 128] [--rounds 3]
-- Every round times, in turn, rank 0 training alone (rank 1 waits) and both ranks training
-- the same batches data-parallel (or layer-parallel: then the one-rank side is the same
-- odd/even schedule without distribution, on the fused kernels); one thread per rank. Prints
-- samples per second of each and their ratio (the median over rounds), so machine noise hits
-- both sides alike.
local blua = require "blua"
local timing = dofile((arg[0]:match("^(.*)/") or ".") .. "/timing.lua")

local o = blua.cli.parse(arg, {
  {"mode", {"data", "layer"}, "data", "data- or layer-parallel"},
  {"method", {"bregman", "lifted", "backprop"}, "bregman", "training method"},
  {"hidden", "string", "1024,1024", "hidden layer widths"},
  {"batches", "integer", 60, "mini-batches per timing"},
  {"batch", "integer", 128, "global mini-batch size"},
  {"rounds", "integer", 3, "alternating rounds"},
}, {usage = "mpirun -np 2 blua scripts/bench/dist.lua [options]"})

local dist = blua.dist
if dist.size() ~= 2 then error("run under mpirun -np 2 (this process is " .. dist.describe() .. ")", 0) end
local rank = dist.rank()
blua.setNumThreads(1)

local train = blua.data.subset(blua.data.mnist("train"), 1, o.batches * o.batch)
local sizes = {784}
for w in o.hidden:gmatch("%d+") do sizes[#sizes + 1] = tonumber(w) end
sizes[#sizes + 1] = 10
sizes.activation, sizes.output = "relu", "softmax"

local function seconds(distributed)
  blua.manualSeed(1)
  local net = blua.nn.mlp(sizes)
  local opts = {epochs = 1, batch = o.batch, verbose = false, eval_train = false}
  if o.mode == "layer" then opts.order = "oddeven" end
  if distributed then opts.distributed = o.mode end
  local h = blua.train[o.method](net, train, opts)
  return h[1].seconds
end

local alone, together = {}, {}
for r = 1, o.rounds do
  local order = r % 2 == 1 and {false, true} or {true, false}
  for _, both in ipairs(order) do
    dist.barrier()
    if both then
      together[#together + 1] = seconds(true)
    else
      if rank == 0 then alone[#alone + 1] = seconds(false) end
    end
  end
end

-- The parts of a data-parallel step, each the fastest of several: the all-reduce of one
-- network's gradients, and one rank's step on a whole and on a half batch.
blua.manualSeed(1)
local probe = blua.nn.mlp(sizes)
local grads = {}
for i, p in ipairs(probe:parameters()) do grads[i] = p:clone() end
dist.barrier()
local t_reduce = timing.best(10, function() dist.allreduce(grads) end)
local function step_time(rows)
  local part = blua.data.subset(train, 1, rows * 4)
  return timing.best(3, function()
    blua.train[o.method](probe, part, {epochs = 1, batch = rows, verbose = false, eval_train = false})
  end) / 4
end
local t_full, t_half
if rank == 0 and o.mode == "data" then t_full, t_half = step_time(o.batch), step_time(o.batch // 2) end
dist.barrier()

if rank == 0 then
  local n = 0
  for _, g in ipairs(grads) do n = n + g:nElement() end
  if t_full then print(string.format("parts: step on %d rows %.1f ms, on %d rows %.1f ms, all-reduce of %d floats (%.1f MB) %.1f ms",
    o.batch, 1e3 * t_full, o.batch // 2, 1e3 * t_half, n, 4 * n / 1e6, 1e3 * t_reduce))
  print(string.format("predicted from the parts: %.2fx", t_full / (t_half + t_reduce))) end
  local samples = o.batches * o.batch
  local t1, t2 = timing.median(alone), timing.median(together)
  print(string.format("%s-parallel %s %s, batch %d, %d batches, 1 thread per rank (%s)", o.mode, o.method,
    table.concat(sizes, "-"), o.batch, o.batches, dist.describe()))
  print(string.format("1 rank : %8.0f samples/s (median of %d: %s s)", samples / t1, #alone,
    table.concat((function() local s = {} for i, v in ipairs(alone) do s[i] = string.format("%.2f", v) end return s end)(), " ")))
  print(string.format("2 ranks: %8.0f samples/s (median of %d: %s s)", samples / t2, #together,
    table.concat((function() local s = {} for i, v in ipairs(together) do s[i] = string.format("%.2f", v) end return s end)(), " ")))
  print(string.format("speed-up: %.2fx", t1 / t2))
end
