-- The trainers' l1 option (docs/design.md, "L1 penalties on auxiliary variables"):
-- back-propagation's gradient of the loss with α‖σ(z_l)‖₁ against finite differences; the
-- Bregman and classical lifted X-steps with the L1 term converge to a point where finite
-- differences of the smooth energy meet the L1 subgradient condition; sparser codes; errors.
local blua = require "blua"

local function toy(n, d, seed)
  blua.manualSeed(seed)
  local x = blua.randn(n, d)
  local y = blua.rand(n, 1):mul(2):floor():add(1)
  return {x = x, y = y, n = n}
end

describe("l1 in back-propagation", function()
  it("the gradient matches finite differences of the loss with the L1 term", function()
    math.randomseed(11)
    local data = toy(12, 3, 5)
    blua.manualSeed(2)
    local net = blua.nn.mlp{3, 8, 8, 2, activation = {"tanh", {name = "leaky_relu", params = {slope = 0.2}}}, output = "softmax"}
    local l1 = {[1] = 0.05, [2] = 0.2}
    local grads, loss = blua.train.gradients("backprop", net, data.x, data.y, {l1 = l1})
    local _, plain = blua.train.gradients("backprop", net, data.x, data.y)
    local _, X = net:forwardAll(data.x)
    local want = plain + (0.05 * X[1]:clone():abs():sum() + 0.2 * X[2]:clone():abs():sum()) / 12
    assert.near(want, loss, 1e-5)
    local function f()
      local _, v = blua.train.gradients("backprop", net, data.x, data.y, {l1 = l1})
      return v
    end
    local h, worst, checked = 2e-3, 0, 0
    for i, p in ipairs(net:parameters()) do
      local rows, cols = p:size()
      for _ = 1, 6 do
        local r, c = math.random(rows), math.random(cols)
        local v = p:get(r, c)
        p:set(r, c, v + h); local fp = f()
        p:set(r, c, v - h); local fm = f()
        p:set(r, c, v); local f0 = f()
        local right, left = (fp - f0) / h, (f0 - fm) / h
        if math.abs(right - left) <= 0.05 * (math.abs(right) + math.abs(left)) + 1e-4 then -- no kink inside
          local fd, g = (fp - fm) / (2 * h), grads[i]:get(r, c)
          worst = math.max(worst, math.abs(fd - g) / math.max(1e-2, math.abs(fd) + math.abs(g)))
          checked = checked + 1
        end
      end
    end
    assert(checked >= 20, "too few entries away from kinks: " .. checked)
    assert(worst < 0.05, "worst relative error " .. worst)
    -- and the L1 term changes the gradient (the test would notice it missing)
    local g0 = blua.train.gradients("backprop", net, data.x, data.y)
    assert(g0[1]:clone():add(-1, grads[1]):abs():max() > 1e-3)
  end)
end)

