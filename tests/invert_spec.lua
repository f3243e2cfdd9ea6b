-- blua.invert: lifted Bregman and gradient inversion recover a known input of a small random
-- network (invertible: leaky ReLU, wider layers), through a Gaussian measurement operator and
-- from a hidden layer; the L1 term gives exact zeros and an objective no worse than the truth's.
local blua = require "blua"

local function small_net(sizes)
  blua.manualSeed(3)
  sizes.activation = {name = "leaky_relu", params = {slope = 0.3}}
  sizes.output = "identity"
  sizes.init = "glorot"
  return blua.nn.mlp(sizes)
end

local methods = {
  bregman = {method = "bregman", iterations = 1000, mu = 1.9},
  gradient = {method = "gradient", iterations = 1000, lr = 0.03},
}

local function with(base, extra)
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("blua.invert", function()
  for name, opts in pairs(methods) do
    it(name .. " recovers the input of a small network", function()
      local net = small_net{5, 20, 20, 20}
      local x = blua.rand(20, 5)
      local u, info = blua.invert(net, net:forward(x), opts)
      assert(blua.metrics.mse(u, x) < 1e-5, "input error " .. blua.metrics.mse(u, x))
      assert(info.residual < 1e-5)
    end)
    it(name .. " recovers it through a Gaussian measurement operator", function()
      local net = small_net{4, 20, 20}
      local x = blua.rand(10, 4)
      local A = blua.randn(12, 20):mul(1 / math.sqrt(12))
      local y = net:forward(x):mm(A:t())
      local u = blua.invert(net, y, with(opts, {A = A, iterations = 2000}))
      assert(blua.metrics.mse(u, x) < 1e-4, "input error " .. blua.metrics.mse(u, x))
    end)
    it(name .. " recovers a hidden layer's input (from = 2)", function()
      local net = small_net{6, 12, 16}
      local x = blua.rand(10, 6)
      local _, X = net:forwardAll(x)
      local u, info = blua.invert(net, net:forward(x), with(opts, {from = 2}))
      assert(blua.metrics.mse(u, X[1]) < 1e-4, "code error " .. blua.metrics.mse(u, X[1]))
      -- info.output is layer 2 applied to u, i.e. the network's output from the found code
      local Z2 = u:mm(net.W[2]):addRow(net.b[2])
      assert((info.output - net:activation(2):forward(Z2)):abs():max() < 1e-5)
      assert(blua.metrics.mse(info.output, net:forward(x)) < 1e-4)
    end)
    it(name .. " with an L1 term finds exact zeros and an objective no worse than the truth's", function()
      local net = small_net{5, 20, 20, 20}
      local x = blua.rand(20, 5):add(-0.5):cmax(0) -- about half the entries are zero
      local alpha = 0.01
      local u, info = blua.invert(net, net:forward(x), with(opts, {l1 = alpha, beta = 0.1}))
      assert(info.objective <= alpha * x:sum() / 20 + 1e-6,
        string.format("objective %.6g, at the truth %.6g", info.objective, alpha * x:sum() / 20))
      local zeros = u:nElement() - u:clone():abs():gt(0):sum()
      assert(zeros > 0, "no exact zeros")
    end)
  end

  it("refuses bad options with messages", function()
    local net = small_net{5, 20, 20}
    local y = blua.zeros(3, 20)
    assert.has_error(function() blua.invert(net, y, {method = "newton"}) end,
      "blua.invert: unknown method 'newton' (accepted: bregman, gradient)")
    assert.has_error(function() blua.invert(net, y, {from = 3}) end, "blua.invert: from must be a layer in 1..2, got 3")
    assert.has_error(function() blua.invert(net, blua.zeros(3, 7)) end,
      "size mismatch in 'blua.invert': y is 3x7, the measurements have 20 entries")
    assert.has_error(function() blua.invert(net, y, {A = blua.zeros(4, 5)}) end,
      "size mismatch in 'blua.invert': A must be m x 20 (the network's outputs)")
    assert.has_error(function() blua.invert(net, y, {steps = 3}) end)
  end)

  it("refuses non-finite steps, data and operators, a non-tensor A and softmax under 'gradient'", function()
    local net = small_net{5, 20, 20}
    local y = blua.zeros(3, 20)
    assert.has_error(function() blua.invert(net, y, {mu = 0 / 0}) end, "blua.invert: mu must be a positive finite number, got " .. tostring(0 / 0))
    assert.has_error(function() blua.invert(net, y, {beta = blua.ones(1)}) end, "blua.invert: beta must be a positive finite number, got a tensor")
    assert.has_error(function() blua.invert(net, y, {lr = -1}) end, "blua.invert: lr must be a positive finite number, got -1")
    assert.has_error(function() blua.invert(net, y, {A = {}}) end, "size mismatch in 'blua.invert': A must be m x 20 (the network's outputs)")
    assert.has_error(function() blua.invert(net, y:clone():fill(1 / 0)) end, "blua.invert: y, A and x0 must hold finite numbers (NaN or Inf found)")
    assert.has_error(function() blua.invert(net, y, {x0 = blua.zeros(3)}) end, "size mismatch in 'blua.invert': x0 must be 3x5")
    local cls = blua.nn.mlp{5, 6, 3}
    assert.has_error(function() blua.invert(cls, blua.zeros(2, 3), {method = "gradient"}) end,
      "blua.invert: method 'gradient' needs elementwise activations, layer 2 is softmax (use method 'bregman')")
  end)

  it("refuses a convolution block with a message naming it", function()
    local nn = blua.nn
    local cnn = nn.Sequential():add(nn.Reshape(1, 4, 4)):add(nn.Conv2d(1, 2, 3, {padding = 1})):add("relu")
      :add(nn.Flatten()):add(nn.Linear(32, 3)):add("identity")
    assert.has_error(function() blua.invert(cnn, blua.zeros(2, 3)) end,
      "blua.invert: layer 1 is a conv2d block; inversion handles dense layers only (from = 1 .. 2)")
    -- from a dense layer on, the same network can be inverted
    local u = blua.invert(cnn, blua.zeros(2, 3), {from = 2, iterations = 2})
    assert.are.equal(32, u:size(2))
  end)
end)
