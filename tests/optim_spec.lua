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

  it("adam on a list in one call gives the bits of one call per tensor, views included", function()
    -- (over 32768 entries in all, so that with two threads the ranges cross tensor boundaries)
    local threads = blua.getNumThreads()
    blua.setNumThreads(2)
    local shapes = {{300, 100}, {40}, {7, 5}, {1}, {200, 60}}
    local function fresh()
      blua.manualSeed(4)
      local x, g = {}, {}
      for i, s in ipairs(shapes) do x[i], g[i] = blua.randn(table.unpack(s)), blua.randn(table.unpack(s)) end
      -- a transposed view: not contiguous, so it takes the entry-by-entry loop
      local w = blua.randn(5, 6)
      x[#x + 1], g[#g + 1] = w:t(), blua.randn(6, 5)
      local m, v = {}, {}
      for i, t in ipairs(x) do m[i], v[i] = blua.zeros(t:size()), blua.zeros(t:size()) end
      return x, g, m, v
    end
    local x1, g1, m1, v1 = fresh()
    local x2, g2, m2, v2 = fresh()
    for t = 1, 3 do
      blua._adam(x1, g1, m1, v1, 0.01, 0.9, 0.999, 1e-8, 0.01, t)
      for i = 1, #x2 do blua._adam(x2[i], g2[i], m2[i], v2[i], 0.01, 0.9, 0.999, 1e-8, 0.01, t) end
    end
    for i = 1, #x1 do
      assert.equal(0, (x1[i] - x2[i]):abs():max())
      assert.equal(0, (v1[i] - v2[i]):abs():max())
    end
    -- lists of other lengths, a missing tensor and a shape mismatch are errors, not crashes
    assert.has_error(function() blua._adam(x1, g1, m1, {}, 0.01, 0.9, 0.999, 1e-8, 0, 1) end)
    assert.has_error(function() blua._adam({x1[1]}, {0}, {m1[1]}, {v1[1]}, 0.01, 0.9, 0.999, 1e-8, 0, 1) end)
    local ok, err = pcall(blua._adam, {x1[1]}, {g1[2]}, {m1[1]}, {v1[1]}, 0.01, 0.9, 0.999, 1e-8, 0, 1)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("adam", 1, true), err)
    assert.truthy(tostring(err):find("size mismatch", 1, true), err)
    assert.has_error(function() blua._adam({}, {}, {}, {}, 0.01, 0.9, 0.999, 1e-8, 0, 0) end)
    blua.setNumThreads(threads)
  end)

  -- Two copies of two parameter groups with their gradients, and a step of each: the groups
  -- together (optim._adam_groups) and group by group (optim.adam), checked to agree bit for bit.
  local function two_copies(seed)
    local function groups()
      blua.manualSeed(seed)
      return {{blua.randn(4, 3)}, {blua.randn(3), blua.randn(2, 2)}}, {{blua.randn(4, 3)}, {blua.randn(3), blua.randn(2, 2)}}
    end
    local c = {s1 = {{}, {}}, s2 = {{}, {}}}
    c.p1, c.g1 = groups()
    c.p2, c.g2 = groups()
    function c.step()
      blua.optim._adam_groups(c.p1, c.g1, c.s1, {learningRate = 0.1})
      for k = 1, 2 do blua.optim.adam(function() return 0, c.g2[k] end, c.p2[k], {learningRate = 0.1}, c.s2[k]) end
      for k = 1, 2 do
        for j = 1, #c.p1[k] do assert.equal(0, (c.p1[k][j] - c.p2[k][j]):abs():max()) end
      end
    end
    return c
  end

  it("adam on parameter groups steps each group's state, together or one by one", function()
    local c = two_copies(5)
    c.step()
    c.step()
    local p1, g1, s1 = c.p1, c.g1, c.s1
    assert.same({2, 2}, {s1[1].t, s1[2].t})
    -- step counts that disagree (a state from elsewhere): each group keeps its own
    s1[2].t = 7
    blua.optim._adam_groups(p1, g1, s1, {learningRate = 0.1})
    assert.same({3, 8}, {s1[1].t, s1[2].t})
  end)

  it("adam on parameter groups with settings checked once matches a config checked every call", function()
    local c = two_copies(7)
    local config = {learningRate = 0.1, beta2 = 0.99}
    local settings = blua.optim._adam_settings(config)
    assert.equal(0.9, settings.beta1) -- (every option filled in)
    for _, lr in ipairs{0.1, 0.05} do
      config.learningRate, settings.learningRate = lr, lr
      blua.optim._adam_groups(c.p1, c.g1, c.s1, config, settings)
      for k = 1, 2 do blua.optim.adam(function() return 0, c.g2[k] end, c.p2[k], config, c.s2[k]) end
      for k = 1, 2 do
        for j = 1, #c.p1[k] do assert.equal(0, (c.p1[k][j] - c.p2[k][j]):abs():max()) end
      end
    end
    assert.truthy(not pcall(blua.optim._adam_settings, {learningRate = "fast"}))
  end)

  it("adam on parameter groups follows tensors swapped between calls", function()
    -- (the flat lists of a call are kept for the next: a swapped tensor must not be missed)
    local c = two_copies(6)
    local p1, g1, s1, p2, g2, s2 = c.p1, c.g1, c.s1, c.p2, c.g2, c.s2
    c.step()
    g1[2][1], g2[2][1] = blua.ones(3), blua.ones(3)               -- a new gradient tensor
    c.step()
    s1[1].m, s2[1].m = nil, nil                                     -- moments reset
    c.step()
    local extra = blua.randn(5)
    p1[2][3], g1[2][3] = extra:clone(), blua.ones(5)                -- a tensor added to a group
    p2[2][3], g2[2][3] = extra:clone(), blua.ones(5)
    s1[2].m, s1[2].v, s2[2].m, s2[2].v = nil, nil, nil, nil
    c.step()
    p1[2][3], g1[2][3], p2[2][3], g2[2][3] = nil, nil, nil, nil     -- and removed again
    s1[2].m, s1[2].v, s2[2].m, s2[2].v = nil, nil, nil, nil
    c.step()
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