describe("l1 in the lifted X-steps", function()
  -- 3-4-6-5-2: layer 2 (leaky ReLU, Ψ is C¹) carries the L1 term.
  for _, case in ipairs{{"bregman", false}, {"bregman", true}, {"lifted", false}} do
    local method, lua_path = case[1], case[2]
    it(method .. (lua_path and " (Lua path)" or "") .. " converges to a point that meets the L1 optimality condition", function()
      local data = toy(4, 3, 7)
      blua.manualSeed(3)
      local net = blua.nn.mlp{3, 6, 5, 2, activation = {"relu", {name = "leaky_relu", params = {slope = 0.3}}},
        output = "softmax"}
      local L, l, alpha = net:nLayers(), 2, 0.6
      local _, Xf = net:forwardAll(data.x)
      local X = {[0] = data.x, [L] = blua.data.onehot(data.y, 2)}
      for k = 1, L - 1 do X[k] = Xf[k]:clone() end
      X[l]:add(blua.randn(4, 5):mul(0.5))
      for _ = 1, 3000 do blua.train.xstep(method, net, X, l, {gamma = 1.0, l1 = {[l] = alpha}, lua = lua_path}) end
      local penalty = method == "bregman" and "bregman" or "quadratic"
      local function smooth()
        local total = blua.metrics.energy(net, data, {X = X, penalty = penalty, gamma = 1.0})
        return total * 4 -- metrics.energy is per sample; the X-step works on the sum
      end
      local h, zeros = 1e-3, 0
      for i = 1, 4 do
        for j = 1, 5 do
          local v = X[l]:get(i, j)
          X[l]:set(i, j, v + h); local fp = smooth()
          X[l]:set(i, j, v - h); local fm = smooth()
          X[l]:set(i, j, v)
          local d = (fp - fm) / (2 * h)
          if v == 0 then
            zeros = zeros + 1
            assert(math.abs(d) <= alpha + 2e-3, string.format("entry %d,%d at 0: |dE| = %g > alpha", i, j, math.abs(d)))
          else
            local s = v > 0 and 1 or -1
            assert(math.abs(d + alpha * s) < 2e-3, string.format("entry %d,%d = %g: dE + alpha sign = %g", i, j, v, d + alpha * s))
          end
        end
      end
      assert(zeros > 0, "no entry at the threshold: the test would not see the L1 term's zeros")
    end)
  end
end)

