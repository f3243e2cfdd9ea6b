-- Distributed throughput: one rank against two, side by side in one job.
--   mpirun -np 2 blua scripts/bench/dist.lua [--mode data|layer] [--method bregman]
--                 [--hidden 1024,1024] [--batches 60] [--batch 128] [--rounds 3]
-- Every round times, in turn, rank 0 training alone (rank 1 sleeps) and both ranks training
-- the same batches data-parallel (or layer-parallel: then the one-rank side is the same
-- odd/even schedule without distribution, on the fused kernels); one thread per rank. Prints
-- samples per second of each and their ratio (the median over rounds), so machine noise hits
-- both sides alike, and the same ratio in CPU time.
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
local rank, train, sizes = timing.two_ranks(o)

local function seconds(distributed)
  blua.manualSeed(1)
  local net = blua.nn.mlp(sizes)
  local opts = {epochs = 1, batch = o.batch, verbose = false, eval_train = false}
  if o.mode == "layer" then opts.order = "oddeven" end
  if distributed then opts.distributed = o.mode end
  local c0 = os.clock()
  local h = blua.train[o.method](net, train, opts)
  return h[1].seconds, os.clock() - c0
end

local alone, together, cpu_alone, cpu_together = {}, {}, {}, {}
local tag = blua.tensor{math.random(1, 1 << 23)}
dist.broadcast({tag}, 0)
local marker = string.format("%s/blua-dist-bench-%d", os.getenv("TMPDIR") or "/tmp", math.floor(tag:get(1)))
if rank == 0 then print("load average at the start: " .. timing.load(3)) end
for r = 1, o.rounds do
  local order = r % 2 == 1 and {false, true} or {true, false}
  for _, both in ipairs(order) do
    dist.barrier()
    if both then
      local wall, cpu = seconds(true)
      local most = blua.tensor{cpu}
      dist.allreduce({most}, "max")
      together[#together + 1], cpu_together[#cpu_together + 1] = wall, most:get(1)
    elseif rank == 0 then
      alone[#alone + 1], cpu_alone[#cpu_alone + 1] = seconds(false)
      io.open(marker, "w"):close()
    else
      -- MPI's waits spin: on a busy machine a spinning rank 1 would take CPU time from rank 0's
      -- run, so rank 1 sleeps until rank 0 leaves a marker file.
      local f = io.open(marker)
      while not f do
        os.execute("sleep 0.02")
        f = io.open(marker)
      end
      f:close()
    end
    dist.barrier()
    if rank == 0 then os.remove(marker) end
  end
end

-- The parts of a data-parallel step, each the fastest of several: one rank's step on a whole
-- and on a half batch (both with the optimiser over every parameter), the optimiser alone, and
-- the sharded step's exchange: the reduce-scatter of the gradients and the all-gather of the
-- parameters (docs/design.md, "Scaling model").
blua.manualSeed(1)
local probe = blua.nn.mlp(sizes)
local grads, state = {}, {}
for i, p in ipairs(probe:parameters()) do grads[i] = p:clone():mul(1e-3) end
dist.barrier()
local t_exchange = timing.best(10, function() dist.reduce_scatter(grads) dist.allgather(grads) end)
-- (a rank runs its share of a batch as one part: the half batch with batch_shards = 1; the
-- whole batch as one process runs it by default, in as many shares as 2 ranks hold)
local function step_time(rows, shards)
  local part = blua.data.subset(train, 1, rows * 4)
  return timing.best(3, function()
    blua.train[o.method](probe, part, {epochs = 1, batch = rows, verbose = false, eval_train = false, batch_shards = shards})
  end) / 4
end
local t_full, t_half, t_optim
if rank == 0 and o.mode == "data" then
  t_full, t_half = step_time(o.batch), step_time(o.batch // 2, 1)
  t_optim = timing.best(10, function() blua.optim.adam(function() return 0, grads end, probe:parameters(), {}, state) end)
end
dist.barrier()


if rank == 0 then
  local n = 0
  for _, g in ipairs(grads) do n = n + g:nElement() end
  if t_full then
    print(string.format("parts: step on %d rows %.1f ms, on %d rows %.1f ms, Adam over %d parameters %.1f ms, reduce-scatter + all-gather of %.1f MB %.1f ms",
      o.batch, 1e3 * t_full, o.batch // 2, 1e3 * t_half, n, 1e3 * t_optim, 4 * n / 1e6, 1e3 * t_exchange))
    -- two ranks: a half batch each, half the optimiser, and the exchange
    print(string.format("predicted from the parts: %.2fx", t_full / (t_half - t_optim / 2 + t_exchange)))
  end
  local samples = o.batches * o.batch
  local t1, t2 = timing.median(alone), timing.median(together)
  print(string.format("%s-parallel %s %s, batch %d, %d batches, 1 thread per rank (%s)", o.mode, o.method,
    table.concat(sizes, "-"), o.batch, o.batches, dist.describe()))
  print(string.format("1 rank : %8.0f samples/s (median of %d: %s s)", samples / t1, #alone,
    table.concat((function() local s = {} for i, v in ipairs(alone) do s[i] = string.format("%.2f", v) end return s end)(), " ")))
  print(string.format("2 ranks: %8.0f samples/s (median of %d: %s s)", samples / t2, #together,
    table.concat((function() local s = {} for i, v in ipairs(together) do s[i] = string.format("%.2f", v) end return s end)(), " ")))
  print(string.format("speed-up: %.2fx (load average %s)", t1 / t2, timing.load(3)))
  -- CPU time (the busier rank's, its waits included): what the speed-up is without the time
  -- the scheduler gives to other processes
  local c1, c2 = timing.median(cpu_alone), timing.median(cpu_together)
  print(string.format("CPU seconds: 1 rank %.2f, 2 ranks %.2f (the busier rank, medians): %.2fx", c1, c2, c1 / c2))
end
