-- A user-defined proximal activation in a few lines: the "soft clip" σ(z) = z / (1 + |z|)
-- (softsign). It is non-decreasing and 1-Lipschitz, hence the proximal map of a convex Ψ;
-- here Ψ(u) = −|u| − log(1 − |u|) − u²/2 on |u| < 1 and Φ*(z) = |z| − log(1 + |z|).
-- No prox is given: blua derives prox_{μΦ} from forward alone.
-- Run: blua examples/custom_activation.lua
local blua = require "blua"

local soft_clip = blua.activation.define{
  name = "soft_clip",
  forward = function(z) return z:cdiv(z:clone():abs():add(1)) end, -- z is a private copy
  psi = function(u)
    local a = u:clone():abs()
    if a:max() >= 1 then return math.huge end
    return -a:sum() - a:clone():mul(-1):log1p():sum() - 0.5 * u:dot(u)
  end,
  conj = function(z)
    local a = z:clone():abs()
    return a:sum() - a:log1p():sum()
  end,
}
print("defined: " .. tostring(soft_clip) .. "; all activations: " .. table.concat(blua.activation.list(), ", "))

-- Check the prox identity: u = prox_{μΦ}(v) satisfies u = σ((v − u)/μ).
blua.manualSeed(1)
local v, mu = blua.randn(1000, 16):mul(3), 0.5
local u = soft_clip:prox(v, mu)
local gap = (soft_clip:forward((v - u) / mu) - u):abs():max()
print(string.format("prox identity: max |sigma((v - u)/mu) - u| = %.2e", gap))
assert(gap < 1e-5, "derived prox is off")

-- The Bregman penalty on random data: zero at y = σ(z), at least ½‖y − σ(z)‖² elsewhere.
local z = blua.randn(1000, 16):mul(2)
local y = blua.rand(1000, 16):mul(1.8):add(-0.9) -- inside the range (-1, 1)
local s = soft_clip:forward(z)
local b, half = soft_clip:bregman(y, z), 0.5 * (y - s):norm() ^ 2
local b0 = soft_clip:bregman(s, z) -- a sum of 16 000 float terms: 0 up to their rounding
print(string.format("B(sigma(z), z) = %.1e (0 up to rounding)   B(y, z) = %.4f >= 1/2 |y - sigma(z)|^2 = %.4f", b0, b,
  half))
assert(math.abs(b0) < 1e-3 and b >= half)

-- A drop-in for a built-in name: a small network with soft_clip hidden layers.
local net = blua.nn.mlp{16, 8, 4, activation = "soft_clip", output = "softmax"}
print("network output:", net:forward(z:narrow(1, 1, 2)))

-- Non-proximal maps are refused with the reason.
local ok, err = pcall(blua.activation.define, {
  name = "swish", forward = function(x) return x:cmul(x:clone():sigmoid()) end})
print("swish: " .. (ok and "accepted?!" or err))