describe("l1 in the lifted W-steps", function()
  -- B_Ψ(x, z) + α|x| = B_{Ψ+α|·|}(x, z) + h(z), h = Φ* − Φ_α* (docs/design.md, "What the W-step
  -- sees"): for a soft-threshold ρ, Ψ + α|·| is the soft-threshold ρ + α, so h is known in
  -- closed form. The W-gradient of the energy is that of the right-hand side, h included.
  local rho, alpha = 0.3, 0.2
  local st = blua.activation.get("soft_threshold", {lambda = rho})
  local st_a = blua.activation.get("soft_threshold", {lambda = rho + alpha})

  it("the energy with the L1 term is the combined penalty plus a term h(z) of z alone", function()
    blua.manualSeed(4)
    local x, z = blua.randn(7, 9), blua.randn(7, 9):mul(0.6)
    x:cmul(blua.rand(7, 9):gt(0.4)) -- exact zeros in x too
    local left = st:bregman(x, z) + alpha * x:clone():abs():sum()
    local right = st_a:bregman(x, z) + st:conj(z) - st_a:conj(z)
    assert.near(left, right, 1e-4)
    -- h is a Huber form of α‖σ(z)‖₁: ½(|z| − ρ)² up to ρ + α, then α(|z| − ρ) − α²/2
    local h = 0
    for i = 1, 7 do
      for j = 1, 9 do
        local a = math.abs(z:get(i, j))
        h = h + (a <= rho and 0 or a <= rho + alpha and 0.5 * (a - rho) ^ 2 or alpha * (a - rho) - 0.5 * alpha ^ 2)
      end
    end
    assert.near(h, st:conj(z) - st_a:conj(z), 1e-4)
  end)

  it("the Bregman W-gradient with an L1 layer is the gradient of the energy, h(z) included", function()
    math.randomseed(5)
    local data = toy(10, 3, 8)
    data.y = blua.randn(10, 2)
    blua.manualSeed(6)
    local net = blua.nn.mlp{3, 6, 5, 2, activation = {"tanh", {name = "soft_threshold", params = {lambda = rho}}},
      output = "identity"}
    local _, Xf = net:forwardAll(data.x)
    -- off the forward pass, inside tanh's range (-1, 1), with exact zeros in the L1 layer
    local X = {Xf[1]:clone():mul(0.9), Xf[2]:clone():add(blua.randn(10, 5):mul(0.2))}
    local z2 = X[1]:mm(net.W[2]):addRow(net.b[2]):abs()
    assert(z2:clone():gt(rho + alpha):sum() >= 10 and z2:clone():lt(rho):sum() >= 5, "pre-activations do not reach the kinks")
    X[2]:cmul(blua.rand(10, 5):gt(0.5))
    local grads = blua.train.gradients("bregman", net, data.x, data.y, {X = X, l1 = {[2] = alpha}})
    -- the energy written with the combined penalty and h, computed independently
    local function energy()
      local z1 = data.x:mm(net.W[1]):addRow(net.b[1])
      local z2 = X[1]:mm(net.W[2]):addRow(net.b[2])
      local z3 = X[2]:mm(net.W[3]):addRow(net.b[3])
      local d = z3:clone():add(-1, data.y)
      local e = net:activation(1):bregman(X[1], z1) + st_a:bregman(X[2], z2) + st:conj(z2) - st_a:conj(z2)
        + alpha * X[2]:clone():abs():sum() + 0.5 * d:dot(d)
      return e / 10
    end
    local h, worst, checked = 1e-2, 0, 0
    for i = 1, 6 do
      local p = net:parameters()[i]
      local rows, cols = p:size()
      for _ = 1, 5 do
        local r, c = math.random(rows), math.random(cols)
        local v = p:get(r, c)
        p:set(r, c, v + h); local fp = energy()
        p:set(r, c, v - h); local fm = energy()
        p:set(r, c, v)
        local fd, g = (fp - fm) / (2 * h), grads[i]:get(r, c)
        assert(fd == fd and math.abs(fd) < math.huge, "the energy is not finite")
        worst = math.max(worst, math.abs(fd - g) / math.max(1e-2, math.abs(fd) + math.abs(g)))
        checked = checked + 1
      end
    end
    assert(checked == 30)
    assert(worst < 0.03, "worst relative error " .. worst)
  end)
end)

describe("the l1 option", function()
  it("gives sparser codes in all three trainers", function()
    local data = toy(256, 6, 9)
    for _, method in ipairs{"bregman", "lifted", "backprop"} do
      local sparsity = {}
      for k, alpha in ipairs{0, 2} do
        blua.manualSeed(5)
        local net = blua.nn.mlp{6, 16, 16, 2, activation = "relu", output = "softmax"}
        blua.train[method](net, data, {epochs = 4, batch = 16, verbose = false, l1 = {[2] = alpha}})
        sparsity[k] = blua.metrics.sparsity(net, data, 2)
      end
      assert(sparsity[2] > sparsity[1] + 0.05, string.format("%s: sparsity %g without, %g with l1", method, sparsity[1], sparsity[2]))
    end
  end)

  it("adds alpha times the L1 norm to the lifted energy of its layer", function()
    local data = toy(64, 4, 3)
    local function energies(l1)
      blua.manualSeed(6)
      local net = blua.nn.mlp{4, 8, 8, 2, activation = "relu", output = "softmax"}
      return blua.train.bregman(net, data, {epochs = 1, batch = 64, verbose = false, lr = 1e-12, l1 = l1})[1].energies
    end
    local without, with = energies(nil), energies({[1] = 0.3})
    assert(with[1] > without[1] + 0.05, string.format("layer 1 energy %g with l1, %g without", with[1], without[1]))
  end)

  it("refuses bad layers and weights", function()
    local data = toy(8, 3, 1)
    local net = blua.nn.mlp{3, 4, 2}
    assert.has_error(function() blua.train.bregman(net, data, {verbose = false, l1 = {[2] = 0.1}}) end,
      "blua.train.bregman: l1 layer 2 is not a hidden layer (1..1)")
    assert.has_error(function() blua.train.backprop(net, data, {verbose = false, l1 = {[1] = -1}}) end,
      "blua.train.backprop: l1 weight of layer 1 must be a non-negative number, got -1")
    assert.has_error(function() blua.train.lifted(net, data, {verbose = false, l1 = 0.1}) end,
      "blua.train.lifted: l1 must be a table {[layer] = alpha}")
  end)
end)
