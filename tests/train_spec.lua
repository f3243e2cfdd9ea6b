-- Trainers: gradients against finite differences, the X-step's descent property, thread
-- independence, determinism, learning on synthetic and real data, and the error paths.
local blua = require "blua"
local support = require "tests.support"

-- Two interleaved half-moons-like clusters in 2-D: not linearly separable.
local function synthetic(n, seed)
  blua.manualSeed(seed or 3)
  local x, y = blua.zeros(n, 2), blua.zeros(n, 1)
  local noise = blua.randn(n, 2):mul(0.15)
  for i = 1, n do
    local c = i % 2
    local t = math.pi * (i / n)
    local px = c == 0 and math.cos(t) or 1 - math.cos(t)
    local py = c == 0 and math.sin(t) or 0.5 - math.sin(t)
    x:set(i, 1, px + noise:get(i, 1))
    x:set(i, 2, py + noise:get(i, 2))
    y:set(i, 1, c + 1)
  end
  return {x = x, y = y, n = n}
end

local function small_net(act, seed)
  blua.manualSeed(seed or 1)
  return blua.nn.mlp{2, 16, 16, 2, activation = act or "relu", output = "softmax"}
end

local quiet = {verbose = false}
local function opts(t)
  local o = {verbose = false}
  for k, v in pairs(t) do o[k] = v end
  return o
end

local function check_gradients(method, lua_path)
  local data = synthetic(16, 5)
  local net = small_net("relu", 2)
  local X
  if method ~= "backprop" then
    -- Auxiliary variables away from the forward pass, but inside the ReLU's domain.
    local _, Xf = net:forwardAll(data.x)
    X = {}
    for l = 1, net:nLayers() - 1 do X[l] = Xf[l]:clone():add(blua.rand(Xf[l]:size()):mul(0.3)) end
  end
  local grads = blua.train.gradients(method, net, data.x, data.y, {X = X, lua = lua_path, gamma = 1.0})
  local worst, checked = support.finite_differences(method, net, data, X, grads, 2e-3, 6)
  assert(checked >= 20, "too few entries away from kinks: " .. checked)
  return worst
end

describe("gradients", function()
  before_each(function() math.randomseed(7) end)

  it("back-propagation matches finite differences of the loss", function()
    local w = check_gradients("backprop"); assert.is_true(w < 0.05, "worst relative error " .. w)
  end)

  it("the Bregman W-gradient matches finite differences of the energy", function()
    local w = check_gradients("bregman"); assert.is_true(w < 0.05, "worst relative error " .. w)
  end)

  it("the Bregman W-gradient of the Lua path matches too", function()
    local w = check_gradients("bregman", true); assert.is_true(w < 0.05, "worst relative error " .. w)
  end)

  it("the classical lifted W-gradient matches finite differences", function()
    local w = check_gradients("lifted"); assert.is_true(w < 0.05, "worst relative error " .. w)
  end)
end)

