-- The lifted X-step kernel (runtime/lifted.c: next-layer residual, the GEMM r W^T, the prox)
-- over a 60000-sample epoch, for all hidden layers of the paper's 784-64-64-64-10 network in
-- batches of --batch rows, with 1 and with 2 threads, side by side in one run, and the speed-up. Usage: blua scripts/bench/xstep.lua [--batch N] [--reps N]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"batch", "integer", 60000, "rows per X-step call"},
  {"reps", "integer", 5, "repetitions (the median is reported)"},
  {"penalty", {"bregman", "lifted"}, "bregman", "formulation"},
}, {usage = "blua scripts/bench/xstep.lua [options]"})

local N = 60000
blua.manualSeed(1)
local net = blua.nn.mlp{784, 64, 64, 64, 10}
local x = blua.rand(N, 784)
local y = blua.rand(N, 1):mul(10):floor():add(1)
local Zf, Xf = net:forwardAll(x)
local Y = blua.data.onehot(y, 10)

-- Per batch: the forward pass (X and Z) made once, outside the timing. The kernel overwrites
-- the next layer's pre-activation with its residual, so a saved copy restores Z between epochs.
local relu, softmax = blua.activation.get("relu"), blua.activation.get("softmax")
local batches = {}
for first = 1, N, o.batch do
  local count = math.min(o.batch, N - first + 1)
  local B = {X = {[0] = x:narrow(1, first, count), [4] = Y:narrow(1, first, count)}, Z = {}, saved = {}, G = {}}
  for l = 1, 4 do
    B.Z[l] = Zf[l]:narrow(1, first, count):clone()
    B.saved[l] = B.Z[l]:clone()
    B.G[l] = blua.zeros(count, 64)
  end
  for l = 1, 3 do B.X[l] = Xf[l]:narrow(1, first, count):clone() end
  batches[#batches + 1] = B
end

local penalty = o.penalty == "bregman" and "bregman" or "quadratic"
local function epoch()
  for _, B in ipairs(batches) do
    for l = 3, 1, -1 do
      local next_act = l == 3 and softmax or relu
      blua._xstep(penalty, relu, next_act, net.W[l + 1], net.b[l + 1], l == 3 and 1 or nil, B.Z[l], B.Z[l + 1],
        B.X[l], B.X[l + 1], 0.1, 0.1, B.G[l])
    end
  end
end

local function restore()
  for _, B in ipairs(batches) do
    for l = 1, 4 do B.Z[l]:copy(B.saved[l]) end
  end
end

local timing = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "timing.lua")
local median = timing.median

local times = {[1] = {}, [2] = {}}
epoch() -- warm up caches and thread pools
for _ = 1, o.reps do
  for _, threads in ipairs{1, 2} do -- interleaved, so noise from neighbours hits both
    blua.setNumThreads(threads)
    restore()
    local t0 = blua.clock()
    epoch()
    times[threads][#times[threads] + 1] = blua.clock() - t0
  end
end
local t1, t2 = median(times[1]), median(times[2])
print(string.format("X-step epoch (%s, %d samples, batch %d, 3 hidden layers of 64)", o.penalty, N, o.batch))
print(string.format("  1 thread : %.3f s", t1))
print(string.format("  2 threads: %.3f s", t2))
print(string.format("  speed-up : %.2fx", t1 / t2))
