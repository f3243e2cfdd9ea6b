-- Lifted training of operator networks (the CNN of blua.experiment.cnn) in one C call per
-- inner step (blua.op.lifted_batch): the row shares side by side, each on operators of its
-- own, computing the bits of the share-by-share path in lua/blua/train/lifted.lua; and the
-- binding's refusals, which name the function and the shapes.
package.path = "./?.lua;" .. package.path
local blua = require "blua"
local lifted = require "blua.train.lifted"
local support = require "tests.support"

-- n 28x28 images with labels 1..10 (random: the bits, not the accuracy, are compared).
local function images(n)
  blua.manualSeed(21)
  local x = blua.rand(n, 784)
  local y = blua.zeros(n, 1)
  for i = 1, n do y:set(i, 1, (i * 7) % 10 + 1) end
  return {x = x, y = y, n = n}
end

local function cnn()
  blua.manualSeed(3)
  return blua.experiment.cnn()
end

local same_bits = support.same_params

-- The arguments of one blua.op.lifted_batch call for a batch of `rows` images in `parts`
-- shares, on the CNN (every layer's operators, parameters, gradients and scratch).
local function call_args(rows, parts)
  local net = cnn()
  local acts, ops, params = lifted.op_path(net, nil, parts)
  local x, y = blua.rand(rows, 784), blua.zeros(rows, 10)
  for i = 1, rows do y:set(i, (i % 10) + 1, 1) end
  local X, Z, G, grads = {}, {}, {}, {}
  for l = 1, net:nLayers() do
    local n = net.sizes[l + 1]
    Z[l], G[l] = blua.zeros(rows, n), blua.zeros(rows, n)
    if l < net:nLayers() then X[l] = blua.zeros(rows, n) end
  end
  for _, p in ipairs(params) do grads[#grads + 1] = blua.zeros(p:size()) end
  local opts = {scale = 1 / rows, forward = true, energies = true, steps = {3, 2, 1}, mu = {0.5, 0.5, 0.5}}
  return {"bregman", acts, ops, params, x, y, X, Z, G, parts, opts, grads}, net
end

local function call(args) return blua.op.lifted_batch(table.unpack(args, 1, 13)) end

describe("lifted training of operator networks in one C call", function()
  local c_call = blua.op.lifted_batch
  after_each(function()
    lifted.c_batch = true
    blua.op.lifted_batch = c_call
  end)

  -- (7 options cases x 2 trainers x 2 paths, 2 epochs of 23 images each)
  local cases = {{}, {inner = 3, xsteps = 2, tau = 0.5}, {order = "oddeven"}, {order = "forward", optimizer = "sgd", inner = 2},
    {batch_shards = 3}, {batch_shards = 1}, {track_energy = false, optimizer = "sgd"}}
  for _, method in ipairs{"bregman", "lifted"} do
    it(method .. ": the C batch step computes the bits of the share-by-share path on the CNN", function()
      local data = images(23)
      local calls = 0
      blua.op.lifted_batch = function(...) calls = calls + 1 return c_call(...) end
      for _, case in ipairs(cases) do
        local o = {epochs = 2, batch = 11, verbose = false, eval_train = false}
        for key, v in pairs(case) do o[key] = v end
        calls = 0
        -- (share by share on one thread: there the energy of a hidden layer this wide is a
        -- reduction whose two-thread split varies from run to run; in the C path each share's
        -- runs on its own thread)
        support.assert_paths_agree(method, cnn, data, o, 1)
        -- (3 batches per epoch: one call per inner step on the C path, none share by share)
        assert.are.equal(6 * (o.inner or 1), calls)
      end
    end)
  end

  it("gives the same bits with 1 and 2 threads", function()
    local data, nets = images(30), {}
    for k, threads in ipairs{1, 2} do
      nets[k] = cnn()
      blua.train.bregman(nets[k], data, {epochs = 1, batch = 15, verbose = false, eval_train = false, threads = threads})
    end
    assert.is_true(same_bits(nets[1], nets[2]))
  end)

  it("takes step sizes whose power iterations give the same bits with 1 and 2 threads", function()
    -- (one sample through a convolution: a product BLAS would split over two threads)
    local net, threads, norms = cnn(), blua.getNumThreads(), {}
    for k, t in ipairs{1, 2} do
      blua.setNumThreads(t)
      norms[k] = {}
      for l = 1, net:nLayers() do norms[k][l] = net:block(l):norm(20) end
    end
    blua.setNumThreads(threads)
    assert.are.same(norms[1], norms[2])
  end)

  it("is the path the trainers take for the CNN, and the epoch's thread team with it", function()
    local team, teams = blua._team, 0
    local data = images(12)
    for _, c_batch in ipairs{true, false} do
      teams = 0
      blua._team = function(...) teams = teams + 1 return team(...) end
      lifted.c_batch = c_batch
      local ok, err = pcall(blua.train.bregman, cnn(), data, {epochs = 2, batch = 6, verbose = false, eval_train = false})
      blua._team, lifted.c_batch = team, true
      assert(ok, err)
      assert.are.equal(c_batch and 2 or 0, teams) -- (a team per epoch; share by share, none)
    end
    local net = cnn()
    local acts, ops, params = lifted.c_batch_path(net, {batch_shards = 2})
    assert.are.equal(4, #acts)
    assert.are.equal(8, #ops)
    assert.are.equal(8, #params)
    assert.is_nil(lifted.c_batch_path(net, {batch_shards = 65})) -- (more shares: one after another)
    -- (L1 terms too: tests/l1_c_path_spec.lua)
    assert.are.equal(8, #select(2, lifted.c_batch_path(net, {batch_shards = 2, l1_layers = {[1] = 0.1}})))
  end)

  it("returns each share's loss and hidden energies", function()
    local args = call_args(9, 3)
    local losses, energies = call(args)
    assert.are.equal(3, #losses)
    assert.are.equal(3, #energies)
    assert.are.equal(3, #energies[1])
    for p = 1, 3 do assert.is_true(losses[p] > 0 and losses[p] < math.huge) end
  end)

  it("refuses bad inputs, naming itself and the shapes", function()
    local function fails(args, message) assert.has_error(function() call(args) end, message) end
    local args = call_args(6, 2)
    args[8][2] = blua.zeros(5, 3136)
    fails(args, "size mismatch in 'lifted_batch': scratch 5x3136 of layer 2 for 6 rows and 3136 outputs")
    args = call_args(6, 2)
    args[5] = blua.zeros(6, 783)
    fails(args, "size mismatch in 'lifted_batch': layer 1 (conv2d 1x28x28 -> 8x28x28 (5x5, stride 1, padding 2)) takes 784 features, got 783")
    args = call_args(6, 2)
    args[6] = blua.zeros(6, 9)
    fails(args, "size mismatch in 'lifted_batch': targets 6x9 for 10 outputs")
    args = call_args(6, 2)
    args[3][5] = args[3][1] -- share 2's first operator is share 1's
    fails(args, "aliasing in 'lifted_batch': shares 1 and 2 of a lifted batch run layer 1 on the same operator "
      .. "(each share needs operators of its own)")
    args = call_args(6, 2)
    args[11].mu[2] = 0 / 0
    local ok, err = pcall(call, args)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bad X-step 2 in 'lifted_batch': mu must be positive and finite, got", 1, true))
    assert.truthy(tostring(err):find("nan$"))
    args = call_args(6, 2)
    args[10] = 65
    fails(args, "bad shares in 'lifted_batch': 65 (1 to 64 with operators)")
    args = call_args(6, 2)
    args[10] = 3
    fails(args, "bad operators in 'lifted_batch': 3 parts of 4 layers need 12, got 8")
    args = call_args(6, 2)
    table.remove(args[4])
    fails(args, "bad parameters in 'lifted_batch': the operators take 8, got 7 parameters and 8 gradients")
    args = call_args(6, 2)
    args[1] = "bregmann"
    ok, err = pcall(call, args)
    assert.is_false(ok)
    assert.matches("invalid option 'bregmann'", tostring(err), 1, true)
    args = call_args(6, 2)
    args[11].steps = {4}
    args[11].mu = {0.5}
    fails(args, "bad X-step 1 in 'lifted_batch': layer 4 is not a hidden layer (1..3)")
    -- nothing was half-done: a good call still runs
    args = call_args(6, 2)
    assert.are.equal(2, #call(args))
  end)
end)
