-- Data-parallel training across two ranks (ctest runs this file under mpirun -np 2). Each rank
-- also trains the same network in one process, so the distributed run can be compared with
-- the run it must reproduce bit for bit: the plain one-process run, whose every batch's
-- gradient is the sum of the same two row shares (batch_shards = 2, the default).
local blua = require "blua"
local dist = blua.dist

local rank = dist.rank()

-- Small data every rank builds the same way, so the spec needs no data set on disk.
local function toy_data(n, seed)
  blua.manualSeed(seed)
  local x = blua.rand(n, 20)
  local w = blua.randn(20, 4)
  local y = blua.zeros(n, 1)
  local scores = x * w
  local best = scores:argmax(2)
  for i = 1, n do y:set(i, 1, best:get(i, 1)) end
  return {x = x, y = y, n = n}
end

local function new_net(seed)
  blua.manualSeed(seed)
  return blua.nn.mlp{20, 16, 16, 4, activation = "relu", output = "softmax"}
end

local function copy_net(net)
  local c = new_net(1)
  for i, p in ipairs(c:parameters()) do p:copy(net:parameters()[i]) end
  return c
end

-- max over tensors of max |a - b| / max |b|
local function max_rel_diff(a, b)
  local worst = 0
  for i, p in ipairs(a:parameters()) do
    local q = b:parameters()[i]
    worst = math.max(worst, (p - q):abs():max() / q:clone():abs():max())
  end
  return worst
end

-- Asserts after every batch that both ranks hold the same bits.
local function same_bits_on_every_rank(net)
  return function(_, b)
    local mine = {}
    for i, p in ipairs(net:parameters()) do mine[i] = p:clone() end
    dist.broadcast(mine, 0)
    for i, p in ipairs(net:parameters()) do
      if (mine[i] - p):abs():max() ~= 0 then error(string.format("rank %d differs from rank 0 after batch %d", rank, b)) end
    end
  end
end

