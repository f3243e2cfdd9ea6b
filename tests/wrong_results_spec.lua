-- Inputs that used to give a wrong result (NaN losses, labels taken for targets, a stale
-- activation, an error one epoch late) give the right result or an error up front, at every
-- entry point: the three trainers, train.gradients / train.xstep and the metrics.
local blua = require "blua"

local methods = {"bregman", "lifted", "backprop"}
local quiet = {verbose = false}

local function opts(t)
  local o = {verbose = false}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

-- Two classes in 4-D, labels N x 1.
local function classes(n, seed)
  blua.manualSeed(seed or 3)
  local x = blua.randn(n, 4)
  local y = blua.zeros(n, 1)
  for i = 1, n do y:set(i, 1, x:get(i, 1) + x:get(i, 2) > 0 and 2 or 1) end
  return {x = x, y = y, n = n}
end

local function net(sizes, seed)
  blua.manualSeed(seed or 1)
  return blua.nn.mlp(sizes)
end

local function same_params(a, b)
  local pa, pb = a:parameters(), b:parameters()
  for i = 1, #pa do
    if pa[i]:clone():add(-1, pb[i]):abs():max() ~= 0 then return false end
  end
  return true
end

-- fn must raise an error containing every given plain string.
local function fails_with(fn, ...)
  local ok, err = pcall(fn)
  assert.is_false(ok, "no error")
  for _, s in ipairs{...} do
    assert.is_truthy(tostring(err):find(s, 1, true), string.format("'%s' not in: %s", s, tostring(err)))
  end
  return err
end

describe("empty data", function()
  local empty = {x = blua.zeros(0, 4), y = blua.zeros(0, 1)}

  for _, m in ipairs(methods) do
    it(m .. " refuses a data set or a test set without rows", function()
      local a = net{4, 6, 2}
      local b = a:clone()
      fails_with(function() blua.train[m](a, empty, quiet) end, "blua.train." .. m, "data has no rows")
      fails_with(function() blua.train[m](a, classes(8), opts{test = empty}) end, "opts.test has no rows")
      assert.is_true(same_params(a, b)) -- refused before any step
    end)
  end

  it("train.gradients and train.xstep refuse an empty batch", function()
    for _, m in ipairs(methods) do
      fails_with(function() blua.train.gradients(m, net{4, 6, 2}, empty.x, empty.y) end, "has no rows")
    end
    fails_with(function() blua.train.xstep("bregman", net{4, 6, 2}, {[0] = blua.zeros(0, 4)}, 1) end, "X[0]")
  end)

  it("metrics refuse an empty set instead of returning NaN", function()
    local n = net{4, 6, 2}
    for _, f in ipairs{"accuracy", "linear_fraction", "energy", "confusion", "evaluate"} do
      fails_with(function() blua.metrics[f](n, empty) end, "blua.metrics." .. f, "no rows")
    end
  end)
end)