describe("the X-step", function()
  -- The terms of the energy that involve X_l, per sample.
  local function local_objective(method, net, x, y, X, l, beta)
    local data = {x = x, y = y}
    local _, terms = blua.metrics.energy(net, data, {X = X, penalty = method == "bregman" and "bregman" or "quadratic",
      gamma = 1.0, loss_weight = beta})
    return terms[l] + terms[l + 1]
  end

  for _, case in ipairs{{"bregman", 1}, {"bregman", 0.1}, {"lifted", 1}} do
    local method, beta = case[1], case[2]
    it(method .. " never increases a sample's objective with the safe step (loss weight " .. beta .. ")", function()
      local data = synthetic(40, 9)
      local net = small_net("relu", 4)
      local L = net:nLayers()
      for i = 1, 40 do
        local x, y = data.x:narrow(1, i, 1), data.y:narrow(1, i, 1)
        local _, Xf = net:forwardAll(x)
        local X = {[0] = x, [L] = blua.data.onehot(y, 2)}
        for l = 1, L - 1 do X[l] = Xf[l]:clone():add(blua.rand(1, 16):mul(0.5)) end
        for _, l in ipairs{2, 1} do
          local before = local_objective(method, net, x, y, X, l, beta)
          blua.train.xstep(method, net, X, l, {gamma = 1.0, loss_weight = beta})
          local after = local_objective(method, net, x, y, X, l, beta)
          assert.is_true(after <= before + 1e-5, string.format("sample %d layer %d: %g -> %g", i, l, before, after))
        end
      end
    end)
  end

  it("gives the same result with 1 and 2 threads and in the Lua path", function()
    blua.manualSeed(8)
    local net = blua.nn.mlp{50, 64, 64, 10}
    local x = blua.rand(3000, 50)
    local y = blua.rand(3000, 1):mul(10):floor():add(1)
    local _, Xf = net:forwardAll(x)
    local function run(threads, lua_path)
      blua.setNumThreads(threads)
      local X = {[0] = x, [1] = Xf[1]:clone():add(0.1), [2] = Xf[2]:clone(), [3] = blua.data.onehot(y, 10)}
      blua.train.xstep("bregman", net, X, 2, {lua = lua_path})
      blua.train.xstep("bregman", net, X, 1, {lua = lua_path})
      return X[1], X[2]
    end
    local before = blua.getNumThreads()
    local a1, a2 = run(1)
    local b1, b2 = run(2)
    local c1, c2 = run(2, true)
    blua.setNumThreads(before)
    assert.is_true((a1 - b1):abs():max() < 1e-5)
    assert.is_true((a2 - b2):abs():max() < 1e-5)
    assert.is_true((a1 - c1):abs():max() < 1e-4)
    assert.is_true((a2 - c2):abs():max() < 1e-4)
  end)
end)

