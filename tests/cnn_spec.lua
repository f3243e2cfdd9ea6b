-- Convolutional networks: layers as lifted blocks of linear operators. Shapes checked when a
-- layer is added, the block structure, the operators' adjoint identity, parameter gradients
-- and norms, all three trainers' gradients against finite differences, save/load, and
-- training on a small image problem. Block operators run on blua.op (C); the plain-Lua
-- reference in tests/op_reference.lua checks them.
package.path = "./?.lua;" .. package.path
local blua = require "blua"
local ref = require "tests.op_reference"
local support = require "tests.support"
local block = require "blua.nn.block"

local nn = blua.nn

-- The issue's example, scaled down: 1x8x8 images, 3 classes.
local function small_cnn(seed)
  blua.manualSeed(seed or 1)
  return nn.Sequential()
    :add(nn.Reshape(1, 8, 8))
    :add(nn.Conv2d(1, 3, 3, {padding = 1})):add("relu")
    :add(nn.AvgPool2d(2))
    :add(nn.Conv2d(3, 4, 3, {padding = 1, stride = 1})):add("relu")
    :add(nn.AvgPool2d(2))
    :add(nn.Flatten())
    :add(nn.Linear(4 * 2 * 2, 3)):add("softmax")
end

-- Images whose class is the quadrant holding the brightest blob (0: none of the top two).
local function blobs(n, seed)
  blua.manualSeed(seed)
  local x = blua.rand(n, 64):mul(0.2)
  local y = blua.zeros(n, 1)
  for i = 1, n do
    local c = (i % 3) + 1
    local r0, c0 = c == 1 and 1 or 5, c == 2 and 1 or 5
    for a = 0, 2 do for b = 0, 2 do x:set(i, (r0 + a - 1) * 8 + c0 + b, 0.9) end end
    y:set(i, 1, c)
  end
  return {x = x, y = y, n = n}
end

local function max_abs(t) return t:clone():abs():max() end

local backends = {{"C", nil}, {"reference", ref}}

