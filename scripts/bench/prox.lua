-- The prox kernels of the X-step on a 60000x64 tensor (one hidden layer of all of MNIST) with
-- one thread and with two, in one run: ReLU (closed form, memory-bound) and sigmoid
-- (safeguarded Newton per entry, compute-bound), plus the fused Bregman X-step for each.
-- Prints the best of several repetitions per case and the speed-up 1 -> 2 threads.
-- Usage: blua scripts/bench/prox.lua [reps]
local blua = require "blua"

local reps = tonumber(arg and arg[1]) or 7
local rows, cols = 60000, 64
local mu = 0.5

blua.manualSeed(1)
local v = blua.randn(rows, cols):mul(2)
local z, g = blua.randn(rows, cols), blua.randn(rows, cols):mul(0.1)
local out, x = blua.zeros(rows, cols), blua.zeros(rows, cols)

local timing = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "timing.lua")
local function best_of(fn) return timing.best(reps, fn) end

local cases = {}
for _, name in ipairs{"relu", "sigmoid"} do
  local a = blua.activation.get(name)
  cases[#cases + 1] = {name .. " prox", function() a:prox(v, mu, out) end}
  cases[#cases + 1] = {name .. " xstep_bregman", function() x:copy(v); a:xstep_bregman(x, z, g, mu) end}
end

local saved = blua.getNumThreads()
print(string.format("%dx%d floats, mu = %g, best of %d; OpenBLAS %s", rows, cols, mu, reps, select(2, blua.blasInfo())))
print(string.format("%-22s %12s %12s %8s", "kernel", "1 thread ms", "2 threads ms", "speed-up"))
local all_faster = true
for _, c in ipairs(cases) do
  -- Interleave the thread counts so a noisy neighbour hurts both alike.
  local t1, t2 = math.huge, math.huge
  for _ = 1, 2 do
    blua.setNumThreads(1)
    t1 = math.min(t1, best_of(c[2]))
    blua.setNumThreads(2)
    t2 = math.min(t2, best_of(c[2]))
  end
  all_faster = all_faster and t2 < t1
  print(string.format("%-22s %12.2f %12.2f %7.2fx", c[1], 1e3 * t1, 1e3 * t2, t1 / t2))
end
blua.setNumThreads(saved)
print(all_faster and "2 threads faster than 1 for every kernel" or "2 threads NOT faster for some kernel")
