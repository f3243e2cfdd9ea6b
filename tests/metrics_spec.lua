-- Metrics against hand-made networks whose outputs are known.
local blua = require "blua"

-- A 2-2-2 network whose hidden layer is the identity map of the inputs, through ReLU.
local function known_net()
  local net = blua.nn.mlp{2, 2, 2}
  net.W[1]:copy(blua.eye(2))
  net.b[1]:zero()
  net.W[2]:copy(blua.eye(2))
  net.b[2]:zero()
  return net
end

describe("blua.metrics", function()
  local data = {
    x = blua.tensor{{1, 0}, {0, 1}, {2, -1}, {-1, -3}},
    y = blua.tensor{{1}, {2}, {2}, {1}},
    n = 4,
  }

  it("mean_sd gives the mean and the sample standard deviation", function()
    local m, sd = blua.metrics.mean_sd{1, 2, 3, 4}
    assert.equal(2.5, m)
    assert.is_true(math.abs(sd - math.sqrt(5 / 3)) < 1e-12)
    assert.same({7, 0}, {blua.metrics.mean_sd{7}})
    assert.has_error(function() blua.metrics.mean_sd{} end,
      "bad argument #1 to 'blua.metrics.mean_sd' (a non-empty list of numbers expected)")
    assert.has_error(function() blua.metrics.mean_sd{1, "2"} end,
      "bad argument #1 to 'blua.metrics.mean_sd' (entry 2 is a string, not a number)")
  end)

  it("accuracy counts arg-max hits", function()
    -- predictions: 1, 2, 1, and row 4 has relu(-1,-3) = (0,0): a tie resolved to class 1
    assert.equal(0.75, blua.metrics.accuracy(known_net(), data))
  end)

  it("linear_fraction is the share of positive ReLU pre-activations", function()
    -- pre-activations: (1,0) (0,1) (2,-1) (-1,-3): three of eight are > 0
    assert.same({3 / 8}, blua.metrics.linear_fraction(known_net(), data))
  end)

  it("energy at the forward pass is the loss alone", function()
    local net = known_net()
    local total, terms = blua.metrics.energy(net, data)
    assert.equal(0, terms[1])
    assert.is_true(math.abs(total - terms[2]) < 1e-12)
    -- cross-entropy of softmax((1,0)) for class 1 etc., averaged
    local function ce(a, b, c) local m = math.max(a, b); local lse = m + math.log(math.exp(a - m) + math.exp(b - m)); return lse - (c == 1 and a or b) end
    local want = (ce(1, 0, 1) + ce(0, 1, 2) + ce(2, 0, 2) + ce(0, 0, 1)) / 4
    assert.is_true(math.abs(terms[2] - want) < 1e-5)
  end)

  it("energy at other auxiliary variables adds the Bregman terms", function()
    local net = known_net()
    local X1 = blua.tensor{{1, 0}, {0, 1}, {2, 0}, {0, 1}} -- last row off the forward pass
    local _, terms = blua.metrics.energy(net, data, {X = {X1}})
    -- ReLU: B(y, z) = ½y² + ½max(z,0)² − yz; row 4: y = (0,1), z = (−1,−3): ½ + 0 + 3 = 3.5
    assert.is_true(math.abs(terms[1] - 3.5 / 4) < 1e-6)
  end)

  it("confusion counts true against predicted", function()
    local m = blua.metrics.confusion(known_net(), data)
    assert.same({{2, 0}, {1, 1}}, m)
  end)

  it("refuses things that are not data sets", function()
    assert.has_error(function() blua.metrics.accuracy(known_net(), {}) end, "blua.metrics.accuracy: a data set {x =, y =} expected")
  end)

  it("refuses things that are not networks, naming the metric", function()
    for _, name in ipairs{"accuracy", "topk", "energy", "sparsity", "confusion"} do
      assert.has_error(function() blua.metrics[name]({}, data) end, "blua.metrics." .. name .. ": a blua.nn network expected, got table")
      assert.has_error(function() blua.metrics[name](blua.zeros(2, 2), data) end,
        "blua.metrics." .. name .. ": a blua.nn network expected, got a tensor")
    end
  end)
end)
