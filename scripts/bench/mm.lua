-- blua's matrix product against a direct cblas_sgemm call on the same shapes, side by side
-- in one run: GFLOP/s of each and their ratio. Usage: blua scripts/bench/mm.lua [threads]
local blua = require "blua"

local threads = tonumber(arg and arg[1]) or blua.getNumThreads()
blua.setNumThreads(threads)

local shapes = {
  {512, 784, 64},      -- one mini-batch through the first layer
  {60000, 784, 64},    -- a whole MNIST epoch through the first layer
  {60000, 64, 64},     -- a hidden layer
}

local timing = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "timing.lua")

print(string.format("threads: %d   OpenBLAS: %s", threads, select(2, blua.blasInfo())))
print(string.format("%-18s %12s %12s %8s", "shape (m k n)", "blua GFLOP/s", "sgemm GFLOP/s", "ratio"))
local worst = math.huge
for _, s in ipairs(shapes) do
  local m, k, n = s[1], s[2], s[3]
  blua.manualSeed(1)
  local a, b, c = blua.randn(m, k), blua.randn(k, n), blua.zeros(m, n)
  local flops = 2 * m * k * n
  local reps = math.max(3, math.floor(2e10 / flops))
  -- Interleave the two so a noisy neighbour hurts both alike.
  local tb, ts = math.huge, math.huge
  for _ = 1, 3 do
    tb = math.min(tb, timing.best(reps, function() a:mm(b) end))
    ts = math.min(ts, timing.best(reps, function() blua._sgemm(c, a, b) end))
  end
  local gb, gs = flops / tb / 1e9, flops / ts / 1e9
  worst = math.min(worst, gb / gs)
  print(string.format("%-18s %12.1f %12.1f %7.0f%%", string.format("%dx%dx%d", m, k, n), gb, gs, 100 * gb / gs))
end
print(string.format("lowest ratio: %.0f%%", 100 * worst))
