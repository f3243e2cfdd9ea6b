-- The conv2d kernels (blua.op) against plain sgemm on their own GEMM shapes, side by side in
-- one run. For each convolution of the reference CNN and a batch of N samples:
--   forward  W (Co x K) * columns (K x N P)       adjoint  Wᵀ (K x Co) * R (Co x N P)
--   wgrad    R (Co x N P) * columnsᵀ (N P x K)
-- (K = Cin kh kw, P = output pixels). Both sides are credited the GEMM's 2 Co K N P flops, so
-- the ratio is the share of the sgemm rate the whole kernel (im2col/col2im, copies, BLAS)
-- reaches. Usage: blua scripts/bench/conv.lua [--batch 128] [--reps 5] [--threads 1,2]
local blua = require "blua"

local opts = {batch = 128, reps = 5, threads = "1,2"}
local i = 1
while arg and arg[i] do
  local key = arg[i]:match("^%-%-(%w+)$")
  if not key or opts[key] == nil or not arg[i + 1] then error("usage: conv.lua [--batch N] [--reps N] [--threads 1,2]") end
  opts[key] = key == "threads" and arg[i + 1] or tonumber(arg[i + 1])
  i = i + 2
end

local timing = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "timing.lua")

-- The convolutions of the reference CNN (Fashion-MNIST): 1x28x28 -> 8, then 8x14x14 -> 16.
local layers = {
  {name = "conv1 1->8 5x5 28x28", cin = 1, h = 28, w = 28, cout = 8, k = 5, padding = 2},
  {name = "conv2 8->16 5x5 14x14", cin = 8, h = 14, w = 14, cout = 16, k = 5, padding = 2},
}

local N = opts.batch
print(string.format("batch %d, best of %d, OpenBLAS %s; the machine is shared, so single runs are noisy",
  N, opts.reps, select(2, blua.blasInfo())))
print(string.format("%-22s %-8s %3s %12s %12s %7s", "layer", "kernel", "thr", "op GFLOP/s", "sgemm GFLOP/s", "ratio"))
local worst = math.huge
for threads in opts.threads:gmatch("%d+") do
  blua.setNumThreads(tonumber(threads))
  for _, l in ipairs(layers) do
    blua.manualSeed(1)
    local op = blua.op.conv2d(l)
    local co, oh, ow = op:outShape()
    local P, K = oh * ow, l.cin * l.k * l.k
    local W, b = blua.randn(co, K), blua.randn(1, co)
    local x, r = blua.randn(N, op:inSize()), blua.randn(N, op:outSize())
    local y, g = blua.zeros(N, op:outSize()), blua.zeros(N, op:inSize())
    local dW, db = blua.zeros(co, K), blua.zeros(1, co)
    local params, grads = {W, b}, {dW, db}
    -- the GEMM operands of the whole batch
    local cols, Rm = blua.randn(K, N * P), blua.randn(co, N * P)
    local out_f, out_a, out_w = blua.zeros(co, N * P), blua.zeros(K, N * P), blua.zeros(co, K)
    local colsT = cols:t()
    local Wt = W:t()
    local kernels = {
      {"forward", function() op:forward(x, params, y) end, function() blua._sgemm(out_f, W, cols) end},
      {"adjoint", function() op:adjoint(r, params, g) end, function() out_a:addmm(0, 1, Wt, Rm) end},
      {"wgrad", function() op:wgrad(x, r, params, grads) end, function() out_w:addmm(0, 1, Rm, colsT) end},
    }
    local flops = 2 * co * K * N * P
    for _, k in ipairs(kernels) do
      k[2]() -- warm the workspace
      local to, ts = math.huge, math.huge
      for _ = 1, 3 do -- interleaved, so a noisy neighbour hurts both alike
        to = math.min(to, timing.best(opts.reps, k[2]))
        ts = math.min(ts, timing.best(opts.reps, k[3]))
      end
      local go, gs = flops / to / 1e9, flops / ts / 1e9
      worst = math.min(worst, go / gs)
      print(string.format("%-22s %-8s %3s %12.1f %12.1f %6.0f%%", l.name, k[1], threads, go, gs, 100 * go / gs))
    end
  end
end
print(string.format("lowest ratio: %.0f%%", 100 * worst))
