-- The scaling model of docs/design.md ("Scaling model") as numbers: predicted speed-up over
-- one process for P = 1..64 ranks, for back-prop and lifted Bregman data-parallel and for
-- lifted layer-parallel, per step.
--   blua scripts/bench/scaling.lua [--sizes 784,1024,1024,10] [--batch 128] [--gbits 25]
--                                  [--latency-us 5] [--sweeps 2]
-- The flop rate is measured here (one thread, a 128 x 1024 x 1024 sgemm), the per-step
-- constants (optimiser, sharded over data-parallel ranks, and power iterations, not) too; the
-- network is stated, not measured.
local blua = require "blua"
local layers = require "blua.train.layers"
local timing = dofile((arg[0]:match("^(.*)/") or ".") .. "/timing.lua")

local o = blua.cli.parse(arg, {
  {"sizes", "string", "784,1024,1024,10", "layer widths"},
  {"batch", "integer", 128, "global mini-batch"},
  {"gbits", "number", 25, "link bandwidth, Gbit/s"},
  {"latency-us", "number", 5, "message latency, microseconds"},
  {"sweeps", "integer", 2, "odd/even sweeps of the layer-parallel schedule"},
}, {usage = "blua scripts/bench/scaling.lua [options]"})

blua.setNumThreads(1)
local sizes = {}
for w in o.sizes:gmatch("%d+") do sizes[#sizes + 1] = tonumber(w) end
local L = #sizes - 1
local B = o.batch

-- measured: seconds per flop of a GEMM of this machine's shape, and the constant part of a step
local a, w, c = blua.rand(128, 1024), blua.rand(1024, 1024), blua.zeros(128, 1024)
local f = timing.best(5, function() c:addmm(0, 1, a, w) end) / (2 * 128 * 1024 * 1024)
-- the constant part of a step, per parameter: an Adam step (sharded over the ranks of a
-- data-parallel run) and 8 warm power steps for an X-step size (on every rank, for the
-- weights of layers 2..L)
local p1, g1, m1, v1 = blua.rand(1024, 1024), blua.rand(1024, 1024):mul(1e-3), blua.zeros(1024, 1024), blua.zeros(1024, 1024)
local warm = blua.zeros(1, 1024)
blua.spectralNorm(p1, 20, warm)
local per_adam = timing.best(5, function() blua._adam(p1, g1, m1, v1, 1e-3, 0.9, 0.999, 1e-8, 0, 1) end) / (1024 * 1024)
local per_power = timing.best(5, function() blua.spectralNorm(p1, 8, warm) end) / (1024 * 1024)
local nparams, npower = 0, 0
for l = 1, L do
  nparams = nparams + (sizes[l] + 1) * sizes[l + 1]
  if l >= 2 then npower = npower + sizes[l] * sizes[l + 1] end
end
local c_opt, c_pow = per_adam * nparams, per_power * npower
local c0 = c_opt + c_pow
local bw = o.gbits * 1e9 / 8
local alpha = o.latency_us * 1e-6
local function affine(rows) -- flops of one affine map of every layer
  local s = 0
  for l = 1, L do s = s + 2 * rows * sizes[l] * sizes[l + 1] end
  return s
end
local function couplings(rows) -- flops of one sweep: coupling product and recomputed map, hidden layers
  local s = 0
  for l = 1, L - 1 do s = s + 4 * rows * sizes[l + 1] * sizes[l + 2] end
  return s
end

local t_bp1 = 3 * affine(B) * f + c_opt
local t_lift1 = (2 * affine(B) + couplings(B)) * f + c0            -- backward order: 1 sweep

-- the sharded step's reduce-scatter and all-gather: the bytes and messages of a ring all-reduce
local function allreduce(P)
  if P == 1 then return 0 end
  return 2 * (P - 1) * alpha + 2 * (P - 1) / P * 4 * nparams / bw
end
local function widest() local m2 = 0 for l = 2, L do m2 = math.max(m2, sizes[l]) end return m2 end

-- The owner of each layer in a layer-parallel run on P ranks: contiguous blocks balanced by
-- parameter count, by train/layers.lua's rule (layers.balance).
local function owners(P)
  local cost = {}
  for l = 1, L do cost[l] = (sizes[l] + 1) * sizes[l + 1] + 1 end
  local own = {}
  for r, block in pairs(layers.balance(cost, P)) do
    for l = block.first, block.last do own[l] = r end
  end
  return own
end

-- The critical path of a layer-parallel step on P ranks (P = 1: the odd/even schedule on one
-- process): the forward pass in rank order, then every half-sweep as long as its busiest rank,
-- then each rank's W-gradients, optimiser and power iterations for its own layers at once.
-- Moving hidden layer l costs the owner of layer l+1 the coupling product and the refreshed
-- z_{l+1} (4B n_l n_{l+1} flops), and the owner of l a refreshed z_l once x_{l-1} has moved.
local function layer_step(P)
  local own = owners(P)
  local t = affine(B) * f
  for _ = 1, o.sweeps do
    for parity = 1, 2 do
      local work, most = {}, 0
      for l = parity, L - 1, 2 do
        local up = own[l + 1]
        work[up] = (work[up] or 0) + 4 * B * sizes[l + 1] * sizes[l + 2]
        if l > 1 then work[own[l]] = (work[own[l]] or 0) + 2 * B * sizes[l] * sizes[l + 1] end
      end
      for _, w in pairs(work) do most = math.max(most, w) end
      t = t + most * f
    end
  end
  local per, most = {}, 0
  for l = 1, L do
    local r = own[l]
    per[r] = (per[r] or 0) + 2 * B * sizes[l] * sizes[l + 1] * f + per_adam * (sizes[l] + 1) * sizes[l + 1]
      + (l >= 2 and per_power * sizes[l] * sizes[l + 1] or 0)
  end
  for _, w in pairs(per) do most = math.max(most, w) end
  return t + most
end

print(string.format("network %s, batch %d, %.0f GFLOP/s per rank (measured), per-step constant %.2f ms (measured: Adam %.2f, divided over data-parallel ranks, and power iterations %.2f, not divided),",
  o.sizes, B, 1e-9 / f, 1e3 * c0, 1e3 * c_opt, 1e3 * c_pow))
print(string.format("links %g Gbit/s, latency %g us; %d parameters (%.1f MB); layer-parallel with %d sweeps",
  o.gbits, o.latency_us, nparams, 4 * nparams / 1e6, o.sweeps))
print("")
print("| P | back-prop data-parallel | lifted data-parallel | lifted layer-parallel | reduce-scatter + all-gather ms | layer messages ms |")
print("|---|---|---|---|---|---|")
for _, P in ipairs{1, 2, 4, 8, 16, 32, 64} do
  local dp_bp = 3 * affine(B) * f / P + c_opt / P + allreduce(P)
  local dp_lift = (2 * affine(B) + couplings(B)) * f / P + c_pow + c_opt / P + allreduce(P)
  local lp = "–"
  local msg = 0
  if P <= L then
    msg = P > 1 and (1 + 4 * o.sweeps) * (alpha + 4 * B * widest() / bw) or 0
    lp = string.format("%.2fx", layer_step(1) / (layer_step(P) + msg))
  end
  print(string.format("| %d | %.2fx | %.2fx | %s | %.2f | %s |", P, t_bp1 / dp_bp, t_lift1 / dp_lift, lp,
    1e3 * allreduce(P), P <= L and string.format("%.3f", 1e3 * msg) or "–"))
end