describe("convolutional networks", function()
  before_each(function() block.use_backend(nil) end)
  after_each(function() block.use_backend(nil) end)

  it("check shapes when a layer is added, naming the layer and both shapes", function()
    local function img() return nn.Sequential():add(nn.Reshape(2, 6, 6)) end
    assert.has_error(function() img():add(nn.Conv2d(2, 4, 9)) end,
      "size mismatch in 'add': Conv2d(2, 4, 9, stride 1, padding 0) needs a height of at least 9, the input is 2x6x6 (padding 0)")
    assert.has_error(function() img():add(nn.Conv2d(3, 4, 3)) end,
      "size mismatch in 'add': Conv2d(3, 4, 3, stride 1, padding 0) takes 3 channels, the input is 2x6x6")
    assert.has_error(function() img():add(nn.AvgPool2d(7)) end,
      "size mismatch in 'add': AvgPool2d(7, stride 7) needs a height of at least 7, the input is 2x6x6 (padding 0)")
    assert.has_error(function() img():add(nn.Flatten()):add(nn.Linear(70, 10)) end,
      "size mismatch in 'add': Linear(70, 10) after a layer of 72 outputs")
    assert.has_error(function() img():add(nn.Conv2d(2, 4, 3)):add(nn.Linear(10, 2)) end,
      "size mismatch in 'add': Linear(10, 2) after a layer of 64 outputs (4x4x4)")
    assert.has_error(function() nn.Conv2d(1, 4, 3, {stride = 1.5}) end,
      "blua.nn.Conv2d: stride must be a positive integer, got 1.5")
    assert.has_error(function() nn.AvgPool2d(2, {stride = 0}) end,
      "blua.nn.AvgPool2d: stride must be a positive integer, got 0")
    assert.has_error(function() nn.Conv2d(1, 4, 3, {pad = 1}) end,
      "blua.nn.Conv2d: unknown option 'pad' (accepted: padding, stride)")
    assert.has_error(function() nn.Sequential():add(nn.Conv2d(1, 4, 3)) end,
      "blua.nn.Sequential: Conv2d(1, 4, 3, stride 1, padding 0) needs an image input; add blua.nn.Reshape(C, H, W) first")
    assert.has_error(function() nn.Sequential():add(nn.Reshape(1, 4, 4)):add(nn.Reshape(3, 5)) end,
      "size mismatch in 'add': Reshape(1, 3, 5) of a 1x4x4 input (16 features, not 15)")
    assert.has_error(function() nn.Linear(784) end, "blua.nn.Linear: size 2 must be a positive integer, got nil")
    -- more arguments than a constructor takes: an error, not a silent default
    assert.has_error(function() nn.Linear(784, 64, false) end,
      "blua.nn.Linear: 1 more argument than it takes (n_in, n_out; every layer has a bias)")
    assert.has_error(function() nn.Conv2d(1, 8, 5, {}, 2) end,
      "blua.nn.Conv2d: 1 more argument than it takes (c_in, c_out, k, {stride =, padding =})")
    assert.has_error(function() nn.AvgPool2d(2, nil, 2, 3) end,
      "blua.nn.AvgPool2d: 2 more arguments than it takes (k, {stride =})")
    assert.has_error(function() nn.Flatten(1) end, "blua.nn.Flatten: 1 more argument than it takes (no arguments)")
    assert.has_error(function() nn.Sequential(nn.Linear(2, 3)) end,
      "blua.nn.Sequential: no arguments expected (add layers with :add)")
    assert.has_error(function() nn.Reshape(1, nil, 28) end, "blua.nn.Reshape: size 2 must be a positive integer, got nil")
    assert.has_error(function() nn.Reshape(1, 28, 28, 1) end, "blua.nn.Reshape: 1 to 3 sizes expected (C, H, W)")
    -- padding makes a large kernel fit
    assert.equal(2 * 4 * 4, img():add(nn.Conv2d(2, 2, 7, {padding = 2})).sizes[2])
  end)

  it("groups linear layers between activations into blocks and prints layers with shapes", function()
    local net = small_cnn()
    assert.equal(3, net:nLayers())
    assert.same({64, 3 * 8 * 8, 4 * 4 * 4, 3}, net.sizes)
    assert.same({"conv2d"}, {net.ops[1][1].kind})
    assert.same({"avgpool2d", "conv2d"}, {net.ops[2][1].kind, net.ops[2][2].kind})
    assert.same({"avgpool2d", "linear"}, {net.ops[3][1].kind, net.ops[3][2].kind})
    -- parameters: conv1 W, b, conv2 W, b, linear W, b
    assert.equal(6, #net:parameters())
    assert.equal(3 * 9 + 3 + 4 * 27 + 4 + 16 * 3 + 3, net:nParameters())
    local s = tostring(net)
    assert.truthy(s:find("Conv2d(1, 3, 3, stride 1, padding 1)   1x8x8 -> 3x8x8, 30 parameters", 1, true))
    assert.truthy(s:find("AvgPool2d(2, stride 2)                 4x4x4 -> 4x2x2", 1, true))
    assert.truthy(s:find("Linear(16, 3)                          16 -> 3, 51 parameters", 1, true))
    assert.truthy(s:find("193 parameters", 1, true))
    -- Linear after Linear keeps its own block (the identity between them); a Flatten is free
    local m = nn.Sequential():add(nn.Reshape(2, 2, 2)):add(nn.Flatten()):add(nn.Linear(8, 4)):add(nn.Linear(4, 2))
    assert.equal(2, m:nLayers())
    assert.is_true(m:block(1).dense and m:block(2).dense)
  end)

  for _, be in ipairs(backends) do
    it("blocks satisfy the adjoint identity, parameter gradients and norms (" .. be[1] .. ")", function()
      block.use_backend(be[2])
      local net = small_cnn(3)
      for l = 1, 3 do
        local b = net:block(l)
        local x, r = blua.randn(4, b.n_in), blua.randn(4, b.n_out)
        -- ⟨A x, r⟩ = ⟨x, A* r⟩ on the linear part (biases set to zero by a zero-bias copy)
        local z0 = b:forward(blua.zeros(4, b.n_in), blua.zeros(4, b.n_out)) -- the bias term
        local ax = b:forward(x, blua.zeros(4, b.n_out)):add(-1, z0)
        local g = b:adjoint(r, blua.zeros(4, b.n_in), 1)
        local lhs, rhs = ax:dot(r), x:dot(g)
        assert.is_true(math.abs(lhs - rhs) <= 1e-4 * (math.abs(lhs) + 1), ("block %d: %g vs %g"):format(l, lhs, rhs))
        -- alpha scales the adjoint
        assert.is_true(max_abs(b:adjoint(r, blua.zeros(4, b.n_in), 0.5):add(-0.5, g)) < 1e-5)
        -- ∂⟨r, A(x; θ)⟩/∂θ by central differences on a few entries of every parameter
        local params = b:params()
        local grads = {}
        for i, p in ipairs(params) do grads[i] = blua.zeros(p:size()) end
        b:wgrad(x, r, 1, grads)
        local function f() return b:forward(x, blua.zeros(4, b.n_out)):dot(r) end
        blua.manualSeed(l)
        for i, p in ipairs(params) do
          local rows, cols = p:size()
          for _ = 1, 4 do
            local ri, ci = math.random(rows), math.random(cols)
            local v = p:get(ri, ci)
            p:set(ri, ci, v + 1e-2); local fp = f()
            p:set(ri, ci, v - 1e-2); local fm = f()
            p:set(ri, ci, v)
            local fd = (fp - fm) / 2e-2
            assert.is_true(math.abs(fd - grads[i]:get(ri, ci)) <= 2e-3 * (1 + math.abs(fd)),
              ("block %d param %d: fd %g, wgrad %g"):format(l, i, fd, grads[i]:get(ri, ci)))
          end
        end
        -- ‖A‖₂ against the dense matrix of A (its rows: A applied to the unit vectors)
        local n = b.n_in
        local M = b:forward(blua.eye(n), blua.zeros(n, b.n_out)):add(-1, b:forward(blua.zeros(n, n), blua.zeros(n, b.n_out)))
        local exact = blua.spectralNorm(M, 500)
        local est = b:norm(60)
        assert.is_true(math.abs(est - exact) <= 2e-3 * exact, ("block %d: norm %g, dense %g"):format(l, est, exact))
      end
    end)
  end

  it("C operators agree with the plain-Lua reference", function()
    local net = small_cnn(4)
    local x = blua.randn(5, 64)
    local outs = {}
    for k, be in ipairs(backends) do
      block.use_backend(be[2])
      local Z = net:forwardAll(x)
      local g = net:block(2):adjoint(blua.randn(5, net.sizes[3]), blua.zeros(5, net.sizes[2]), 1)
      outs[k] = {Z[1], Z[2], Z[3]}
      blua.manualSeed(9)
      outs[k][4] = net:block(2):adjoint(blua.randn(5, net.sizes[3]), blua.zeros(5, net.sizes[2]), 1)
      local _ = g
    end
    for i = 1, 4 do
      assert.is_true(max_abs(outs[1][i]:clone():add(-1, outs[2][i])) <= 1e-4 * (1 + max_abs(outs[2][i])))
    end
  end)

  for _, method in ipairs{"backprop", "bregman", "lifted"} do
    it(method .. " gradients of a small CNN match finite differences", function()
      local data = blobs(6, 2)
      local net = small_cnn(5)
      local X
      if method ~= "backprop" then
        local _, Xf = net:forwardAll(data.x)
        X = {}
        for l = 1, net:nLayers() - 1 do X[l] = Xf[l]:clone():add(blua.rand(Xf[l]:size()):mul(0.3)) end
      end
      local grads = blua.train.gradients(method, net, data.x, data.y, {X = X, gamma = 1.0})
      blua.manualSeed(11)
      local worst, checked = support.finite_differences(method, net, data, X, grads, 1e-2, 5)
      assert.is_true(checked >= 15, "too few entries away from kinks: " .. checked)
      assert.is_true(worst < 0.05, "worst relative error " .. worst)
    end)
  end

  it("back-prop through the C operators in two parts matches the Lua path, whatever the threads", function()
    -- 70 rows: the C path splits them into two parts of 35 run side by side.
    local data = blobs(70, 6)
    local net = small_cnn(7)
    local threads = blua.getNumThreads()
    local c = {}
    for k, t in ipairs{1, 2} do
      blua.setNumThreads(t)
      c[k] = blua.train.gradients("backprop", net, data.x, data.y)
    end
    blua.setNumThreads(threads)
    block.use_backend(ref) -- the Lua path, one kernel after another, on the reference operators
    local lua_grads = blua.train.gradients("backprop", net, data.x, data.y)
    block.use_backend(nil)
    for i, g in ipairs(lua_grads) do
      assert.equal(0, max_abs(c[1][i]:clone():add(-1, c[2][i])))
      assert.is_true(max_abs(c[1][i]:clone():add(-1, g)) <= 1e-5 * (1 + max_abs(g)), "gradient " .. i)
    end
  end)

  it("X-steps on a CNN never increase a sample's Bregman objective", function()
    local data = blobs(8, 3)
    local net = small_cnn(6)
    local L = net:nLayers()
    local _, X = net:forwardAll(data.x)
    X[0], X[L] = data.x, blua.data.onehot(data.y, 3)
    for l = 1, L - 1 do X[l]:add(blua.rand(X[l]:size()):mul(0.2)) end
    for l = L - 1, 1, -1 do
      local before = blua.metrics.energy(net, data, {X = X})
      blua.train.xstep("bregman", net, X, l)
      local after = blua.metrics.energy(net, data, {X = X})
      assert.is_true(after <= before + 1e-6, ("layer %d: %g -> %g"):format(l, before, after))
    end
  end)

  it("takes a transposed or strided input as its contiguous copy (forward, metrics)", function()
    local net = small_cnn(3)
    local data = blobs(12, 5)
    local xt = data.x:t():contiguous():t() -- the same values, stored column by column
    assert.is_false(xt:isContiguous())
    assert.equal(0, max_abs(net:forward(xt) - net:forward(data.x)))
    local wide = blua.zeros(12, 80)
    wide:narrow(2, 9, 64):copy(data.x)
    assert.equal(0, max_abs(net:forward(wide:narrow(2, 9, 64)) - net:forward(data.x)))
    assert.equal(blua.metrics.accuracy(net, data), blua.metrics.accuracy(net, {x = xt, y = data.y}))
  end)

  it("saves, loads and clones a CNN", function()
    local net = small_cnn(7)
    local path = os.tmpname()
    blua.save(path, net)
    local back = blua.load(path)
    os.remove(path)
    local x = blua.rand(3, 64)
    assert.equal(0, max_abs(net:forward(x) - back:forward(x)))
    assert.equal(0, max_abs(net:forward(x) - net:clone():forward(x)))
    assert.equal(tostring(net), tostring(back))
  end)

  it("all three trainers learn a small image problem", function()
    local train, test = blobs(240, 4), blobs(60, 5)
    for _, method in ipairs{"backprop", "bregman", "lifted"} do
      local net = small_cnn(8)
      local h = blua.train[method](net, train, {epochs = 6, batch = 16, verbose = false, test = test})
      assert.is_true(h[#h].loss == h[#h].loss)
      if method ~= "lifted" then
        assert.is_true(h[#h].test_acc >= 0.9, method .. " test accuracy " .. h[#h].test_acc)
      end
      assert.equal(2, #blua.metrics.linear_fraction(net, test))
    end
    -- a network with convolutions gets the CNN defaults; an MLP keeps its own
    assert.equal(8e-3, blua.train.defaults("bregman", small_cnn()).lr)
    assert.equal(2e-3, blua.train.defaults("bregman", blua.nn.mlp{4, 3, 2}).lr)
    assert.equal(2e-3, blua.train.defaults("bregman").lr)
    assert.equal(4e-3, blua.train.defaults("backprop", small_cnn()).lr)
    assert.has_error(function() blua.train.bregman(small_cnn(), train, {optimizer = "proxgrad", verbose = false}) end,
      "blua.train.bregman: optimizer 'proxgrad' needs dense layers; layer 1 is a conv2d block")
  end)
end)