describe("labels and targets", function()
  it("a single-output network with a non-softmax output regresses an N x 1 target", function()
    blua.manualSeed(7)
    local x = blua.rand(200, 1):mul(2):add(-1)
    local y = x:clone():mul(1.5):add(0.3) -- y = a x + b
    -- one affine layer: every method is gradient descent on the squared error, and finds a, b
    local lin = net{1, 1, output = "identity"}
    local h = blua.train.backprop(lin, {x = x, y = y}, opts{epochs = 40, batch = 20, lr = 5e-2})
    assert.is_nil(h[#h].train_acc)
    assert.near(1.5, lin.W[1]:get(1, 1), 1e-3)
    assert.near(0.3, lin.b[1]:get(1, 1), 1e-3)
    -- with a hidden layer, by every method
    for _, m in ipairs(methods) do
      -- (the bounds below were set with He initialisation, the default before identity outputs
      -- defaulted to Glorot; on this 1-8-1 net either init lands near them, by seed)
      local n = net{1, 8, 1, output = "identity", init = "he"}
      blua.train[m](n, {x = x, y = y}, opts{epochs = 30, batch = 20, lr = 1e-2})
      local err = (n:forward(x) - y):norm() / y:norm()
      assert.is_true(err < (m == "lifted" and 0.1 or 0.03), string.format("%s: relative error %.3f", m, err))
    end
    -- a 1-D target vector is the same N x 1 targets
    local a, b = net{1, 4, 1, output = "identity"}, net{1, 4, 1, output = "identity"}
    blua.train.bregman(a, {x = x, y = y}, opts{epochs = 2})
    blua.train.bregman(b, {x = x, y = y:clone():view(200)}, opts{epochs = 2})
    assert.is_true(same_params(a, b))
  end)

  it("non-integer values where labels are expected are an error with a hint", function()
    local d = classes(16)
    d.y = blua.rand(16, 1)
    for _, m in ipairs(methods) do
      fails_with(function() blua.train[m](net{4, 6, 3}, d, quiet) end, "bad labels", "integers 1..3",
        "for regression give one target column per output")
    end
    fails_with(function() blua.train.gradients("backprop", net{4, 6, 3}, d.x, d.y) end, "bad labels")
  end)

  it("a softmax over one output is refused", function()
    fails_with(function() blua.train.bregman(net{4, 3, 1}, {x = blua.rand(8, 4), y = blua.ones(8, 1)}, quiet) end,
      "softmax over 1 output")
  end)

  it("targets outside the output's range (an infinite loss) are refused", function()
    local d = {x = blua.rand(8, 4), y = blua.randn(8, 2):add(-3)}
    fails_with(function() blua.train.backprop(net{4, 3, 2, output = "relu"}, d, quiet) end,
      "bad targets", "outside the range of the output activation 'relu'")
    d.y = blua.tensor{{0.5, 0.7}}:indexRows{1, 1, 1, 1, 1, 1, 1, 1}
    fails_with(function() blua.train.backprop(net{4, 3, 2}, d, quiet) end, "summing to 1")
    -- one-hot and probability rows are fine for softmax
    d.y = blua.tensor{{0.25, 0.75}}:indexRows{1, 1, 1, 1, 1, 1, 1, 1}
    blua.train.backprop(net{4, 3, 2}, d, opts{epochs = 1})
  end)
end)

describe("1-D labels", function()
  for _, m in ipairs(methods) do
    it(m .. " takes a 1-D y as N labels, exactly as N x 1", function()
      local d = classes(40)
      local a, b = net{4, 6, 2}, net{4, 6, 2}
      local ha = blua.train[m](a, d, opts{epochs = 2, batch = 8, test = d})
      local d1 = {x = d.x, y = d.y:clone():view(40)}
      local hb = blua.train[m](b, d1, opts{epochs = 2, batch = 8, test = d1})
      assert.is_true(same_params(a, b))
      assert.equal(ha[2].train_acc, hb[2].train_acc)
      assert.equal(ha[2].test_acc, hb[2].test_acc)
      assert.equal(blua.metrics.accuracy(a, d), blua.metrics.accuracy(b, d1))
    end)
  end

  it("a 1-D y of the wrong length fails before the first batch", function()
    local d = classes(40)
    local batches = 0
    fails_with(function()
      blua.train.bregman(net{4, 6, 2}, {x = d.x, y = d.y:clone():view(40):narrow(1, 1, 39)},
        opts{on_batch = function() batches = batches + 1 end})
    end, "size mismatch", "y has 39 rows")
    assert.equal(0, batches)
  end)
end)

describe("the activation of a live network", function()
  it("follows net.activations when an entry is replaced or edited", function()
    local x = blua.randn(5, 4)
    local n = net{4, 6, 3}
    n:forward(x) -- caches the relu
    n.activations[1] = {name = "tanh", params = {}}
    local ref = net{4, 6, 3, activation = "tanh"}
    assert.equal(0, (n:forward(x) - ref:forward(x)):abs():max())
    -- edited in place: name and params
    n.activations[1].name = "leaky_relu"
    n.activations[1].params = {slope = 0.2}
    local ref2 = net{4, 6, 3, activation = blua.activation.get("leaky_relu", {slope = 0.2})}
    assert.equal(0, (n:forward(x) - ref2:forward(x)):abs():max())
    n.activations[1].params.slope = 0.5
    assert.equal(0.5, n:activation(1).params.slope)
    -- a name or an activation object becomes a plain spec (so blua.save can store it)
    n.activations[1] = "sigmoid"
    assert.equal("sigmoid", n:activation(1).name)
    assert.same({name = "sigmoid", params = {}}, n.activations[1])
    n.activations[2] = blua.activation.get("identity")
    assert.equal("identity", n:activation(2).name)
    assert.is_nil(getmetatable(n.activations[2]))
    fails_with(function() n.activations[1] = 42; n:activation(1) end, "net.activations[1]")
  end)

  it("uses a redefined Lua activation at once", function()
    blua.activation.define{name = "wr_ramp", forward = function(z) return z:clamp(-1, 1) end}
    local n = net{4, 6, 3, activation = "wr_ramp"}
    local x = blua.randn(5, 4):mul(3)
    local before = n:forward(x)
    blua.activation.define{name = "wr_ramp", forward = function(z) return z:clamp(-0.5, 0.5) end}
    local after = n:forward(x)
    assert.is_true((before - after):abs():max() > 0)
    local Z, X = n:forwardAll(x)
    assert.equal(0, (X[1] - Z[1]:clone():clamp(-0.5, 0.5)):abs():max())
  end)

  it("a trainer uses the edited activation", function()
    local d = classes(32)
    local a = net{4, 6, 2}
    a:forward(d.x)
    a.activations[1] = {name = "tanh", params = {}}
    local b = net{4, 6, 2, activation = "tanh"}
    blua.train.bregman(a, d, opts{epochs = 1, batch = 8})
    blua.train.bregman(b, d, opts{epochs = 1, batch = 8})
    assert.is_true(same_params(a, b))
  end)
end)

describe("a Lua activation as the output layer", function()
  it("without psi and conj: an error up front that names them, at every entry point", function()
    blua.activation.define{name = "wr_out", forward = function(z) return z:clamp(-1, 1) end}
    local d = classes(16)
    for _, m in ipairs(methods) do
      fails_with(function() blua.train[m](net{4, 6, 2, output = "wr_out"}, d, quiet) end,
        "output activation 'wr_out' has no loss", "psi and conj")
      fails_with(function() blua.train.gradients(m, net{4, 6, 2, output = "wr_out"}, d.x, d.y) end, "psi and conj")
    end
  end)

  it("with psi and conj: trains as the built-in it defines (clip)", function()
    -- clip to [-1, 1]: Ψ is the indicator of [-1, 1]; Φ*(z) = z²/2 for |z| ≤ 1, |z| − 1/2 beyond
    blua.activation.define{name = "wr_clip", forward = function(z) return z:clamp(-1, 1) end,
      psi = function(u) return (u:max() <= 1 and u:min() >= -1) and 0 or math.huge end,
      conj = function(z)
        local a = z:clone():abs()
        local inside = a:clone():clamp(0, 1)
        return inside:clone():cmul(a):sum() - 0.5 * inside:dot(inside)
      end}
    local d = classes(64)
    for _, m in ipairs(methods) do
      local a, b = net{4, 8, 2, output = "wr_clip"}, net{4, 8, 2, output = "clip"}
      local ha = blua.train[m](a, d, opts{epochs = 2, batch = 16})
      local hb = blua.train[m](b, d, opts{epochs = 2, batch = 16})
      assert.near(hb[2].loss, ha[2].loss, 1e-4 * math.abs(hb[2].loss))
      assert.is_true((a.W[1] - b.W[1]):abs():max() < 1e-4, m)
    end
  end)
end)

describe("other silently wrong inputs", function()
  it("labels out of range, NaN or 0-based are refused before training", function()
    local d = classes(16)
    local function with(v)
      local y = d.y:clone()
      y:set(5, 1, v)
      return {x = d.x, y = y}
    end
    for _, m in ipairs(methods) do
      fails_with(function() blua.train[m](net{4, 6, 2}, with(3), quiet) end, "bad labels", "1..2")
      fails_with(function() blua.train[m](net{4, 6, 2}, with(0 / 0), quiet) end, "NaN")
      fails_with(function() blua.train[m](net{4, 6, 2}, {x = d.x, y = d.y:clone():add(-1)}, quiet) end, "1-based")
    end
    fails_with(function() blua.metrics.accuracy(net{4, 6, 2}, with(3)) end, "bad labels")
    fails_with(function() blua.metrics.confusion(net{4, 6, 2}, with(1.5)) end, "bad labels")
  end)

  it("x with the wrong columns, or 1-D, is refused by trainers and metrics", function()
    local d = classes(16)
    local wide = {x = blua.randn(16, 5), y = d.y}
    for _, m in ipairs(methods) do
      fails_with(function() blua.train[m](net{4, 6, 2}, wide, quiet) end, "size mismatch", "takes 4 inputs")
      fails_with(function() blua.train[m](net{4, 6, 2}, {x = blua.randn(16), y = d.y}, quiet) end, "1-D")
    end
    fails_with(function() blua.metrics.accuracy(net{4, 6, 2}, wide) end, "size mismatch")
    fails_with(function() blua.metrics.accuracy(net{4, 6, 2}, {x = d.x, y = blua.ones(15, 1)}) end, "size mismatch")
  end)

  it("accuracy of a network without class labels is an error, not a number", function()
    local x = blua.rand(8, 1)
    fails_with(function() net{1, 3, 1, output = "identity"}:predict(x) end, "has 1 output", "net:forward")
    fails_with(function() blua.metrics.accuracy(net{1, 3, 1, output = "identity"}, {x = x, y = x}) end,
      "class labels expected")
  end)

  it("options of the wrong type or range are refused", function()
    local d = classes(8)
    local cases = {
      {{seed = 1.5}, "'seed' must be an integer"}, {{momentum = "0.9"}, "'momentum' must be a number"},
      {{decay = 2}, "'decay' must be in (0, 1]"}, {{verbose = 1}, "'verbose' must be a boolean"},
      {{log = 3}, "'log' must be a string"}, {{threads = 0}, "'threads' must be at least 1"},
      {{threads = "2"}, "'threads' must be an integer"}, {{start_epoch = 3, epochs = 2}, "'start_epoch'"},
      {{lr = math.huge}, "'lr' must be finite"}, {{optim_state = 1}, "'optim_state' must be a table"},
      {{on_batch = true}, "'on_batch' must be a function"}, {{weight_decay = -1}, "'weight_decay'"},
    }
    for _, c in ipairs(cases) do
      local o = opts(c[1])
      local err = fails_with(function() blua.train.bregman(net{4, 3, 2}, d, o) end, c[2])
      -- the message points at this file, the caller
      assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    end
    -- options in a second table would be ignored: refused, pointing at the caller too
    for _, m in ipairs{"bregman", "lifted", "backprop"} do
      local err = fails_with(function() blua.train[m](net{4, 3, 2}, d, {epochs = 1}, {lr = 1}) end,
        "blua.train." .. m .. ": (net, data [, opts]) expected, got 1 more argument; every option goes in opts")
      assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    end
  end)

  it("an argument past the last a metric or blua.save/load takes is refused, not ignored", function()
    local d, n = classes(8), net{4, 3, 2}
    local calls = {
      {"accuracy", function() local _ = blua.metrics.accuracy(n, d, {}) end, "(net, data) expected, got 1 more argument"},
      {"psnr", function() local _ = blua.metrics.psnr(n, d, 1, {clip = true}) end, "(net, data [, peak]) expected, got 1"},
      {"sparsity", function() local _ = blua.metrics.sparsity(n, d, 1, 2, 3) end, "(net, data, l) expected, got 2 more arguments"},
      {"topk", function() local _ = blua.metrics.topk(n, d, 1, nil) end, "(net, data, k) expected, got 1 more"},
      {"mean_sd", function() local _ = blua.metrics.mean_sd({1, 2}, 3) end, "(xs) expected, got 1 more argument"},
    }
    for _, c in ipairs(calls) do
      local err = fails_with(c[2], "blua.metrics." .. c[1] .. ": " .. c[3])
      assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err) -- at the caller's line
    end
    -- the metrics' own checks still point at the caller through the argument check
    local err = fails_with(function() blua.metrics.topk(n, d, 0) end, "k must be a positive integer")
    assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    err = fails_with(function() blua.metrics.accuracy(n, {x = d.x}) end, "a data set {x =, y =} expected")
    assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    -- the limits themselves still work
    assert.are.equal(blua.metrics.accuracy(n, d), blua.metrics.topk(n, d, 1))
    local path = os.tmpname()
    fails_with(function() blua.save(path, n, {compress = true}) end, "blua.save: (path, obj) expected, got 1 more argument")
    blua.save(path, n)
    err = fails_with(function() blua.load(path, "nn") end, "blua.load: (path) expected, got 1 more argument")
    assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    assert.are.equal(blua.metrics.accuracy(n, d), blua.metrics.accuracy(blua.load(path), d))
    os.remove(path)
    -- the same class in the image, plot and inversion functions
    local img = blua.rand(4, 4)
    local more = {
      {function() blua.image.resize(img, 2, 2, 2) end, "blua.image.resize: (t, h, w) expected, got 1 more argument"},
      {function() blua.image.save(path, img, {}, "png") end, "blua.image.save: (path, t [, opts]) expected, got 1"},
      {function() blua.image.load(path, nil, nil) end, "blua.image.load: (path [, opts]) expected, got 1 more"},
      {function() blua.plot.available(true) end, "blua.plot.available: () expected, got 1 more argument"},
      {function() blua.plot.lines({path = path}, {}) end, "blua.plot.lines: (opts) expected, got 1 more argument"},
      {function() blua.invert(n, blua.zeros(1, 2), {}, {}) end, "blua.invert: (net, y [, opts]) expected, got 1 more"},
    }
    for _, c in ipairs(more) do
      err = fails_with(c[1], c[2])
      assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    end
    -- their own checks still point at the caller
    err = fails_with(function() blua.image.resize(img, 0, 2) end, "blua.image.resize")
    assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    assert.are.same({4, 4}, {blua.image.resize(img, 4, 4):size()})
  end)

  it("an argument past the last a blua.data function takes is refused, not ignored", function()
    local d = classes(8)
    local path = os.tmpname()
    local f = assert(io.open(path, "w")); f:write("1,2\n3,4\n"); f:close()
    local calls = {
      {"roots", function() blua.data.roots(true) end, "() expected, got 1 more argument"},
      {"mnist", function() blua.data.mnist("test", {max = 10}) end, "(split) expected, got 1 more argument"},
      {"fashion", function() blua.data.fashion("test", 1, 2) end, "(split) expected, got 2 more arguments"},
      {"idx", function() blua.data.idx(path, {}, {}) end, "(path [, opts]) expected, got 1 more"},
      {"subset", function() blua.data.subset(d, 1, 4, true) end, "(d, first, count) expected, got 1 more"},
      {"onehot", function() blua.data.onehot(d.y, 2, 0) end, "(y [, classes]) expected, got 1 more"},
      {"batches", function() blua.data.batches(d, 4, {}, {shuffle = false}) end, "(d, size [, opts]) expected, got 1 more"},
      {"centre", function() blua.data.centre(d, nil, true) end, "(d [, mean]) expected, got 1 more"},
      {"center", function() blua.data.center(d, nil, true) end, "(d [, mean]) expected, got 1 more"},
      {"uncentre", function() blua.data.uncentre(d.x, d.x, 1) end, "(t, mean) expected, got 1 more"},
      {"uncenter", function() blua.data.uncenter(d.x, d.x, 1) end, "(t, mean) expected, got 1 more"},
      {"noisy", function() blua.data.noisy(d, 0.1, {}, 5) end, "(d, sigma [, opts]) expected, got 1 more"},
      {"csv", function() blua.data.csv(path, {}, {label = 2}) end, "(path [, opts]) expected, got 1 more"},
    }
    local checked = {}
    for _, c in ipairs(calls) do
      local err = fails_with(c[2], "blua.data." .. c[1] .. ": " .. c[3])
      assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err) -- at the caller's line
      checked[c[1]] = true
    end
    -- every public function of blua.data is in the list above
    for name, v in pairs(blua.data) do
      if type(v) == "function" then assert.is_true(checked[name], "unchecked blua.data." .. name) end
    end
    -- their own checks still point at the caller, and the calls within the limits still work
    local err = fails_with(function() blua.data.mnist("dev") end, "blua.data.mnist")
    assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    err = fails_with(function() blua.data.subset(d, 1.5, 2) end, "blua.data.subset")
    assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
    assert.are.equal(4, blua.data.subset(d, 1, 4).n)
    assert.are.equal(2, blua.data.csv(path).n)
    os.remove(path)
  end)

  it("an argument past the last a tensor reduction takes is refused, not ignored", function()
    local t = blua.tensor{{1, -2}, {3, 4}}
    local calls = {
      {function() return t:norm(1) end, "t:norm: () expected, got 1 more argument"},
      {function() return t:sum(2, true) end, "t:sum: ([dim]) expected, got 1 more argument"},
      {function() return t:mean(1, 2, 3) end, "t:mean: ([dim]) expected, got 2 more arguments"},
      {function() return t:max(2, true) end, "t:max: ([dim]) expected, got 1 more"},
      {function() return t:min(nil, 1) end, "t:min: ([dim]) expected, got 1 more"},
      {function() return t:argmax(2, 1) end, "t:argmax: ([dim]) expected, got 1 more"},
      {function() return t:dot(t, 2) end, "t:dot: (u) expected, got 1 more"},
      {function() return t:allFinite(true) end, "t:allFinite: () expected, got 1 more"},
    }
    for _, c in ipairs(calls) do fails_with(c[1], c[2]) end
    -- within the limits they still work
    assert.are.equal(30, t:dot(t))
    assert.is_true(math.abs(t:norm() - math.sqrt(30)) < 1e-6)
    assert.are.equal(6, t:sum())
    assert.are.same({2, 1}, {t:sum(2):size()})
    assert.are.equal(4, t:max())
  end)

  it("Torch forms blua does not take are errors, not results of another form", function()
    local t, u = blua.tensor{{1, -2}, {3, 4}}, blua.tensor{{1, 1}, {1, 1}}
    local calls = {
      -- Torch's c:mm(a, b) puts a*b in c (blua takes it, below); a third argument is not ignored
      {function() return t:mm(u, u, u) end, "t:mm: (u | a, b) expected, got 1 more argument"},
      {function() return t:addmm(2, 1, 1, u, u) end, "t:addmm: ([beta,] [alpha,] a, b) expected, got 1 more argument"},
      {function() return t:addmm(u, 2) end, "t:addmm: ([beta,] [alpha,] a, b) expected"},
      -- Torch's c:add(a, b) and c:cmul(a, b) write a+b, a.*b into c; t:add(u, 2) would have added u alone
      {function() return t:add(u, u) end, "t:add: (u | a | a, u) expected, got a tensor after the tensor"},
      {function() return t:add(u, 2) end, "t:add: (u | a | a, u) expected, got a number after the tensor"},
      {function() return t:add(2, u, u) end, "t:add: (u | a | a, u) expected, got 1 more argument"},
      {function() return t:cmul(u, u) end, "t:cmul: (u) expected, got 1 more argument"},
      {function() return t:clamp(0, 1, 2) end, "t:clamp: ([lo [, hi]]) expected, got 1 more argument"},
      {function() return t:narrow(1, 1, 1, 2) end, "t:narrow: (dim, first, len) expected, got 1 more argument"},
      {function() return t:map(function(v) return v end, 2) end, "t:map: (f) expected, got 1 more argument"},
      {function() return t:t(1, 2) end, "t:t: () expected, got 2 more arguments"},
      {function() return t:get(1, 1, 1) end, "t:get: (one index per dimension) expected, got 1 more"},
      {function() return t:set(1, 1, 5, 6) end, "t:set: (one index per dimension, v) expected, got 1 more"},
      {function() return t:view({4}, 1) end, "'view': sizes as one table or as numbers, got a table and 1 more argument"},
      {function() return blua.zeros({2, 2}, 3) end, "'zeros': sizes as one table or as numbers, got a table and 1 more"},
    }
    for _, c in ipairs(calls) do fails_with(c[1], c[2]) end
    assert.are.same({{1, -2}, {3, 4}}, t:totable()) -- nothing was changed on the way to the errors
    -- the forms blua takes still work
    assert.are.same({{3, 0}, {5, 6}}, t:clone():add(2, u):totable())
    assert.are.same({{2, -1}, {4, 5}}, t:clone():add(u, nil):totable())
    assert.are.same({4}, {t:view({4}, nil):size()})
    assert.are.equal(4, t:get(2, 2))
  end)

  it("the module's tensor functions refuse an argument past their last", function()
    local t = blua.tensor{1, 2}
    local calls = {
      -- Torch's torch.eye(n, m) is n x m; ignoring m would have returned n x n
      {function() return blua.eye(2, 3) end, "blua.eye: (n) expected, got 1 more argument"},
      {function() return blua.cat({t, t}, 1, 2) end, "blua.cat: ({t1, t2, ...} [, d]) expected, got 1 more"},
      {function() return blua.randperm(4, 2) end, "blua.randperm: (n) expected, got 1 more"},
      {function() return blua.isTensor(t, 1) end, "blua.isTensor: (x) expected, got 1 more"},
      {function() return blua.manualSeed(1, 2) end, "blua.manualSeed: (n) expected, got 1 more"},
      {function() return blua.setNumThreads(1, 2) end, "blua.setNumThreads: (n) expected, got 1 more"},
      {function() return blua.getNumThreads(1) end, "blua.getNumThreads: () expected, got 1 more"},
      {function() return blua.initialSeed(1) end, "blua.initialSeed: () expected, got 1 more"},
      {function() return blua.clock(1) end, "blua.clock: () expected, got 1 more"},
      {function() return blua.blasInfo(1) end, "blua.blasInfo: () expected, got 1 more"},
      {function() return blua.tensor({1, 2}, 3) end, "blua.tensor: ({...} | n1, n2, ...) expected, got 1 more"},
    }
    for _, c in ipairs(calls) do fails_with(c[1], c[2]) end
    assert.are.same({2, 2}, {blua.eye(2):size()})
    assert.are.same({4}, {blua.cat({t, t}, 1):size()})
    assert.are.same({2, 3}, {blua.tensor(2, 3):size()})
  end)

  it("every tensor method refuses an argument past its last", function()
    -- view and reshape take 1 to 8 sizes (or one table), counted by the size reader itself
    local variadic = {view = "1..8 sizes", reshape = "1..8 sizes"}
    local t = blua.tensor{{1, 2}, {3, 4}}
    local checked = 0
    for name, f in pairs(blua.Tensor) do
      local err = fails_with(function() return f(t, 1, 1, 1, 1, 1, 1, 1, 1, 1) end)
      if variadic[name] then
        assert.is_truthy(tostring(err):find("9 sizes given", 1, true), name .. ": " .. tostring(err))
      else
        assert.is_truthy(tostring(err):find("t:" .. name .. ": (", 1, true), name .. ": " .. tostring(err))
        assert.is_truthy(tostring(err):find("expected, got %d more argument"), name .. ": " .. tostring(err))
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 60, checked)
    assert.are.same({{1, 2}, {3, 4}}, t:totable())
  end)

  it("an argument past the last a network or progress-bar method takes is refused, not ignored", function()
    local d, n = classes(8), net{4, 3, 2}
    local calls = {
      {"net:forward", function() n:forward(d.x, d.y) end, "(x) expected, got 1 more argument"},
      {"net:scores", function() n:scores(d.x, true) end, "(x) expected, got 1 more"},
      {"net:predict", function() n:predict(d.x, 1) end, "(x) expected, got 1 more"},
      {"net:forwardAll", function() n:forwardAll(d.x, {}) end, "(x) expected, got 1 more"},
      {"net:activation", function() n:activation(1, 2) end, "(l) expected, got 1 more"},
      {"net:layer", function() n:layer(1, 2) end, "(l) expected, got 1 more"},
      {"net:block", function() n:block(1, 2) end, "(l) expected, got 1 more"},
      {"net:nLayers", function() n:nLayers(1) end, "() expected, got 1 more"},
      {"net:parameters", function() n:parameters(true) end, "() expected, got 1 more"},
      {"net:nParameters", function() n:nParameters(true) end, "() expected, got 1 more"},
      {"net:clone", function() n:clone("weight", "bias") end, "() expected, got 2 more arguments"},
      {"net:add", function() blua.nn.Sequential():add(blua.nn.Linear(4, 2), "relu") end, "(module) expected, got 1 more"},
      {"blua.nn.mlp", function() blua.nn.mlp({4, 2}, {}, {output = "identity"}) end, "(spec [, opts]) expected, got 1 more"},
      {"blua.progress.new", function() blua.progress.new({}, {tty = false}) end, "(opts) expected, got 1 more"},
      {"blua.progress.plural", function() blua.progress.plural(2, "epoch", "epochs", 1) end, "(count, noun [, many]) expected"},
      {"blua.progress.format_time", function() blua.progress.format_time(1, "s") end, "(s) expected, got 1 more"},
    }
    local out = io.open("/dev/null", "w")
    local bar = blua.progress.new{total = 2, out = out, tty = false}
    calls[#calls + 1] = {"bar:update", function() bar:update(1, "x", "y") end, "(done [, note]) expected, got 1 more"}
    calls[#calls + 1] = {"bar:line", function() bar:line(1, "x", "y") end, "(done [, note]) expected, got 1 more"}
    calls[#calls + 1] = {"bar:finish", function() bar:finish("x", 1) end, "([note]) expected, got 1 more"}
    calls[#calls + 1] = {"bar:abort", function() bar:abort(true) end, "() expected, got 1 more"}
    for _, c in ipairs(calls) do
      local err = fails_with(c[2], c[1] .. ": " .. c[3])
      assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err) -- at the caller's line
    end
    -- every method of a network is in the list above
    for name, v in pairs(getmetatable(n)) do
      if type(v) == "function" and not name:find("^__") then
        local listed = false
        for _, c in ipairs(calls) do listed = listed or c[1] == "net:" .. name end
        assert.is_true(listed, "unchecked net:" .. name)
      end
    end
    -- within the limits they still work, and their own errors still point at the caller
    assert.are.same({8, 2}, {n:forward(d.x):size()})
    assert.are.equal(2, n:nLayers())
    assert.are.equal("2 epochs", blua.progress.plural(2, "epoch"))
    assert.is_number(bar:finish("done"))
    out:close()
    fails_with(function() n:forward(blua.zeros(2, 3)) end, "size mismatch")
    local err = fails_with(function() blua.nn.mlp({4, 2}, 5) end, "blua.nn.mlp")
    assert.is_truthy(err:find("wrong_results_spec.lua", 1, true), err)
  end)

  it("misspelt or wrongly shaped options of the building blocks are refused, not ignored", function()
    local n = net{4, 6, 2}
    local d = classes(8)
    fails_with(function() blua.train.gradients("bregman", n, d.x, d.y, {loss_weigth = 3}) end, "unknown option 'loss_weigth'")
    fails_with(function() blua.train.gradients("bregman", n, d.x, d.y, {gamma = -1}) end, "'gamma' must be a positive number")
    fails_with(function() blua.train.gradients("sgd", n, d.x, d.y) end, "unknown method 'sgd'")
    -- a 6x8 X[1] has the 8x6 one's element count: a plain copy would take it
    fails_with(function() blua.train.gradients("bregman", n, d.x, d.y, {X = {blua.zeros(6, 8)}}) end,
      "X[1] is 6x8, layer 1 needs 8x6")
    local _, X = n:forwardAll(d.x)
    X[2] = blua.data.onehot(d.y, 2)
    X[1] = X[1]:clone():view(6, 8)
    fails_with(function() blua.train.xstep("bregman", n, X, 1) end, "X[1] is 6x8")
    fails_with(function() blua.train.xstep("bregman", n, X, 1, {mu_scale = "1"}) end, "'mu_scale' must be a positive number")
    fails_with(function() blua.metrics.energy(n, d, {penalty = "quadratc"}) end, "unknown penalty 'quadratc'")
    fails_with(function() blua.metrics.energy(n, d, {gama = 1}) end, "unknown option 'gama'")
    fails_with(function() blua.nn.mlp{2, 3, activation = {"relu"}} end, "1 activations given for 0 hidden layers")
    -- an energy term that cannot be computed is an error, not NaN
    blua.activation.define{name = "wr_noenergy", forward = function(z) return z:clamp(0, 1) end}
    local u = net{4, 6, 2, activation = "wr_noenergy"}
    fails_with(function() blua.metrics.energy(u, d) end, "layer 1's activation 'wr_noenergy' has no Bregman penalty")
    assert.is_true(blua.metrics.energy(u, d, {penalty = "quadratic"}) < math.huge)
  end)

  it("a NaN activation parameter is refused (it passed the range checks)", function()
    for _, c in ipairs{{"leaky_relu", {slope = 0 / 0}}, {"clip", {lo = 0 / 0}}, {"soft_threshold", {lambda = 0 / 0}}} do
      fails_with(function() blua.activation.get(c[1], c[2]) end, "must be a number, got NaN")
    end
    local err = fails_with(function()
      blua.nn.mlp{3, 4, 2, activation = {name = "leaky_relu", params = {slope = 0 / 0}}}
    end, "got NaN")
    assert.is_truthy(err:find("wrong_results_spec.lua:", 1, true), err)
  end)

  it("train.xstep refuses a layer that is not hidden", function()
    local n = net{4, 6, 2}
    local _, X = n:forwardAll(blua.randn(3, 4))
    X[2] = blua.data.onehot(blua.ones(3, 1), 2)
    for _, l in ipairs{0, 2, 1.5} do
      fails_with(function() blua.train.xstep("bregman", n, X, l) end, "l must be a hidden layer")
    end
  end)

  it("the X-step next to a non-softmax output is the safe step 1/(β‖W_L‖²)", function()
    -- the squared error's curvature is 1; softmax cross-entropy's is at most 1/2
    for _, out in ipairs{"identity", "softmax"} do
      local n = net{4, 6, 3, output = out}
      local _, X = n:forwardAll(blua.randn(5, 4))
      X[2] = blua.data.onehot(blua.ones(5, 1), 3)
      local mu = blua.train.xstep("bregman", n, X, 1, {loss_weight = 0.5})
      local s = blua.spectralNorm(n.W[2], 50)
      local c = out == "softmax" and 0.5 or 1
      assert.near(1 / (c * 0.5 * s * s), mu, 1e-3 * mu)
    end
  end)
end)

describe("in-place methods whose source overlaps the destination", function()
  -- Each reads its source as it was before the call: t:add(t:t()) adds t's transpose, not a
  -- half-updated one (the rows written first were read again later). Each case is compared
  -- with the same call on a private copy of the source; 1 and 2 threads, small and past the
  -- threads' threshold.
  local function cases(n)
    local function src_t(t) return t:t() end
    local function lower(t) return t:narrow(1, 1, n - 1) end
    local function upper(t) return t:narrow(1, 2, n - 1) end
    return {
      {"add", function(t, u) return t:add(u) end, src_t},
      {"add(a, u)", function(t, u) return t:add(-2, u) end, src_t},
      {"sub", function(t, u) return t:sub(u) end, src_t},
      {"cmul", function(t, u) return t:cmul(u) end, src_t},
      {"cdiv", function(t, u) return t:cdiv(u) end, src_t},
      {"cmax", function(t, u) return t:cmax(u) end, src_t},
      {"cmin", function(t, u) return t:cmin(u) end, src_t},
      {"copy", function(t, u) return t:copy(u) end, src_t},
      {"shifted add", function(t, u) upper(t):add(u); return t end, lower},
      {"shifted copy", function(t, u) upper(t):copy(u); return t end, lower},
      {"shifted copy, other way", function(t, u) lower(t):copy(u); return t end, upper},
      {"addRow", function(t, u) return t:addRow(u) end, function(t) return t:select(1, 2) end},
    }
  end
  for _, n in ipairs{3, 200} do
    for _, threads in ipairs{1, 2} do
      it(string.format("%d x %d, %d thread(s)", n, n, threads), function()
        local saved = blua.getNumThreads()
        blua.setNumThreads(threads)
        for _, c in ipairs(cases(n)) do
          blua.manualSeed(4)
          local t = blua.rand(n, n):add(0.5)
          local want = c[2](t:clone(), c[3](t):clone())
          local got = c[2](t, c[3](t))
          assert.is_true(want:equal(got), c[1])
        end
        blua.setNumThreads(saved)
      end)
    end
  end
end)
