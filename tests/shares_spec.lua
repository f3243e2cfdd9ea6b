-- Every batch's gradient is the sum, in share order, of its row shares' gradients
-- (batch_shards, default 2): the trained bits depend on the shares, not on the thread count
-- nor on which code path ran the shares.
package.path = "./?.lua;" .. package.path
local blua = require "blua"
local support = require "tests.support"

local function data_and_net(sizes, n)
  blua.manualSeed(12)
  local x = blua.rand(n, sizes[1])
  local y = blua.zeros(n, 1)
  for i = 1, n do y:set(i, 1, x:get(i, 1) + x:get(i, 2) > 1 and 2 or 1) end
  return {x = x, y = y, n = n}, blua.nn.mlp{activation = "relu", output = "softmax", table.unpack(sizes)}
end

local same_bits = support.same_params

-- One epoch of `method` on a network of `sizes` and `rows` samples with 1 and with 2 threads:
-- whether both give the same bits.
local function same_bits_over_threads(method, sizes, rows, batch)
  local data, a = data_and_net(sizes, rows)
  local _, b = data_and_net(sizes, rows)
  local o = {epochs = 1, batch = batch, verbose = false, eval_train = false}
  o.threads = 1
  blua.train[method](a, data, o)
  o.threads = 2
  blua.train[method](b, data, o)
  return same_bits(a, b)
end

describe("row shares", function()
  for _, method in ipairs{"backprop", "bregman", "lifted"} do
    it(method .. ": the same bits with 1 and 2 threads", function()
      assert.is_true(same_bits_over_threads(method, {6, 9, 7, 2}, 90, 29))
    end)
  end

  for _, method in ipairs{"backprop", "bregman"} do
    it(method .. ": the same bits with 1 and 2 threads for products too big for one BLAS thread alone", function()
      -- (a share of 100 rows through 600 x 600 weights: 72 MFLOP, which blua_mm would split)
      assert.is_true(same_bits_over_threads(method, {40, 600, 600, 2}, 400, 200))
    end)
  end

  -- the C batch step (one call per inner step, shares side by side) against the Lua path
  -- that runs the shares one after another with the same kernels
  local lifted = require "blua.train.lifted"
  local cases = {{}, {inner = 3, xsteps = 2, tau = 0.5}, {order = "oddeven"}, {order = "forward", optimizer = "proxgrad"},
    {batch_shards = 3}, {batch_shards = 1}, {track_energy = false, optimizer = "sgd"}}
  for _, method in ipairs{"bregman", "lifted"} do
    it(method .. ": the C batch step computes the bits of the share-by-share path", function()
      for _, case in ipairs(cases) do
        local o = {epochs = 2, batch = 29, verbose = false, eval_train = false}
        for key, v in pairs(case) do o[key] = v end
        local data = data_and_net({6, 9, 8, 7, 2}, 97)
        support.assert_paths_agree(method, function() return select(2, data_and_net({6, 9, 8, 7, 2}, 97)) end, data, o)
      end
    end)
  end

  it("the C batch step computes the bits of the share-by-share path for smooth and identity outputs", function()
    for _, acts in ipairs{{"sigmoid", "identity"}, {"tanh", "sigmoid"}} do
      local nets = {}
      for k, c_batch in ipairs{true, false} do
        blua.manualSeed(12)
        local x = blua.rand(47, 6)
        nets[k] = blua.nn.mlp{6, 5, 4, 6, activation = acts[1], output = acts[2]}
        lifted.c_batch = c_batch
        local ok, err = pcall(blua.train.bregman, nets[k], {x = x, y = x:clone(), n = 47},
          {epochs = 1, batch = 15, verbose = false, eval_train = false})
        lifted.c_batch = true
        assert(ok, err)
      end
      assert.is_true(same_bits(nets[1], nets[2]), acts[1])
    end
  end)

  it("blua._lifted_batch refuses what it cannot run, naming itself", function()
    local _, net = data_and_net({6, 9, 2}, 10)
    local x, y = blua.rand(10, 6), blua.zeros(10, 2)
    local Z, G = {blua.zeros(10, 9), blua.zeros(10, 2)}, {blua.zeros(10, 9), blua.zeros(10, 2)}
    local grads = {}
    for _, p in ipairs(net:parameters()) do grads[#grads + 1] = blua.zeros(p:size()) end
    local acts = {net:activation(1), net:activation(2)}
    local opts = {scale = 0.1, forward = true, steps = {1}, mu = {0.5}}
    local losses = blua._lifted_batch("bregman", acts, net.W, net.b, x, y, {blua.zeros(10, 9)}, Z, G, 2, opts, grads)
    assert.are.equal(2, #losses)
    assert.has_error(function()
      blua._lifted_batch("bregman", acts, net.W, net.b, x, y, {blua.zeros(9, 9)}, Z, G, 2, opts, grads)
    end, "size mismatch in 'lifted_batch': scratch 9x9 of layer 1 for 10 rows and 9 outputs")
    opts.steps = {2}
    assert.has_error(function()
      blua._lifted_batch("bregman", acts, net.W, net.b, x, y, {blua.zeros(10, 9)}, Z, G, 2, opts, grads)
    end, "bad X-step 1 in 'lifted_batch': layer 2 is not a hidden layer (1..1)")
    opts.steps = {1}
    assert.has_error(function()
      blua._lifted_batch("bregman", acts, net.W, net.b, x, y, {"no"}, Z, G, 2, opts, grads)
    end, "bad argument #7 to 'lifted_batch' (X[1] must be a live tensor)")
    assert.has_error(function()
      blua._lifted_batch("bregman", acts, net.W, net.b, x, blua.zeros(9, 2), {blua.zeros(10, 9)}, Z, G, 2, opts, grads)
    end, "size mismatch in 'lifted_batch': inputs 10x6, targets 9x2")
    assert.has_error(function()
      blua._lifted_batch("bregman", acts, net.W, net.b, x, y, {G[1]}, Z, G, 2, opts, grads)
    end, "aliasing in 'lifted_batch': G[1] and X[1] share memory")
  end)

  it("may be more than 64 (one C call per batch all the same)", function()
    for _, method in ipairs{"backprop", "bregman"} do
      local nets = {}
      for k, c_batch in ipairs{true, false} do
        local data, net = data_and_net({6, 9, 7, 2}, 150)
        lifted.c_batch = c_batch
        local ok, err = pcall(blua.train[method], net, data, {epochs = 1, batch = 130, verbose = false, eval_train = false,
          batch_shards = 100})
        lifted.c_batch = true
        assert(ok, err)
        nets[k] = net
      end
      if method == "bregman" then assert.is_true(same_bits(nets[1], nets[2])) end
    end
  end)

  it("are cut as shape-only row ranges, the earlier shares taking the extra rows", function()
    local loop = require "blua.train.loop"
    assert.are.same({{0, 3}, {3, 2}}, loop.share_bounds(5, 2))
    assert.are.same({{0, 1}}, loop.share_bounds(1, 2))   -- a batch of one row is one share
    assert.are.same({{0, 1}, {1, 1}, {2, 1}}, loop.share_bounds(3, 50))
    assert.are.same({{0, 0}}, loop.share_bounds(0, 2))
  end)
end)
