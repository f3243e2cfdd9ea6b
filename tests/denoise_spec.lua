-- Denoising data, regression metrics and image grids: blua.data.centre / uncentre / noisy,
-- blua.metrics.mse / psnr / sparsity, blua.plot.images.
local blua = require "blua"
local support = require "tests.support"

local function identity_net(n)
  local net = blua.nn.mlp{n, n, output = "identity"}
  net.W[1]:copy(blua.eye(n))
  return net
end

describe("blua.data.centre", function()
  it("subtracts the column mean, keeps it, and uncentre undoes it", function()
    local d = {x = blua.tensor{{1, 2}, {3, 6}, {5, 10}}, y = blua.tensor{{1}, {2}, {3}}, n = 3}
    local c = blua.data.centre(d)
    assert.near(3, c.mean:get(1, 1), 1e-6)
    assert.near(6, c.mean:get(1, 2), 1e-6)
    assert.near(0, c.x:sumRows():abs():max(), 1e-5)
    assert.near(-2, c.x:get(1, 1), 1e-6)
    assert.equal(d.y, c.y)
    assert.near(0, blua.data.uncentre(c.x, c):add(-1, d.x):abs():max(), 1e-6)
    assert.near(1, d.x:get(1, 1), 0) -- the original is untouched
    -- a second set centred with the first one's mean
    local t = blua.data.center({x = blua.tensor{{3, 6}}, y = blua.tensor{{1}}}, c.mean)
    assert.near(0, t.x:abs():max(), 1e-6)
  end)
  it("refuses a mean of the wrong size", function()
    local d = {x = blua.zeros(2, 3), y = blua.zeros(2, 1)}
    assert.has_error(function() blua.data.centre(d, blua.zeros(1, 2)) end,
      "size mismatch in 'blua.data.centre': mean must be a 1 x 3 tensor")
  end)
end)

describe("blua.data.noisy", function()
  it("adds seeded Gaussian noise of level sigma and keeps the clean rows as targets", function()
    local d = {x = blua.rand(200, 50), y = blua.zeros(200, 1), n = 200}
    local a = blua.data.noisy(d, 0.2, {seed = 7})
    local b = blua.data.noisy(d, 0.2, {seed = 7})
    local c = blua.data.noisy(d, 0.2, {seed = 8})
    assert.near(0, a.x:clone():add(-1, b.x):abs():max(), 0)
    assert.is_true(a.x:clone():add(-1, c.x):abs():max() > 0.1)
    assert.near(0, a.y:clone():add(-1, d.x):abs():max(), 0)
    local noise = a.x:clone():add(-1, d.x)
    local sd = math.sqrt(noise:dot(noise) / noise:nElement())
    assert.near(0.2, sd, 0.005)
    assert.near(0, noise:mean(), 0.005)
    assert.equal(d.y, a.labels)
    -- σ = 0.2 on the [0, 1] scale is a PSNR of 10 log10(1 / 0.04) ≈ 13.98 dB
    assert.near(13.98, blua.metrics.psnr(a.x, a.y), 0.1)
  end)
  it("refuses bad levels and options", function()
    local d = {x = blua.zeros(2, 2), y = blua.zeros(2, 1)}
    assert.has_error(function() blua.data.noisy(d, -1) end)
    assert.has_error(function() blua.data.noisy(d, 0.1, {sed = 1}) end,
      "bad option in 'blua.data.noisy': unknown option 'sed' (known: seed)")
  end)
end)

describe("blua.metrics.mse and psnr", function()
  it("are the per-entry mean square and 10 log10(1 / mse), invariant to a common offset", function()
    local a, b = blua.zeros(4, 5), blua.zeros(4, 5):fill(0.1)
    assert.near(0.01, blua.metrics.mse(a, b), 1e-8)
    assert.near(20, blua.metrics.psnr(a, b), 1e-5)
    assert.near(20, blua.metrics.psnr(a:clone():add(-0.4), b:clone():add(-0.4)), 1e-4)
    assert.near(20 + 20 * math.log(2, 10), blua.metrics.psnr(a, b, 2), 1e-5)
  end)
  it("measure a network's output against the target matrix", function()
    local x = blua.rand(30, 6)
    local data = {x = x, y = x:clone():add(0.05)}
    local net = identity_net(6)
    assert.near(0.0025, blua.metrics.mse(net, data), 1e-7)
    assert.near(26.0206, blua.metrics.psnr(net, data), 1e-3)
    assert.has_error(function() blua.metrics.mse(net, {x = x, y = blua.zeros(30, 1)}) end,
      "size mismatch in 'blua.metrics.mse': y needs 6 columns (targets), got 30x1")
  end)
  it("with clip = true score the output clipped to [0, peak] on the image scale", function()
    -- clean images in [0, 1]; the output overshoots both ends by 0.2 and misses inside by 0.1
    local y = blua.tensor{{0, 1, 0.5, 0.5}}
    local out = blua.tensor{{-0.2, 1.2, 0.6, 0.4}}
    assert.near(10 * math.log(1 / ((0.04 + 0.04 + 0.01 + 0.01) / 4), 10), blua.metrics.psnr(out, y), 1e-4)
    assert.near(10 * math.log(1 / (0.02 / 4), 10), blua.metrics.psnr(out, y, {clip = true}), 1e-4)
    -- a centred set: the clip happens after adding the mean back, so the result is the same
    local mean = blua.tensor{{0.3, 0.3, 0.3, 0.3}}
    local net = identity_net(4)
    local set = {x = out:clone():addRow(mean, -1), y = y:clone():addRow(mean, -1), mean = mean}
    assert.near(10 * math.log(1 / (0.02 / 4), 10), blua.metrics.psnr(net, set, {clip = true}), 1e-4)
    assert.near(blua.metrics.psnr(out, y), blua.metrics.psnr(net, set), 1e-4)
    assert.has_error(function() blua.metrics.psnr(out, y, {clamp = true}) end,
      "blua.metrics.psnr: unknown option 'clamp' (accepted: clip, peak)")
  end)
end)