describe("spectralNorm", function()
  it("finds the largest singular value, cold or warm-started", function()
    local W = blua.zeros(3, 3)
    W:set(1, 1, 3); W:set(2, 2, -1); W:set(3, 3, 2)
    assert.is_true(math.abs(blua.spectralNorm(W, 60) - 3) < 1e-4)
    local v = blua.zeros(1, 3)
    blua.spectralNorm(W, 60, v)
    assert.is_true(math.abs(v:norm() - 1) < 1e-5)
    assert.is_true(math.abs(math.abs(v:get(1, 1)) - 1) < 1e-3)
    -- warm start from the converged vector: one step suffices
    assert.is_true(math.abs(blua.spectralNorm(W, 1, v) - 3) < 1e-4)
    -- rectangular and transposed
    blua.manualSeed(2)
    local A = blua.randn(30, 7)
    assert.is_true(math.abs(blua.spectralNorm(A, 200) - blua.spectralNorm(A:t(), 200)) < 1e-3)
    local x = blua.randn(7, 1)
    assert.is_true((A * x):norm() / x:norm() <= blua.spectralNorm(A, 200) + 1e-4)
    assert.has_error(function() blua.spectralNorm(A, 5, blua.zeros(1, 6)) end)
  end)

  it("walks a big matrix on every thread with the same bits, and agrees with the exact norm", function()
    -- 1030 x 1030 (blocks of 128 rows and a remainder; rows of 16-lane chunks and a tail) and
    -- short rows (under 16 columns), cold and warm, on 1 and 2 threads, in and out of a team
    local threads = blua.getNumThreads()
    blua.manualSeed(5)
    for _, shape in ipairs{{1030, 1030}, {700, 9}, {9, 700}} do
      local W = blua.randn(shape[1], shape[2])
      local seen
      for _, th in ipairs{1, 2} do
        blua.setNumThreads(th)
        for _, in_team in ipairs{false, true} do
          local v = blua.zeros(1, shape[2])
          local run = function() return {blua.spectralNorm(W, 30), blua.spectralNorm(W, 5, v), blua.spectralNorm(W, 3, v)} end
          local got = in_team and blua._team(run) or run()
          got[4] = v:sum()
          if seen then assert.same(seen, got) else seen = got end
        end
      end
      blua.setNumThreads(threads)
    end
    -- a diagonal matrix: its largest entry, reached from the fixed start
    local D = blua.zeros(1030, 1030)
    for i = 1, 1030 do D:set(i, i, 1 + (i % 5) / 10) end
    D:set(1029, 1029, 3)
    assert.is_true(math.abs(blua.spectralNorm(D, 300) - 3) < 1e-4)
    -- long rows and many blocks keep their accuracy (sums of float chunks added in double):
    -- ‖ones(1, n)‖₂ = ‖ones(n, 1)‖₂ = √n, here 1024
    assert.is_true(math.abs(blua.spectralNorm(blua.ones(1, 2 ^ 20), 3) / 1024 - 1) < 2e-6)
    assert.is_true(math.abs(blua.spectralNorm(blua.ones(2 ^ 20, 1), 3) / 1024 - 1) < 2e-6)
    local R = blua.ones(3000, 700):mul(0.01)
    assert.is_true(math.abs(blua.spectralNorm(R, 3) / (0.01 * math.sqrt(3000 * 700)) - 1) < 2e-6)
    -- and a NaN anywhere gives NaN
    D:set(512, 3, 0 / 0)
    local s = blua.spectralNorm(D, 4)
    assert.is_true(s ~= s)
  end)

  it("of a list gives each matrix the norm and warm start a call of its own gives", function()
    blua.manualSeed(3)
    local Ws = {blua.randn(64, 64), blua.randn(64, 10), blua.randn(20, 64)}
    local function starts()
      local vs = {}
      for i, W in ipairs(Ws) do vs[i] = blua.rand(1, W:size(2)) end
      return vs
    end
    blua.manualSeed(4)
    local v1 = starts()
    blua.manualSeed(4)
    local v2 = starts()
    local threads = blua.getNumThreads()
    blua.setNumThreads(2)
    local lists = blua._team(function() return blua.spectralNorm(Ws, 8, v1) end)
    blua.setNumThreads(threads)
    for i, W in ipairs(Ws) do
      assert.equal(blua.spectralNorm(W, 8, v2[i]), lists[i])
      assert.equal(0, (v1[i] - v2[i]):abs():max())
    end
    assert.same({}, blua.spectralNorm({}, 8, {}))
    assert.has_error(function() blua.spectralNorm(Ws, 8, {v1[1]}) end)
    assert.has_error(function() blua.spectralNorm({Ws[1], Ws[1]}, 8, {v1[1], v1[1]}) end) -- one start for two
    assert.has_error(function() blua.spectralNorm({Ws[2]}, 8, {v1[1]}) end)
    assert.has_error(function() blua.spectralNorm({Ws[1]}, 8, {42}) end)
  end)

  it("gives the lifted trainers' step sizes of a sweep in one call, as one call per layer does", function()
    local lifted = require "blua.train.lifted"
    blua.manualSeed(5)
    local net = blua.nn.mlp{30, 16, 16, 16, 4}
    local o = require("blua.train.options").check("bregman", {}, net)
    local p1, p2, mu = {}, {}, {}
    for _ = 1, 3 do
      local want = {}
      for i, l in ipairs{3, 2, 1} do want[i] = lifted.xstep_size(net, o, "bregman", l, p1) end
      assert.same(want, lifted.sweep_step_sizes(net, o, "bregman", {3, 2, 1}, p2, mu))
    end
  end)
end)

