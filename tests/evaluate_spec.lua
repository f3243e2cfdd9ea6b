-- Evaluation helpers: evaluate (loss, accuracy, per-class accuracy), a confusion matrix that
-- prints as a grid, and top-k accuracy, checked on a network whose outputs are known.
local blua = require "blua"

-- A 3-class network whose scores are the input itself: identity weights, zero bias.
local function oracle()
  local net = blua.nn.mlp{3, 3, output = "softmax"}
  net.W[1]:copy(blua.eye(3))
  net.b[1]:zero()
  return net
end

-- Rows: the scores; labels: the truth. Row 1 right, row 2 second choice, row 3 last choice,
-- row 4 right.
local data = {
  x = blua.tensor{{3, 1, 0}, {1, 2, 0}, {0, 1, 2}, {0, 0, 5}},
  y = blua.tensor{{1}, {1}, {1}, {3}},
}

describe("blua.metrics", function()
  it("evaluate gives the loss, the accuracy and each class's accuracy", function()
    local e = blua.metrics.evaluate(oracle(), data)
    assert.equal(4, e.n)
    assert.equal(0.5, e.accuracy)
    assert.equal(1 / 3, e.per_class[1])
    assert.is_true(e.per_class[2] ~= e.per_class[2]) -- no sample of class 2: NaN
    assert.equal(1, e.per_class[3])
    -- cross-entropy: mean of log Σ exp(s) − s_label
    local expect = 0
    for i = 1, 4 do
      local s, lse = data.x:narrow(1, i, 1):totable()[1], 0
      for _, v in ipairs(s) do lse = lse + math.exp(v) end
      expect = expect + math.log(lse) - s[data.y:get(i, 1)]
    end
    assert.is_true(math.abs(e.loss - expect / 4) < 1e-5, e.loss .. " vs " .. expect / 4)
  end)

  it("confusion counts m[true][predicted] and prints as a grid", function()
    local m = blua.metrics.confusion(oracle(), data)
    assert.same({1, 1, 1}, {m[1][1], m[1][2], m[1][3]})
    assert.equal(1, m[3][3])
    assert.equal(0, m[2][1] + m[2][2] + m[2][3])
    local text = tostring(m)
    assert.truthy(text:find("true \\ predicted", 1, true), text)
    assert.truthy(text:find("\n    1    1    1    1\n", 1, true), text)
  end)

  it("topk counts a label among the k highest outputs", function()
    local net = oracle()
    assert.equal(0.5, blua.metrics.topk(net, data, 1))
    assert.equal(0.75, blua.metrics.topk(net, data, 2))
    assert.equal(1, blua.metrics.topk(net, data, 3))
    assert.equal(blua.metrics.accuracy(net, data), blua.metrics.topk(net, data, 1))
    assert.has_error(function() blua.metrics.topk(net, data, 0) end,
      "blua.metrics.topk: k must be a positive integer, got 0")
  end)

  it("refuses labels outside 1..C", function()
    local bad = {x = data.x, y = blua.tensor{{0}, {1}, {2}, {3}}}
    assert.has_error(function() blua.metrics.evaluate(oracle(), bad) end)
  end)
end)