describe("blua.metrics.sparsity", function()
  it("is the fraction of exact zeros of a layer's activations", function()
    local net = blua.nn.mlp{2, 4, 2, activation = "relu", output = "identity"}
    net.W[1]:copy(blua.tensor{{1, -1, 0, 0}, {0, 0, 1, -1}})
    local x = blua.tensor{{1, 2}, {-1, 3}, {2, -2}}
    -- layer 1 = relu(x1, -x1, x2, -x2): each row has exactly two zeros
    assert.near(0.5, blua.metrics.sparsity(net, {x = x, y = blua.zeros(3, 2)}, 1), 1e-12)
    net.b[1]:fill(-10)
    assert.near(1, blua.metrics.sparsity(net, {x = x, y = blua.zeros(3, 2)}, 1), 1e-12)
    assert.has_error(function() blua.metrics.sparsity(net, {x = x, y = blua.zeros(3, 2)}, 3) end,
      "bad argument #3 to 'blua.metrics.sparsity' (a layer in 1..2 expected, got 3)")
  end)
end)

describe("blua.plot.images", function()
  it("writes a PNG grid", function()
    if not blua.plot.available() then pending("gnuplot not installed") return end
    local path = os.tmpname() .. ".png"
    local a, b = blua.rand(5, 12), blua.rand(5, 12)
    assert.is_true(blua.plot.images{path = path, rows = {a, b}, shape = {3, 4}, labels = {"a", "b"},
      mean = blua.zeros(1, 12)})
    local bytes = support.read_file(path)
    os.remove(path)
    assert.equal("\137PNG", bytes:sub(1, 4))
  end)
  it("refuses rows of the wrong width", function()
    assert.has_error(function() blua.plot.images{path = "x.png", rows = {blua.zeros(2, 5)}, shape = {2, 2}} end,
      "size mismatch in 'blua.plot.images': row 1 must be N x 4 (shape 2x2)")
  end)
end)

describe("blua.nn.mlp's default initialisation", function()
  it("is He for classifiers and Glorot for regression and autoencoders", function()
    blua.manualSeed(1)
    local clf = blua.nn.mlp{400, 300, 10}
    local ae = blua.nn.mlp{400, 300, 400, output = "identity"}
    assert.equal("he", clf.init)
    assert.equal("glorot", ae.init)
    local function sd(t) return math.sqrt(t:dot(t) / t:nElement()) end
    assert.near(math.sqrt(2 / 400), sd(clf.W[1]), 0.002)
    assert.near(math.sqrt(2 / 700), sd(ae.W[1]), 0.002)
    assert.equal("he", blua.nn.mlp{400, 300, 400, output = "identity", init = "he"}.init)
  end)
end)

describe("Bregman defaults for regression", function()
  it("are beta = 1 and mu = 2 with an identity output, and unchanged for classifiers", function()
    local reg = blua.train.defaults("bregman", blua.nn.mlp{4, 6, 3, output = "identity"})
    assert.equal(1.0, reg.loss_weight)
    assert.equal(2.0, reg.mu)
    assert.is_false(reg.mu_last)
    for _, net in ipairs{blua.nn.mlp{4, 6, 3}, blua.nn.mlp{4, 6, 3, output = "sigmoid"}} do
      local o = blua.train.defaults("bregman", net)
      assert.equal(0.1, o.loss_weight)
      assert.equal(1.0, o.mu)
      assert.is_false(o.mu_last)
    end
    assert.equal(0.1, blua.train.defaults("bregman").loss_weight)
    assert.equal(1.0, blua.train.defaults("lifted", blua.nn.mlp{4, 6, 3, output = "identity"}).mu)
    -- back-prop's Adam rate: Bregman's 2e-3 for regression, 4e-3 for classifiers
    assert.equal(2e-3, blua.train.defaults("backprop", blua.nn.mlp{4, 6, 3, output = "identity"}).lr)
    assert.equal(4e-3, blua.train.defaults("backprop", blua.nn.mlp{4, 6, 3}).lr)
    assert.equal(4e-3, blua.train.defaults("backprop", blua.nn.mlp{4, 6, 3, output = "sigmoid"}).lr)
  end)
  it("are what a run without options uses", function()
    blua.manualSeed(3)
    local x = blua.rand(40, 4)
    local data = {x = x, y = x:clone():mul(0.5)}
    local function trained(opts, output)
      blua.manualSeed(4)
      local net = blua.nn.mlp{4, 6, 4, output = output}
      opts.epochs, opts.batch, opts.verbose = 2, 16, false
      blua.train.bregman(net, data, opts)
      return net.W[1]
    end
    local same = trained({}, "identity"):add(-1, trained({loss_weight = 1, mu = 2}, "identity")):abs():max()
    assert.equal(0, same)
    local other = trained({}, "identity"):add(-1, trained({loss_weight = 0.1, mu = 1}, "identity")):abs():max()
    assert(other > 0, "the regression defaults made no difference")
    -- a sigmoid output is not regression here: the classifier defaults
    assert.equal(0, trained({}, "sigmoid"):add(-1, trained({loss_weight = 0.1, mu = 1}, "sigmoid")):abs():max())
  end)
end)
