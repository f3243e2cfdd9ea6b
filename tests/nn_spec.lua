-- Networks: construction, forward pass, cloning, saving, and the errors of bad specs.
local blua = require "blua"

describe("blua.nn.mlp", function()
  it("builds the paper's network with He initialisation", function()
    blua.manualSeed(1)
    local net = blua.nn.mlp{784, 64, 64, 64, 10, activation = "relu", output = "softmax"}
    assert.equal(4, net:nLayers())
    assert.same({784, 64}, {net.W[1]:size()})
    assert.same({1, 10}, {net.b[4]:size()})
    assert.equal(784 * 64 + 64 + 2 * (64 * 64 + 64) + 64 * 10 + 10, net:nParameters())
    -- He: standard deviation sqrt(2 / fan_in)
    local std = net.W[1]:norm() / math.sqrt(784 * 64)
    assert.is_true(math.abs(std - math.sqrt(2 / 784)) < 0.002)
    assert.equal("relu", net:activation(2).name)
    assert.equal("softmax", net:activation(4).name)
    assert.truthy(tostring(net):find("784-64-64-64-10", 1, true))
  end)

  it("computes the forward pass of the formula", function()
    local net = blua.nn.mlp{3, 2, 2, output = "identity"}
    net.W[1]:copy(blua.tensor{{1, -1}, {0, 2}, {1, 0}})
    net.b[1]:copy(blua.tensor{{0.5, -3}})
    net.W[2]:copy(blua.tensor{{1, 0}, {0, 1}})
    local x = blua.tensor{{1, 1, 1}}
    -- z1 = x W1 + b1 = (2.5, -2); relu -> (2.5, 0); output identity
    assert.same({{2.5, 0}}, net:forward(x):totable())
  end)

  it("gives softmax rows that sum to one and 1-based predictions", function()
    blua.manualSeed(2)
    local net = blua.nn.mlp{5, 8, 3}
    local p = net:forward(blua.randn(20, 5))
    for i = 1, 20 do
      local s = 0
      for j = 1, 3 do s = s + p:get(i, j) end
      assert.is_true(math.abs(s - 1) < 1e-5)
    end
    local pred = net:predict(blua.randn(4, 5))
    assert.is_true(pred:min() >= 1 and pred:max() <= 3)
  end)

  it("takes per-layer activations and activation objects", function()
    local net = blua.nn.mlp{4, 5, 5, 2, activation = {"tanh", blua.activation.get("leaky_relu", {slope = 0.2})}}
    assert.equal("tanh", net:activation(1).name)
    assert.equal(0.2, net:activation(2).params.slope)
  end)

  it("clones deeply", function()
    local net = blua.nn.mlp{4, 3, 2}
    local c = net:clone()
    c.W[1]:fill(0)
    assert.is_true(net.W[1]:norm() > 0)
  end)

  it("saves and loads, with the same outputs", function()
    blua.manualSeed(3)
    local net = blua.nn.mlp{6, 7, 7, 3, activation = {"relu", "clip"}}
    local path = os.tmpname()
    blua.save(path, net)
    local back = blua.load(path)
    os.remove(path)
    assert.equal(blua.nn.MLP, getmetatable(back))
    local x = blua.randn(5, 6)
    assert.equal(0, (net:forward(x) - back:forward(x)):abs():max())
    assert.equal("clip", back:activation(2).name)
  end)

  it("takes its options in the sizes' table or in a second one", function()
    blua.manualSeed(3)
    local a = blua.nn.mlp{4, 3, 2, activation = "tanh", output = "identity"}
    blua.manualSeed(3)
    local b = blua.nn.mlp({4, 3, 2}, {activation = "tanh", output = "identity"})
    assert.equal("tanh", b:activation(1).name)
    assert.equal("identity", b:activation(2).name)
    assert.equal("glorot", b.init)
    for l = 1, 2 do assert.equal(0, (a.W[l] - b.W[l]):abs():max()) end
  end)

  it("refuses bad specs with messages", function()
    assert.has_error(function() blua.nn.mlp{784} end, "blua.nn.mlp: at least an input and an output size expected")
    assert.has_error(function() blua.nn.mlp{784, 0, 10} end)
    assert.has_error(function() blua.nn.mlp{4, 3, 2, activaton = "relu"} end,
      "blua.nn.mlp: unknown option 'activaton' (accepted: activation, init, output)")
    assert.has_error(function() blua.nn.mlp{4, 3, 2, activation = "swish"} end)
    assert.has_error(function() blua.nn.mlp{4, 3, 3, 2, activation = {"relu"}} end,
      "blua.nn.mlp: 1 activations given for 2 hidden layers")
    assert.has_error(function() blua.nn.mlp({4, 3, 2}, {activaton = "relu"}) end,
      "blua.nn.mlp: unknown option 'activaton' (accepted: activation, init, output)")
    assert.has_error(function() blua.nn.mlp({4, 3, 2, init = "he"}, {init = "glorot"}) end,
      "blua.nn.mlp: option 'init' given in both tables")
    assert.has_error(function() blua.nn.mlp({4, 3}, {2}) end,
      "blua.nn.mlp: layer sizes go in the first table, options in the second")
    assert.has_error(function() blua.nn.mlp({4, 3, 2}, "tanh") end,
      "blua.nn.mlp: a table of options expected as argument 2, got string")
    local net = blua.nn.mlp{4, 3, 2}
    assert.has_error(function() net:forward(blua.zeros(2, 5)) end,
      "size mismatch in 'forward': input 2x5, network expects N x 4")
  end)

  it("builds the same network layer by layer with Sequential", function()
    blua.manualSeed(5)
    local a = blua.nn.mlp{6, 5, 4, 3, activation = {"relu", "tanh"}, output = "softmax"}
    blua.manualSeed(5)
    local b = blua.nn.Sequential()
      :add(blua.nn.Linear(6, 5)):add("relu")
      :add(blua.nn.Linear(5, 4)):add(blua.activation.get("tanh"))
      :add(blua.nn.Linear(4, 3)):add("softmax")
    assert.same(a.sizes, b.sizes)
    for l = 1, 3 do
      assert.equal(a:activation(l).name, b:activation(l).name)
      assert.equal(0, (a.W[l] - b.W[l]):abs():max())
    end
    local x = blua.randn(7, 6)
    assert.equal(0, (a:forward(x) - b:forward(x)):abs():max())
    -- a Linear without an activation keeps the identity
    local c = blua.nn.Sequential():add(blua.nn.Linear(2, 3)):add(blua.nn.Linear(3, 1))
    assert.equal("identity", c:activation(1).name)
    assert.equal("identity", c:activation(2).name)
  end)

  it("refuses Sequential misuse with messages", function()
    assert.has_error(function() blua.nn.Sequential():add("relu") end, "blua.nn.Sequential: add a Linear before its activation")
    assert.has_error(function() blua.nn.Sequential():add(blua.nn.Linear(3, 4)):add(blua.nn.Linear(5, 2)) end,
      "size mismatch in 'add': Linear(5, 2) after a layer of 4 outputs")
    assert.has_error(function() blua.nn.Sequential():add(blua.nn.Linear(3, 4)):add("relu"):add("tanh") end,
      "blua.nn.Sequential: layer 1 already has the activation 'relu'")
    assert.has_error(function() blua.nn.Linear(0, 3) end)
    assert.has_error(function() blua.train.bregman(blua.nn.Sequential(), {x = blua.zeros(2, 2), y = blua.ones(2, 1)}) end,
      "blua.train.bregman: the network has no layers")
  end)
end)
