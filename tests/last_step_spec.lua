-- The X-step multiplier of the last hidden layer (mu_last; docs/design.md, "The last hidden
-- layer's step"): the step sizes it gives, the bound that holds for a step of any size from the
-- forward pass, the same training on both code paths, and the option's checks.
package.path = "./?.lua;" .. package.path
local blua = require "blua"
local lifted = require "blua.train.lifted"
local options = require "blua.train.options"
local support = require "tests.support"

local function regression_net(seed, acts)
  blua.manualSeed(seed)
  return blua.nn.mlp{6, 10, 10, 5, output = "identity", activation = acts or "relu"}
end

describe("mu_last", function()
  it("scales the last hidden layer's step alone", function()
    local net = regression_net(1)
    local plain = options.check("bregman", {}, net)
    local split = options.check("bregman", {mu_last = 4}, net)
    assert.is_false(plain.mu_last)
    for l = 1, 2 do
      local want = lifted.xstep_size(net, plain, "bregman", l)
      local got = lifted.xstep_size(net, split, "bregman", l)
      if l == 2 then want = want * 4 / plain.mu end -- (plain.mu = 2 for regression: a power of two, exact)
      assert.equal(want, got)
    end
    -- the one-call step sizes of a sweep (the C batch path's) agree
    local p1, p2, mu = {}, {}, {}
    for _ = 1, 2 do
      local want = {}
      for i, l in ipairs{2, 1} do want[i] = lifted.xstep_size(net, split, "bregman", l, p1) end
      assert.same(want, lifted.sweep_step_sizes(net, split, "bregman", {2, 1}, p2, mu))
    end
  end)

  it("moves a step of any size from the forward pass by at most |G| per entry", function()
    -- prox_{μΦ} is 1/(1 + μ)-Lipschitz and σ(z) is its fixed point for the gradient 0, so the
    -- step from X = σ(Z) moves each entry by at most μ/(1 + μ)·|G_ij| < |G_ij|, however large μ
    for _, acts in ipairs{{"relu", "relu"}, {"relu", {name = "soft_threshold", params = {lambda = 0.1}}}, {"tanh", "tanh"}} do
      local net = regression_net(2, acts)
      blua.manualSeed(3)
      local x, y = blua.randn(16, 6), blua.randn(16, 5)
      for _, mu in ipairs{1e-3, 1, 1e3, 1e6} do
        local Z, X = net:forwardAll(x)
        local aux = {[0] = x, X[1]:clone(), X[2]:clone(), y}
        local G = (Z[3] - y):mm(net.W[3]:t())
        blua.train.xstep("bregman", net, aux, 2, {mu = mu})
        local moved = (aux[2] - X[2]):abs()
        local bound = G:clone():abs():mul(mu / (1 + mu)):add(1e-5)
        assert.equal(0, (moved - bound):clamp(0, math.huge):max())
        assert(moved:max() > 0, "the step did not move")
      end
    end
  end)

  it("trains the same bits on the C batch step and share by share, and differs from mu_last = false", function()
    blua.manualSeed(4)
    local x = blua.rand(96, 6)
    local data = {x = x, y = x:narrow(2, 1, 5):clone():mul(2):add(-1)}
    local o = {epochs = 2, batch = 32, verbose = false, eval_train = false, mu_last = 4}
    support.assert_paths_agree("bregman", function() return regression_net(5) end, data, o)
    local a, b, c = regression_net(5), regression_net(5), regression_net(5)
    blua.train.bregman(a, data, {epochs = 2, batch = 32, verbose = false, mu_last = 4})
    blua.train.bregman(b, data, {epochs = 2, batch = 32, verbose = false})
    blua.train.bregman(c, data, {epochs = 2, batch = 32, verbose = false, mu_last = 2})
    assert.is_false(support.same_params(a, b))
    assert.is_true(support.same_params(b, c)) -- mu_last = mu (2 for regression) is no mu_last
  end)

  it("is off by default, and checked", function()
    assert.is_false(blua.train.defaults("bregman", regression_net(1)).mu_last)
    assert.is_false(blua.train.defaults("bregman", blua.nn.mlp{4, 6, 3}).mu_last)
    assert.is_false(blua.train.defaults("bregman").mu_last)
    assert.is_nil(blua.train.defaults("lifted", regression_net(1)).mu_last)
    local net = regression_net(1)
    local data = {x = blua.rand(8, 6), y = blua.rand(8, 5)}
    for _, bad in ipairs{{0, "must be positive"}, {-1, "must be positive"}, {math.huge, "must be finite"},
                         {0 / 0, "must be positive"}, {"4", "must be a number"}, {true, "must be a number"}} do
      local ok, err = pcall(blua.train.bregman, net, data, {mu_last = bad[1], verbose = false})
      assert.is_false(ok)
      assert.matches("option 'mu_last' " .. bad[2], err, 1, true)
    end
    local ok, err = pcall(blua.train.lifted, net, data, {mu_last = 4, verbose = false})
    assert.is_false(ok)
    assert.matches("unknown option 'mu_last'", err, 1, true)
  end)
end)