describe("data-parallel training", function()
  local data = toy_data(600, 11)

  for _, method in ipairs{"backprop", "bregman", "lifted"} do
    it(method .. " on two ranks computes the bits of the plain one-process run", function()
      local start = new_net(5)
      local single, one_share, net = copy_net(start), copy_net(start), copy_net(start)
      -- batches of 100 = 50 rows per rank; the last batch of 600 is full
      local opts = {epochs = 1, batch = 100, verbose = false, eval_train = true}
      local h1 = blua.train[method](single, data, opts)
      opts.distributed = "data"
      opts.on_batch = same_bits_on_every_rank(net)
      local h3 = blua.train[method](net, data, opts)
      assert.equal(0, max_rel_diff(net, single))
      assert.equal(h1[1].train_acc, h3[1].train_acc)
      -- (the epoch's statistics are added up in another order: float rounding only)
      assert.is_true(math.abs(h1[1].loss - h3[1].loss) <= 1e-6 * math.abs(h1[1].loss))
      if h1[1].energy then assert.is_true(math.abs(h1[1].energy - h3[1].energy) <= 1e-6 * math.abs(h1[1].energy)) end
      -- the old single-share arithmetic (batch_shards = 1) is the same training up to rounding
      blua.train[method](one_share, data, {epochs = 1, batch = 100, verbose = false, eval_train = false, batch_shards = 1})
      assert.is_true(max_rel_diff(net, one_share) <= 1e-4, method .. ": " .. max_rel_diff(net, one_share))
    end)
  end

  -- The optimiser step is sharded (each rank steps its segment of the parameters); the state
  -- a checkpoint saves must still be whole, and a resumed run must continue exactly.
  local function same_state(a, b, what)
    for k = 1, #b do
      for _, key in ipairs{"m", "v"} do
        for j, t in ipairs(b[k][key]) do
          assert.equal(0, (a[k][key][j] - t):abs():max(), what .. ": block " .. k .. " " .. key .. j)
        end
      end
      assert.equal(b[k].t, a[k].t)
    end
  end

  it("keeps the whole Adam state on every rank at the end of each epoch", function()
    local start = new_net(12)
    local sharded, net = copy_net(start), copy_net(start)
    local s1, s2, seen = {}, {}, {}
    local opts = {epochs = 2, batch = 100, verbose = false, eval_train = false}
    blua.train.bregman(sharded, data, {epochs = 2, batch = 100, verbose = false, eval_train = false, batch_shards = 2,
      optim_state = s1, on_epoch = function(e) seen[e] = {} for k = 1, 3 do seen[e][k] = {t = s1[k].t, m = {}, v = {}}
        for j = 1, 2 do seen[e][k].m[j], seen[e][k].v[j] = s1[k].m[j]:clone(), s1[k].v[j]:clone() end end end})
    opts.distributed, opts.optim_state = "data", s2
    opts.on_epoch = function(e) same_state(s2, seen[e], "epoch " .. e) end
    blua.train.bregman(net, data, opts)
    assert.equal(0, max_rel_diff(net, sharded))
  end)

  it("resumes from the saved state exactly as an uninterrupted run", function()
    local start = new_net(13)
    local whole, resumed = copy_net(start), copy_net(start)
    local opts = {epochs = 2, batch = 100, verbose = false, eval_train = false, distributed = "data"}
    blua.train.backprop(whole, data, opts)
    local state = {}
    blua.train.backprop(resumed, data, {epochs = 2, batch = 100, verbose = false, eval_train = false,
      distributed = "data", optim_state = state, on_epoch = function() return false end}) -- stops after epoch 1
    -- what rank 0 saves is what every rank resumes from (distributed.start broadcasts it)
    if rank == 1 then
      for k = 1, #state do state[k].m[1]:fill(7) end
    end
    blua.train.backprop(resumed, data, {epochs = 2, start_epoch = 2, batch = 100, verbose = false, eval_train = false,
      distributed = "data", optim_state = state})
    assert.equal(0, max_rel_diff(resumed, whole))
  end)

  it("all-reduces the whole gradient for an on_gradients hook", function()
    local start = new_net(14)
    local sharded, net = copy_net(start), copy_net(start)
    local norms1, norms2 = {}, {}
    local function hook(list) return function(grads) list[#list + 1] = grads[1]:norm() + grads[#grads]:norm() end end
    blua.train.bregman(sharded, data, {epochs = 1, batch = 100, verbose = false, eval_train = false, batch_shards = 2,
      on_gradients = hook(norms1)})
    blua.train.bregman(net, data, {epochs = 1, batch = 100, verbose = false, eval_train = false, distributed = "data",
      on_gradients = hook(norms2)})
    assert.same(norms1, norms2)
    assert.equal(0, max_rel_diff(net, sharded))
  end)

  it("splits uneven batches and batches smaller than the ranks", function()
    local small = blua.data.subset(data, 1, 201)  -- batches of 3; the last has 0 rows on rank 1
    local start = new_net(6)
    local net1, net2 = copy_net(start), copy_net(start)
    blua.train.bregman(net1, small, {epochs = 1, batch = 3, verbose = false, eval_train = false})
    blua.train.bregman(net2, small, {epochs = 1, batch = 3, verbose = false, eval_train = false, distributed = "data",
      on_batch = same_bits_on_every_rank(net2)})
    assert.equal(0, max_rel_diff(net2, net1))
    local one = blua.data.subset(data, 1, 1)
    blua.train.backprop(net2, one, {epochs = 1, batch = 1, verbose = false, eval_train = false, distributed = "data"})
    assert.is_true(net2.W[1]:allFinite())
  end)

  it("takes the same proximal-gradient steps as the plain one-process run", function()
    local start = new_net(7)
    local single, net = copy_net(start), copy_net(start)
    local opts = {epochs = 1, batch = 100, verbose = false, eval_train = false, optimizer = "proxgrad"}
    blua.train.bregman(single, data, opts)
    opts.distributed, opts.on_batch = "data", same_bits_on_every_rank(net)
    blua.train.bregman(net, data, opts)
    assert.equal(0, max_rel_diff(net, single))
  end)

  it("starts every rank from rank 0's network", function()
    local net = new_net(100 + rank)      -- different on purpose
    local on0 = new_net(100)
    blua.train.backprop(net, data, {epochs = 1, batch = 600, lr = 1e-12, verbose = false, eval_train = false,
      distributed = "data", schedule = "constant"})
    for i, p in ipairs(net:parameters()) do   -- (lr 1e-12 moved them by no more than that)
      assert.is_true((p - on0:parameters()[i]):abs():max() <= 1e-9)
    end
  end)

  it("lets only rank 0 write the log", function()
    local path = (os.getenv("BLUA_BUILD_DIR") or "build") .. "/dist-spec-log.csv"  -- the same name on every rank
    os.remove(path)
    os.remove(path .. ".rank1")
    dist.barrier()
    blua.train.backprop(new_net(8), data, {epochs = 1, batch = 200, verbose = false, distributed = "data",
      log = rank == 0 and path or path .. ".rank1"})
    dist.barrier()
    assert.truthy(io.open(path))
    assert.is_nil(io.open(path .. ".rank1"))
    dist.barrier()
    if rank == 0 then os.remove(path) end
  end)

  it("refuses an unknown mode", function()
    assert.has_error(function() blua.train.bregman(new_net(9), data, {distributed = "model"}) end)
  end)
end)
