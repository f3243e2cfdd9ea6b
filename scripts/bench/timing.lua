-- Timing helpers shared by the benchmark scripts beside this file:
--   local timing = dofile(<this file>)
--   timing.best(reps, fn)    fastest of reps runs of fn, in seconds
--   timing.median(list)      median of a list of numbers (sorts it)
--   timing.load([n])         the machine's load average (the first n of its three numbers, default 1)
--   timing.two_ranks(o)      for the distributed benchmarks: rank, training rows, network sizes
local blua = require "blua"

local timing = {}

function timing.best(reps, fn)
  local best = math.huge
  for _ = 1, reps do
    local t0 = blua.clock()
    fn()
    best = math.min(best, blua.clock() - t0)
  end
  return best
end

function timing.median(list)
  table.sort(list)
  return list[(#list + 1) // 2]
end

-- The machine may be shared: the load average says how busy it was around the numbers.
function timing.load(n)
  local f = io.open("/proc/loadavg")
  local line = f and f:read("l")
  if f then f:close() end
  if not line then return "?" end
  return line:match("^(" .. string.rep("%S+", n or 1, " ") .. ")") or line
end

-- The set-up of a benchmark run under mpirun -np 2 with one thread per rank: this rank, the
-- first o.batches * o.batch MNIST training rows, and the sizes of a ReLU/softmax network
-- 784-<o.hidden>-10 for blua.nn.mlp.
function timing.two_ranks(o)
  local dist = blua.dist
  if dist.size() ~= 2 then error("run under mpirun -np 2 (this process is " .. dist.describe() .. ")", 0) end
  blua.setNumThreads(1)
  local train = blua.data.subset(blua.data.mnist("train"), 1, o.batches * o.batch)
  local sizes = {784}
  for w in o.hidden:gmatch("%d+") do sizes[#sizes + 1] = tonumber(w) end
  sizes[#sizes + 1] = 10
  sizes.activation, sizes.output = "relu", "softmax"
  return dist.rank(), train, sizes
end

return timing
