-- Optimisers: they minimise a quadratic, match the update formulas, and validate config.
local blua = require "blua"

-- f(x) = ½‖x − target‖²
local target = blua.tensor{{1, -2, 3}}
local function feval(x)
  local d = x - target
  return 0.5 * d:dot(d), d
end

describe("blua.optim", function()
  it("adam minimises a quadratic", function()
    local x, state = blua.zeros(1, 3), {}
    for _ = 1, 2000 do blua.optim.adam(feval, x, {learningRate = 0.05}, state) end
    assert.is_true((x - target):abs():max() < 1e-3)
    assert.equal(2000, state.t)
  end)

  it("adam's first step is lr times the gradient's sign", function()
    local x = blua.tensor{{0, 0, 0}}
    blua.optim.adam(feval, x, {learningRate = 0.1}, {})
    assert.is_true((x - blua.tensor{{0.1, -0.1, 0.1}}):abs():max() < 1e-6)
  end)

  it("sgd with momentum and nesterov minimise a quadratic", function()
    for _, cfg in ipairs{{learningRate = 0.1}, {learningRate = 0.1, momentum = 0.9},
                         {learningRate = 0.1, momentum = 0.9, nesterov = true}} do
      local x, state = blua.zeros(1, 3), {}
      for _ = 1, 500 do blua.optim.sgd(feval, x, cfg, state) end
      assert.is_true((x - target):abs():max() < 1e-3)
    end
  end)

  it("plain sgd takes x - lr g", function()
    local x = blua.zeros(1, 3)
    blua.optim.sgd(feval, x, {learningRate = 0.5}, {})
    assert.same({{0.5, -1, 1.5}}, x:totable())
  end)

  it("works on lists of tensors", function()
    local a, b = blua.zeros(2, 2), blua.zeros(1, 2)
    local function f(p) return 0, {p[1]:clone():fill(1), p[2]:clone():fill(-1)} end
    blua.optim.sgd(f, {a, b}, {learningRate = 1}, {})
    assert.equal(-4, a:sum())
    assert.equal(2, b:sum())
  end)

  it("proxgrad with an anchor stays between the minimiser and the anchor", function()
    local x = blua.zeros(1, 3)
    local state = {anchor = {blua.zeros(1, 3)}}
    for _ = 1, 200 do blua.optim.proxgrad(feval, x, {lipschitz = 1, tau = 1}, state) end
    -- minimiser of ½‖x − t‖² + ½‖x‖² is t/2
    assert.is_true((x - target:clone():mul(0.5)):abs():max() < 1e-4)
  end)

  it("refuses unknown and mistyped options", function()
    assert.has_error(function() blua.optim.adam(feval, blua.zeros(1, 3), {lr = 1}, {}) end,
      "blua.optim.adam: unknown option 'lr' (accepted: beta1, beta2, epsilon, learningRate, weightDecay)")
    assert.has_error(function() blua.optim.sgd(feval, blua.zeros(1, 3), {momentum = "a lot"}, {}) end)
    assert.has_error(function() blua.optim.sgd(feval, blua.zeros(1, 3), {nesterov = true}, {}) end)
  end)

  it("has learning-rate schedules", function()
    local s = blua.optim.schedules
    assert.equal(0.1, s.constant(0.1, 5, 10))
    assert.is_true(math.abs(s.cosine(1, 1, 10) - 1) < 1e-12)
    assert.is_true(math.abs(s.cosine(1, 11, 10)) < 1e-12)
    assert.is_true(math.abs(s.cosine(1, 6, 10) - 0.5) < 1e-12)
    assert.is_true(math.abs(s.exponential(1, 3, 10, 0.5) - 0.25) < 1e-12)
  end)
end)
