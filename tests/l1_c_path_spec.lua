-- The trainers' L1 terms (l1 = {[l] = alpha}) in the C batch steps, blua._backprop and
-- blua._lifted_batch (and for the CNN blua.op.backprop and blua.op.lifted_batch): they compute
-- the bits of the share-by-share Lua path (lifted.c_batch = false), the same bits on 1 and 2
-- threads, and the composed X-step (user-defined activations' path) gives the fused kernel's
-- bits for a built-in activation.
package.path = "./?.lua;" .. package.path
local blua = require "blua"
local support = require "tests.support"
local lifted = require "blua.train.lifted"

-- Two small regression problems whose hidden layers cover the L1 rules: a shift (ReLU,
-- sigmoid, clip ≥ 0), a soft-threshold (soft threshold, leaky ReLU, tanh: a smooth prox).
local nets = {
  {acts = {"relu", {name = "soft_threshold", params = {lambda = 0.1}}, "tanh"}, l1 = {[2] = 0.05}},
  {acts = {"sigmoid", {name = "leaky_relu", params = {slope = 0.2}}, {name = "clip", params = {lo = 0, hi = 2}}},
   l1 = {[1] = 0.02, [2] = 0.04, [3] = 0.03}},
}

local function problem(case)
  blua.manualSeed(21)
  local x = blua.randn(83, 7)
  local net = blua.nn.mlp{7, 12, 9, 10, 7, output = "identity", activation = case.acts}
  return {x = x, y = x:clone(), n = 83}, net
end

local function options(case, extra)
  local o = {epochs = 2, batch = 29, verbose = false, eval_train = false, l1 = case.l1}
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Runs f with t[name] wrapped to count its calls; returns the count.
local function count_calls_in(t, name, f)
  local real, calls = t[name], 0
  t[name] = function(...)
    calls = calls + 1
    return real(...)
  end
  local ok, err = pcall(f)
  t[name] = real
  assert(ok, err)
  return calls
end

local function count_calls(name, f) return count_calls_in(blua, name, f) end

local c_function = {backprop = "_backprop", bregman = "_lifted_batch", lifted = "_lifted_batch"}

describe("L1 terms in the C batch steps", function()
  for _, method in ipairs{"bregman", "lifted"} do
    it(method .. ": the bits of the share-by-share path, loss and energies included", function()
      for _, case in ipairs(nets) do
        for _, extra in ipairs{{}, {inner = 2, xsteps = 2, order = "oddeven"}, {batch_shards = 3, optimizer = "proxgrad"}} do
          local data = problem(case)
          local calls = count_calls(c_function[method], function()
            support.assert_paths_agree(method, function() return select(2, problem(case)) end, data, options(case, extra))
          end)
          assert(calls > 0, "the C batch step did not run")
        end
      end
    end)
  end

  -- Back-propagation's C step and its Lua path give the same weight gradients, L1 terms
  -- included; the bias gradients differ in the last bit already without them (the C step scales
  -- the column sums in double, the Lua path scales the float sums), so trained weights agree to
  -- rounding only.
  it("backprop: the weight gradients of the share-by-share path, bit for bit", function()
    for _, case in ipairs(nets) do
      local runs = {}
      for k, c_batch in ipairs{true, false} do
        local data, net = problem(case)
        lifted.c_batch = c_batch
        local grads, loss
        local calls = count_calls("_backprop", function()
          grads, loss = blua.train.gradients("backprop", net, data.x, data.y, {l1 = case.l1})
        end)
        lifted.c_batch = true
        assert.are.equal(c_batch, calls > 0)
        runs[k] = {grads = grads, loss = loss}
      end
      for i, g in ipairs(runs[1].grads) do
        local diff = g:clone():add(-1, runs[2].grads[i]):abs():max()
        if i % 2 == 1 then
          assert.are.equal(0, diff, "weight gradient " .. i)
        else
          assert(diff <= 1e-6 * runs[2].grads[i]:clone():abs():max(), "bias gradient " .. i)
        end
      end
      assert.near(runs[2].loss, runs[1].loss, 1e-6 * math.abs(runs[2].loss))
    end
  end)

  it("backprop: trained weights of the share-by-share path up to rounding", function()
    for _, case in ipairs(nets) do
      local trained = {}
      for k, c_batch in ipairs{true, false} do
        local data, net = problem(case)
        lifted.c_batch = c_batch
        local ok, err = pcall(blua.train.backprop, net, data, options(case, {batch_shards = 3}))
        lifted.c_batch = true
        assert(ok, err)
        trained[k] = net
      end
      for i, p in ipairs(trained[1]:parameters()) do
        local q = trained[2]:parameters()[i]
        assert(p:clone():add(-1, q):abs():max() <= 1e-5 * q:clone():abs():max(), "parameter " .. i)
      end
    end
  end)

  -- (shares of 32 rows through 30-200-200-200-30: enough work for the shares to run side by side)
  local function wide_problem()
    blua.manualSeed(22)
    local x = blua.randn(192, 30)
    local net = blua.nn.mlp{30, 200, 200, 200, 30, output = "identity", activation = nets[1].acts}
    return {x = x, y = x:clone(), n = 192}, net
  end
  for _, method in ipairs{"backprop", "bregman", "lifted"} do
    it(method .. ": the same bits with 1 and 2 threads", function()
      local data, a = wide_problem()
      local _, b = wide_problem()
      local o = {epochs = 1, batch = 64, verbose = false, eval_train = false, l1 = {[2] = 0.05}}
      o.threads = 1
      blua.train[method](a, data, o)
      o.threads = 2
      blua.train[method](b, data, o)
      assert.is_true(support.same_params(a, b))
    end)
  end

  it("the L1 term changes what the C step computes (the comparisons above would see it dropped)", function()
    for _, method in ipairs{"backprop", "bregman", "lifted"} do
      local case = nets[1]
      local data, a = problem(case)
      local _, b = problem(case)
      blua.train[method](a, data, options(case))
      blua.train[method](b, data, options(case, {l1 = {}}))
      assert.is_false(support.same_params(a, b), method)
    end
  end)

  it("the composed X-step of the Lua path gives the fused kernel's bits for built-in activations", function()
    for _, method in ipairs{"bregman", "lifted"} do
      for _, case in ipairs(nets) do
        local data, net = problem(case)
        local _, Xf = net:forwardAll(data.x)
        local X = {[0] = data.x, [net:nLayers()] = data.y}
        for l = 1, net:nLayers() - 1 do X[l] = Xf[l]:clone() end
        local fused, composed = {}, {}
        for l in pairs(case.l1) do
          fused[l], composed[l] = X[l]:clone(), X[l]:clone()
          local Xa, Xb = {}, {}
          for k, t in pairs(X) do Xa[k], Xb[k] = t, t end
          Xa[l], Xb[l] = fused[l], composed[l]
          blua.train.xstep(method, net, Xa, l, {gamma = 1.0, l1 = case.l1})
          blua.train.xstep(method, net, Xb, l, {gamma = 1.0, l1 = case.l1, lua = true})
          assert(fused[l]:clone():add(-1, X[l]):abs():max() > 0, "the X-step did not move")
          assert.are.equal(0, fused[l]:clone():add(-1, composed[l]):abs():max())
        end
      end
    end
  end)

  it("blua.op.lifted_batch takes the L1 weights too: on dense operators the bits of blua._lifted_batch", function()
    if blua.op == nil then return end
    local case = nets[2]
    local results = {}
    for k = 1, 2 do
      local data, net = problem(case)
      local rows, L = 40, net:nLayers()
      local x, y = data.x:narrow(1, 1, rows), data.y:narrow(1, 1, rows)
      local X, Z, G = {}, {}, {}
      for l = 1, L do
        local w = net.sizes[l + 1]
        if l < L then X[l] = blua.zeros(rows, w) end
        Z[l], G[l] = blua.zeros(rows, w), blua.zeros(rows, w)
      end
      local opts = {scale = 1 / rows, forward = true, energies = true, steps = {3, 2, 1, 2}, mu = {0.5, 0.4, 0.3, 0.6},
        l1 = case.l1}
      local acts, ops, params = lifted.op_path(net, nil, 2)
      local grads = {}
      for _, p in ipairs(params) do grads[#grads + 1] = blua.zeros(p:size()) end
      local losses, energies
      if k == 1 then
        losses, energies = blua.op.lifted_batch("bregman", acts, ops, params, x, y, X, Z, G, 2, opts, grads)
      else
        losses, energies = blua._lifted_batch("bregman", acts, net.W, net.b, x, y, X, Z, G, 2, opts, grads)
      end
      results[k] = {X = X, grads = grads, losses = losses, energies = energies}
    end
    local a, b = results[1], results[2]
    for l, t in ipairs(a.X) do assert.are.equal(0, t:clone():add(-1, b.X[l]):abs():max()) end
    for i, g in ipairs(a.grads) do assert.are.equal(0, g:clone():add(-1, b.grads[i]):abs():max()) end
    assert.are.same(b.losses, a.losses)
    assert.are.same(b.energies, a.energies)
  end)

  -- The CNN (convolutions, pooling: operators) with L1 terms on a layer before a convolution
  -- and on the one before the output: blua.op.lifted_batch and blua.op.backprop.
  local function cnn()
    blua.manualSeed(3)
    return blua.experiment.cnn()
  end
  local function images(n)
    blua.manualSeed(21)
    local x = blua.rand(n, 784)
    local y = blua.zeros(n, 1)
    for i = 1, n do y:set(i, 1, (i * 7) % 10 + 1) end
    return {x = x, y = y, n = n}
  end
  local cnn_l1 = {[1] = 0.01, [3] = 0.02}

  for _, method in ipairs{"bregman", "lifted"} do
    it(method .. ": the CNN's C batch step with L1 terms computes the bits of the share-by-share path", function()
      if blua.op == nil then return end
      local data = images(23)
      for _, extra in ipairs{{}, {inner = 2, order = "forward"}} do
        local o = {epochs = 1, batch = 11, verbose = false, eval_train = false, l1 = cnn_l1}
        for k, v in pairs(extra) do o[k] = v end
        local calls = count_calls_in(blua.op, "lifted_batch", function()
          -- (share by share on one thread, as in tests/lifted_ops_spec.lua)
          support.assert_paths_agree(method, cnn, data, o, 1)
        end)
        assert.are.equal(3 * (o.inner or 1), calls)
      end
    end)
  end

  it("backprop: the CNN's C step with L1 terms gives the gradients of the share-by-share path", function()
    if blua.op == nil then return end
    local data = images(19)
    local runs = {}
    for k, c_batch in ipairs{true, false} do
      local net = cnn()
      lifted.c_batch = c_batch
      local grads, loss
      local calls = count_calls_in(blua.op, "backprop", function()
        grads, loss = blua.train.gradients("backprop", net, data.x, data.y, {l1 = cnn_l1})
      end)
      lifted.c_batch = true
      assert.are.equal(c_batch, calls > 0)
      runs[k] = {grads = grads, loss = loss}
    end
    -- (bit for bit but for the output layer's bias, a dense block's: the rounding above)
    for i, g in ipairs(runs[1].grads) do
      local diff = g:clone():add(-1, runs[2].grads[i]):abs():max()
      if i < #runs[1].grads then
        assert.are.equal(0, diff, "gradient " .. i)
      else
        assert(diff <= 1e-6 * runs[2].grads[i]:clone():abs():max(), "gradient " .. i .. ": " .. diff)
      end
    end
    assert.near(runs[2].loss, runs[1].loss, 1e-6 * math.abs(runs[2].loss))
    -- and the L1 term is in it
    local plain = blua.train.gradients("backprop", cnn(), data.x, data.y)
    assert(plain[1]:clone():add(-1, runs[1].grads[1]):abs():max() > 0)
  end)

  it("blua._lifted_batch and blua._backprop refuse bad L1 weights, naming themselves", function()
    local case = nets[1]
    local data, net = problem(case)
    local n, L = 10, net:nLayers()
    local x, y = data.x:narrow(1, 1, n), data.y:narrow(1, 1, n)
    local X, Z, G, D, grads, acts = {}, {}, {}, {}, {}, {}
    for l = 1, L do
      local w = net.sizes[l + 1]
      if l < L then X[l] = blua.zeros(n, w) end
      Z[l], G[l], D[l] = blua.zeros(n, w), blua.zeros(n, w), blua.zeros(n, w)
      acts[l] = net:activation(l)
    end
    for _, p in ipairs(net:parameters()) do grads[#grads + 1] = blua.zeros(p:size()) end
    local opts = {scale = 0.1, forward = true, steps = {2}, mu = {0.5}, l1 = {[2] = -1}}
    assert.has_error(function()
      blua._lifted_batch("bregman", acts, net.W, net.b, x, y, X, Z, G, 1, opts, grads)
    end, "bad L1 weight in 'lifted_batch': layer 2 has -1.0 (non-negative and finite expected)")
    opts.l1 = {[2] = true}
    assert.has_error(function()
      blua._lifted_batch("bregman", acts, net.W, net.b, x, y, X, Z, G, 1, opts, grads)
    end, "bad L1 weight in 'lifted_batch': layer 2 has a boolean (a number expected)")
    assert.has_error(function()
      blua._backprop(acts, net.W, net.b, x, y, Z, X, D, G, 0.1, 1, grads, nil, {[1] = math.huge})
    end, "bad L1 weight in 'backprop': layer 1 has inf (non-negative and finite expected)")
    opts.l1 = {[2] = 0.1}
    local losses, energies = blua._lifted_batch("bregman", acts, net.W, net.b, x, y, X, Z, G, 1,
      {scale = 0.1, forward = true, steps = {2}, mu = {0.5}, energies = true, l1 = {[2] = 0.1}}, grads)
    assert.are.equal(1, #losses)
    -- the energy of layer 2 holds α‖X_2‖₁ on top of its Bregman term
    local plain = net:activation(2):bregman(X[2], X[1]:mm(net.W[2]):addRow(net.b[2]))
    assert.near(plain + 0.1 * X[2]:clone():abs():sum(), energies[1][2], 1e-4 * math.abs(energies[1][2]))
  end)

  it("refuses a NaN, negative or infinite L1 weight in the X-step kernel", function()
    blua.manualSeed(1)
    local net = blua.nn.mlp{6, 5, 4}
    local a1, a2 = net:activation(1), net:activation(2)
    local z, zn, x, xn, g = blua.randn(8, 5), blua.randn(8, 4), blua.randn(8, 5), blua.randn(8, 4), blua.zeros(8, 5)
    for _, alpha in ipairs{0 / 0, -1, 1 / 0} do
      local ok, err = pcall(blua._xstep, "bregman", a1, a2, net.W[2], net.b[2], nil, z, zn, x, xn, 0.5, 0, g, alpha)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("bad L1 weight in 'xstep'", 1, true), tostring(err))
    end
    assert.is_true((pcall(blua._xstep, "bregman", a1, a2, net.W[2], net.b[2], nil, z, zn, x, xn, 0.5, 0, g, 0.1)))
  end)
end)
