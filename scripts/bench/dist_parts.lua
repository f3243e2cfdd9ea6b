-- Where the time of a data-parallel step goes: one rank alone against two ranks, per step, in
-- wall and CPU time, split into the parts that do not shrink with the rank count (the power
-- iterations for the X-step sizes, the optimiser, the exchange) and the rest (the batch's
-- products and X-steps, which split over the ranks).
--   mpirun -np 2 blua scripts/bench/dist_parts.lua [--method bregman] [--hidden 1024,1024]
--                 [--batch 128] [--batches 40] [--rounds 2]
-- Each two-rank step waits at a barrier before its exchange, so the exchange's own cost and the
-- time spent waiting for the other rank are apart ("wait"). CPU time is the process's (one
-- thread per rank): on a busy machine it is the measure that means something, wall time is not.
local blua = require "blua"
local lifted = require "blua.train.lifted"
local timing = dofile((arg[0]:match("^(.*)/") or ".") .. "/timing.lua")

local o = blua.cli.parse(arg, {
  {"method", {"bregman", "lifted", "backprop"}, "bregman", "training method"},
  {"hidden", "string", "1024,1024", "hidden layer widths"},
  {"batch", "integer", 128, "global mini-batch size"},
  {"batches", "integer", 40, "mini-batches per timing"},
  {"rounds", "integer", 2, "rounds (one rank, then two)"},
}, {usage = "mpirun -np 2 blua scripts/bench/dist_parts.lua [options]"})

local dist = blua.dist
local rank, train, sizes = timing.two_ranks(o)

-- wall and CPU seconds and calls of each wrapped function, by name
local acc = {}
local function wrap(tbl, name, key)
  local f = tbl[name]
  if not f then return end
  tbl[name] = function(...)
    local w, c = blua.clock(), os.clock()
    local r = table.pack(f(...))
    local a = acc[key] or {0, 0, 0}
    acc[key] = a
    a[1], a[2], a[3] = a[1] + blua.clock() - w, a[2] + os.clock() - c, a[3] + 1
    return table.unpack(r, 1, r.n)
  end
end
wrap(lifted, "xstep_size", "power iterations")
wrap(blua.optim, "adam", "optimiser")
wrap(blua.optim, "sgd", "optimiser")
wrap(dist, "reduce_scatter", "reduce-scatter")
wrap(dist, "allgather", "all-gather")
wrap(dist, "barrier", "wait")
do -- the barrier before the exchange
  local rs = dist.reduce_scatter
  dist.reduce_scatter = function(...) dist.barrier() return rs(...) end
end
local parts = {"power iterations", "optimiser", "wait", "reduce-scatter", "all-gather"}


local function run(distributed)
  blua.manualSeed(1)
  local net = blua.nn.mlp(sizes)
  local opts = {epochs = 1, batch = o.batch, verbose = false, eval_train = false}
  if distributed then opts.distributed = "data" end
  acc = {}
  local w, c = blua.clock(), os.clock()
  blua.train[o.method](net, train, opts)
  local n = o.batches
  local total = {blua.clock() - w, os.clock() - c}
  local lines = {string.format("%s, rank %d (load average %s): %.2f ms wall, %.2f ms CPU per step",
    distributed and "2 ranks" or "1 rank", rank, timing.load(3), 1e3 * total[1] / n, 1e3 * total[2] / n)}
  local rest = {total[1], total[2]}
  for _, k in ipairs(parts) do
    local a = acc[k]
    if a then
      rest[1], rest[2] = rest[1] - a[1], rest[2] - a[2]
      lines[#lines + 1] = string.format("  %-17s %7.2f wall %7.2f CPU", k, 1e3 * a[1] / n, 1e3 * a[2] / n)
    end
  end
  lines[#lines + 1] = string.format("  %-17s %7.2f wall %7.2f CPU", "the batch's work", 1e3 * rest[1] / n, 1e3 * rest[2] / n)
  return table.concat(lines, "\n")
end

if rank == 0 then
  print(string.format("data-parallel %s %s, batch %d, %d batches, 1 thread per rank, ms per step",
    o.method, table.concat(sizes, "-"), o.batch, o.batches))
end
for _ = 1, o.rounds do
  dist.barrier()
  if rank == 0 then print(run(false)) end
  dist.barrier()
  local s = run(true)
  for q = 0, 1 do
    dist.barrier()
    if q == rank then print(s) io.stdout:flush() end
  end
end