describe("trainers", function()
  for _, method in ipairs{"bregman", "lifted", "backprop"} do
    it(method .. " is deterministic for a fixed seed", function()
      local data = synthetic(200)
      local n1, n2 = small_net(), small_net()
      blua.train[method](n1, data, opts{epochs = 2, batch = 20, seed = 4})
      blua.train[method](n2, data, opts{epochs = 2, batch = 20, seed = 4})
      for l = 1, n1:nLayers() do assert.equal(0, (n1.W[l] - n2.W[l]):abs():max()) end
    end)
  end

  it("each learns a small synthetic problem", function()
    local data, test = synthetic(600, 3), synthetic(400, 11)
    local floors = {bregman = 0.95, backprop = 0.95, lifted = 0.75}
    for method, floor in pairs(floors) do
      local net = small_net()
      local h = blua.train[method](net, data, opts{epochs = 30, batch = 20, lr = 1e-2})
      local acc = blua.metrics.accuracy(net, test)
      assert.is_true(acc >= floor, string.format("%s: test accuracy %.3f < %.2f", method, acc, floor))
      assert.equal(30, #h)
      assert.is_number(h[30].loss)
      assert.is_number(h[30].train_acc)
    end
  end)

  it("learns with every sweep order, inner iterations with an anchor, and every W-step method", function()
    local data, test = synthetic(600, 3), synthetic(400, 11)
    local variants = {
      {order = "forward"}, {order = "oddeven"}, {inner = 2, tau = 1.0}, {xsteps = 2},
      {optimizer = "nesterov", lr = 0.05}, {optimizer = "sgd", lr = 0.1, momentum = 0.9},
      {optimizer = "proxgrad", schedule = "constant"}, {loss_weight = 1.0},
    }
    for _, v in ipairs(variants) do
      local net = small_net()
      local o = opts{epochs = 30, batch = 20, lr = v.optimizer == nil and 1e-2 or nil}
      for k, x in pairs(v) do o[k] = x end
      blua.train.bregman(net, data, o)
      local acc = blua.metrics.accuracy(net, test)
      local name = {}
      for k, x in pairs(v) do name[#name + 1] = k .. "=" .. tostring(x) end
      assert.is_true(acc >= 0.85, table.concat(name, ",") .. string.format(": test accuracy %.3f", acc))
    end
  end)

  it("trains a user-defined activation that has only a forward map", function()
    local name = "ramp_only_forward"
    pcall(blua.activation.define, {name = name, forward = function(z) return z:clone():clamp(0, 4) end})
    local data, test = synthetic(600, 3), synthetic(400, 11)
    local net = small_net(name)
    blua.train.bregman(net, data, opts{epochs = 30, batch = 20, lr = 1e-2})
    assert.is_true(blua.metrics.accuracy(net, test) >= 0.9)
    -- back-propagation needs a derivative and says so
    assert.has_error(function() blua.train.backprop(small_net(name), data, quiet) end)
  end)

  it("refuses unknown options, bad values and mismatched data", function()
    local data, net = synthetic(50), small_net()
    assert.has_error(function() blua.train.bregman(net, data, {epoch = 3}) end)
    local ok, err = pcall(blua.train.bregman, net, data, {nonsense = 1})
    assert.is_false(ok)
    assert.truthy(err:find("unknown option 'nonsense'", 1, true))
    assert.has_error(function() blua.train.backprop(net, data, {gamma = 1}) end)
    assert.has_error(function() blua.train.lifted(net, data, {epochs = 0}) end)
    assert.has_error(function() blua.train.bregman(net, data, {optimizer = "lbfgs"}) end)
    assert.has_error(function() blua.train.bregman(net, {x = blua.zeros(5, 3), y = blua.ones(5, 1)}, quiet) end)
    local bad = {x = data.x:clone(), y = data.y}
    bad.x:set(3, 1, 0 / 0)
    assert.has_error(function() blua.train.backprop(net, bad, quiet) end, "blua.train.backprop: data x contains NaN or Inf")
    assert.has_error(function() blua.train.bregman(net, data, opts{test = bad}) end, "blua.train.bregman: opts.test x contains NaN or Inf")
    local labels = {x = data.x, y = data.y:clone():fill(7)}
    assert.has_error(function() blua.train.lifted(net, labels, quiet) end)
  end)

  it("stops on NaN with an error naming the epoch and the layer", function()
    for _, method in ipairs{"bregman", "lifted", "backprop"} do
      local data, net = synthetic(100), small_net()
      local poison = function(_, b) if b == 1 then net.W[2]:set(1, 1, 0 / 0) end end
      local ok, err = pcall(blua.train[method], net, data, opts{epochs = 2, batch = 20, on_batch = poison})
      assert.is_false(ok)
      assert.truthy(err:find("training diverged in epoch 1, batch 2", 1, true), err)
      net = small_net()
      net.b[3]:set(1, 1, math.huge)
      ok, err = pcall(blua.train[method], net, data, quiet)
      assert.is_false(ok)
      assert.truthy(err:find("layer 3 of the network contains NaN or Inf", 1, true), err)
    end
  end)

  it("writes a CSV log and calls on_epoch", function()
    local data, net = synthetic(100), small_net()
    local path = os.tmpname()
    local seen = {}
    blua.train.backprop(net, data, opts{epochs = 2, log = path, on_epoch = function(e, s) seen[#seen + 1] = {e, s.loss} end})
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    os.remove(path)
    assert.truthy(text:find("^epoch,loss"))
    assert.equal(3, select(2, text:gsub("\n", "")))
    assert.equal(2, #seen)
  end)
end)

describe("on MNIST", function()
  local ok, train = pcall(blua.data.mnist, "train")
  local test = ok and blua.data.mnist("test")
  if not ok then
    pending("MNIST is not fetched (scripts/fetch-data): " .. tostring(train))
    return
  end
  local sub = blua.data.subset(train, 1, 3000)
  local tsub = blua.data.subset(test, 1, 2000)
  local floors = {bregman = 0.83, backprop = 0.83, lifted = 0.2}
  for _, method in ipairs{"bregman", "backprop", "lifted"} do
    it(method .. " passes its accuracy floor on 3000 samples in 3 epochs", function()
      blua.manualSeed(1)
      local net = blua.nn.mlp{784, 64, 64, 64, 10}
      blua.train[method](net, sub, opts{epochs = 3})
      local acc = blua.metrics.accuracy(net, tsub)
      assert.is_true(acc >= floors[method], string.format("%s: %.3f < %.2f", method, acc, floors[method]))
      local lin = blua.metrics.linear_fraction(net, tsub)
      assert.equal(3, #lin)
      if method == "lifted" then
        for l = 1, 3 do assert.is_true(lin[l] > 0.95, "classical lifted layers turn linear") end
      end
    end)
  end
end)

describe("regression with an identity output", function()
  it("fits targets given as a matrix, by every method", function()
    blua.manualSeed(4)
    local x = blua.rand(400, 3)
    local A = blua.tensor{{1, -2}, {0.5, 1}, {-1, 0.5}}
    local y = x * A -- a linear map the network can learn
    for _, method in ipairs{"bregman", "lifted", "backprop"} do
      blua.manualSeed(1)
      local net = blua.nn.mlp{3, 16, 2, output = "identity"}
      local h = blua.train[method](net, {x = x, y = y}, {epochs = 40, batch = 20, lr = 1e-2, verbose = false})
      assert.is_nil(h[#h].train_acc) -- no class labels, no accuracy
      local err = (net:forward(x) - y):norm() / y:norm()
      local bound = method == "lifted" and 0.5 or 0.2 -- the classical model is the weaker fit
      assert.is_true(err < bound, string.format("%s: relative error %.3f", method, err))
      assert.is_true(h[#h].loss < h[1].loss)
    end
    assert.has_error(function() blua.train.bregman(blua.nn.mlp{3, 4, 2, output = "identity"}, {x = x, y = blua.zeros(400, 3)}) end)
  end)
end)
