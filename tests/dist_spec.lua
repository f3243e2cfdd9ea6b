-- blua.dist on a single process: the no-op communicator every script gets without mpirun,
-- and what a build or interpreter without MPI says when asked for distribution.
local blua = require "blua"
local dist = blua.dist

describe("blua.dist without mpirun", function()
  it("is one process of rank 0", function()
    assert.equal(0, dist.rank())
    assert.equal(1, dist.size())
    assert.is_false(dist.active())
    assert.truthy(dist.describe():find("single process", 1, true))
    dist.barrier()
  end)

  it("leaves tensors unchanged in allreduce and broadcast", function()
    local a, b = blua.tensor{{1, 2}, {3, 4}}, blua.tensor{5, 6, 7}
    dist.allreduce({a, b})
    assert.equal(10, a:sum())
    assert.equal(18, b:sum())
    dist.allreduce({a}, "max")
    dist.broadcast({a, b}, 0)
    dist.broadcast({a})
    assert.equal(4, a:get(2, 2))
    dist.allreduce({})
    dist.reduce_scatter({a, b})
    dist.allgather({a, b})
    assert.equal(10, a:sum())
    assert.same({1, 7}, {dist.segment(7)})
    assert.same({math.maxinteger // 2 + 2, math.maxinteger // 2}, {dist.segment(math.maxinteger, 1, 2)})
    assert.has_error(function() dist.segment(10, 5, 0) end, "bad argument #3 to 'dist.segment' (size 0: at least 1 expected)")
    assert.has_error(function() dist.segment(10, 2, 2) end, "bad argument #2 to 'dist.segment' (rank 2 out of range 0..1)")
    assert.has_error(function() dist.segment(-1) end, "bad argument #1 to 'dist.segment' (total -1 is negative)")
    assert.has_error(function() dist.segment(2^31) end, "bad argument #1 to 'dist.segment' (integer expected, got float)")
    assert.has_error(function() dist.segment() end, "bad argument #1 to 'dist.segment' (integer expected, got nil)")
  end)

  it("checks its arguments as it would under mpirun", function()
    local a = blua.zeros(3, 4)
    assert.has_error(function() dist.allreduce(a) end, "bad argument #1 to 'dist.allreduce' (a list of tensors expected, got userdata)")
    assert.has_error(function() dist.allreduce({a, 3}) end, "bad argument to 'dist.allreduce' (item 2 is not a tensor)")
    assert.has_error(function() dist.allreduce({a:t()}) end,
      "non-contiguous tensor in 'dist.allreduce': item 1; pass t:contiguous() or a clone")
    assert.has_error(function() dist.allreduce({a}, "prod") end,
      "bad argument #2 to 'dist.allreduce' (invalid option 'prod': sum, max or min)")
    assert.has_error(function() dist.broadcast({a}, 1) end, "bad argument #2 to 'dist.broadcast' (root 1 out of range 0..0)")
    assert.has_error(function() dist.broadcast({a}, 0.5) end,
      "bad argument #2 to 'dist.broadcast' (root: integer expected, got float)")
    assert.has_error(function() dist.broadcast({a}, math.maxinteger) end)
    assert.has_error(function() dist.send(a, 0) end, "dist.send: a single process has no other rank to send to")
    assert.has_error(function() dist.recv(a, 0) end, "dist.recv: a single process has no other rank to receive from")
    assert.has_error(function() dist.send(a, -1) end, "bad argument #2 to 'dist.send' (destination -1 out of range 0..0)")
    assert.has_error(function() dist.abort("stop here") end, "stop here")
  end)

  it("accepts the distributed modes it knows", function()
    assert.is_false(dist.mode("f", nil))
    assert.is_false(dist.mode("f", false))
    assert.has_error(function() dist.mode("f", "model") end, "f: unknown distributed mode 'model' (accepted: data, layer)")
    if dist.available() then assert.equal("data", dist.mode("f", "data")) end
  end)

  it("says that stock lua5.4 with the module has no MPI", function()
    local build = os.getenv("BLUA_BUILD_DIR") or "build"
    local code = [[
      package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
      package.cpath = ']] .. build .. [[/lib/?.so;' .. package.cpath
      local blua = require 'blua'
      print(blua.dist.size(), blua.dist.available(), blua.dist.describe())
      print(pcall(blua.dist.mode, 'train', 'data'))
    ]]
    local function run(prefix)
      local p = io.popen(prefix .. "lua5.4 -e \"" .. code:gsub("\n", " ") .. "\" 2>&1")
      local out = p:read("a")
      p:close()
      return out
    end
    local out = run("")
    if out:find("ASan runtime does not come first", 1, true) then
      -- a sanitizer build's module needs the sanitizer runtime loaded first (lua5.4 is not built with it)
      local lib = io.popen("gcc -print-file-name=libasan.so"):read("l")
      out = run("ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD=" .. lib .. " ")
    end
    assert.truthy(out:find("^1\tfalse\tsingle process %(this build of blua has no MPI support"), out)
    assert.truthy(out:find("train: distributed = 'data' asked for, but this build of blua has no MPI support", 1, true), out)
  end)
end)

describe("distributed = 'layer' on one process", function()
  local function data_and_net()
    blua.manualSeed(4)
    local x = blua.rand(60, 6)
    local y = blua.zeros(60, 1)
    for i = 1, 60 do y:set(i, 1, x:get(i, 1) > 0.5 and 2 or 1) end
    return {x = x, y = y, n = 60}, blua.nn.mlp{6, 5, 5, 2, activation = "relu", output = "softmax"}
  end

  it("sweeps odd/even often enough by default for layer 1 to see the output", function()
    -- three hidden layers: after one odd/even sweep layer 1's residual is still zero (its
    -- gradient is rounding noise); after the default two it is not
    local function first_gradient(extra)
      blua.manualSeed(4)
      local x = blua.rand(40, 6)
      local y = blua.zeros(40, 1)
      for i = 1, 40 do y:set(i, 1, x:get(i, 1) > 0.5 and 2 or 1) end
      local net = blua.nn.mlp{6, 8, 8, 8, 2, activation = "relu", output = "softmax"}
      local ratio
      local o = {epochs = 1, batch = 40, verbose = false, eval_train = false, order = "oddeven",
        on_gradients = function(g) ratio = ratio or g[1]:norm() / g[3]:norm() end}
      for k, v in pairs(extra) do o[k] = v end
      blua.train.bregman(net, {x = x, y = y, n = 40}, o)
      return ratio
    end
    assert.is_true(first_gradient{xsteps = 1} < 1e-3)
    assert.is_true(first_gradient{} > 1e-2)
  end)

  it("runs the odd/even schedule and refuses what it cannot run", function()
    if not dist.available() then return end
    local data, net = data_and_net()
    local h = blua.train.bregman(net, data, {epochs = 1, batch = 20, verbose = false, distributed = "layer"})
    assert.is_true(h[1].loss > 0)
    assert.has_error(function() blua.train.backprop(net, data, {distributed = "layer"}) end,
      "blua.train.backprop: distributed = 'layer' needs a lifted method (bregman or lifted)")
    assert.has_error(function() blua.train.bregman(net, data, {distributed = "layer", order = "backward"}) end,
      "blua.train.bregman: distributed = 'layer' runs the oddeven order, not 'backward'")
    assert.has_error(function() blua.train.bregman(net, data, {distributed = "layer", batch_shards = 2}) end,
      "blua.train.bregman: batch_shards works with distributed = 'data' only")
  end)
end)

describe("batch_shards on one process", function()
  local function data_and_net()
    blua.manualSeed(4)
    local x = blua.rand(90, 6)
    local y = blua.zeros(90, 1)
    for i = 1, 90 do y:set(i, 1, x:get(i, 1) > 0.5 and 2 or 1) end
    return {x = x, y = y, n = 90}, blua.nn.mlp{6, 5, 5, 2, activation = "relu", output = "softmax"}
  end

  it("sums the gradients from row shares: the same training up to rounding", function()
    for _, method in ipairs{"bregman", "backprop"} do
      local data, a = data_and_net()
      local _, b = data_and_net()
      local _, c = data_and_net()
      blua.train[method](a, data, {epochs = 2, batch = 30, verbose = false})
      blua.train[method](b, data, {epochs = 2, batch = 30, verbose = false, batch_shards = 3})
      blua.train[method](c, data, {epochs = 2, batch = 30, verbose = false, batch_shards = 50}) -- more shares than rows
      for i, p in ipairs(a:parameters()) do
        local scale = p:clone():abs():max() + 1e-3
        assert.is_true((b:parameters()[i] - p):abs():max() <= 1e-4 * scale, method)
        assert.is_true((c:parameters()[i] - p):abs():max() <= 1e-4 * scale, method)
      end
    end
  end)

  it("must be a positive integer", function()
    local data, net = data_and_net()
    assert.has_error(function() blua.train.bregman(net, data, {batch_shards = 0}) end,
      "blua.train.bregman: option 'batch_shards' must be a positive integer, got 0")
  end)
end)

-- Jobs of two ranks started from here: what happens when one rank fails.
local mpirun = os.getenv("BLUA_MPIRUN")
local exe = os.getenv("BLUA_EXE") or "build/blua"

describe("a job of two ranks", function()
  if not (mpirun and mpirun ~= "" and dist.available()) then
    pending("this build has no MPI (BLUA_MPIRUN unset)")
    return
  end

  local function job(script)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local t0 = os.time()
    -- The ranks are sanitizer builds in scripts/test; Open MPI's plugins look like leaks there.
    local p = io.popen(string.format("ASAN_OPTIONS=detect_leaks=0 timeout 60 %s %s %s 2>&1", mpirun, exe, path))
    local out = p:read("a")
    local ok, _, code = p:close()
    os.remove(path)
    return out, ok and 0 or code, os.time() - t0
  end

  it("stops at once when one rank raises an error, naming the rank", function()
    local out, code, secs = job([[
      if blua.dist.rank() == 1 then error("rank one gives up") end
      blua.dist.barrier()   -- rank 0 would wait here forever without the abort
      print("rank 0 passed the barrier")
    ]])
    assert.is_not.equal(0, code)
    assert.is_not.equal(124, code, "timed out: " .. out)
    assert.truthy(out:find("blua: rank 1 of 2: [^\n]*rank one gives up"), out)
    assert.is_nil(out:find("passed the barrier", 1, true), out)
    assert.is_true(secs < 30, out)
  end)

  it("stops when one rank is killed, and mpirun names it", function()
    local out, code, secs = job([[
      if blua.dist.rank() == 1 then
        local pid = io.open("/proc/self/stat"):read("n")
        os.execute("kill -9 " .. pid)
      end
      blua.dist.barrier()
      print("rank 0 passed the barrier")
    ]])
    assert.is_not.equal(0, code)
    assert.is_not.equal(124, code, "timed out: " .. out)
    assert.truthy(out:find("rank 1 with PID %d+ on node [^\n]* exited on signal 9"), out)
    assert.is_true(secs < 30, out)
  end)

  it("trains layer-parallel exactly as the same schedule runs on one process", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/layers.lua", "w"))
    f:write([=[
      blua.setNumThreads(1)
      blua.manualSeed(11)
      local n = 240
      local x = blua.rand(n, 12)
      local best = (x * blua.randn(12, 3)):argmax(2)
      local y = blua.zeros(n, 1)
      for i = 1, n do y:set(i, 1, best:get(i, 1)) end
      blua.manualSeed(5)
      local net = blua.nn.mlp{12, 10, 10, 10, 10, 3, activation = "relu", output = "softmax"}
      local h = blua.train[arg[2]](net, {x = x, y = y, n = n}, {epochs = 2, batch = 40, verbose = false, lr = 0.02,
        distributed = "layer"})
      if blua.dist.rank() == 0 then blua.save(arg[1], {net = net, loss = h[2].loss, acc = h[2].train_acc}) end
    ]=])
    f:close()
    for _, method in ipairs{"bregman", "lifted"} do
      local function run(prefix, out)
        local p = io.popen(string.format("ASAN_OPTIONS=detect_leaks=0 timeout 120 %s %s %s/layers.lua %s/%s %s 2>&1",
          prefix, exe, dir, dir, out, method))
        local text = p:read("a")
        local ok = p:close()
        assert.is_true(ok, text)
      end
      run("", "one.blua")                                               -- one process, all layers
      run(mpirun, "two.blua")                                           -- two ranks
      run((mpirun:gsub("%-n%s+2", "-n 3"):gsub("%-np%s+2", "-np 3")), "three.blua")   -- three ranks
      local one = blua.load(dir .. "/one.blua")
      for _, other in ipairs{"two.blua", "three.blua"} do
        local o = blua.load(dir .. "/" .. other)
        for i, p in ipairs(one.net:parameters()) do
          assert.equal(0, (o.net:parameters()[i] - p):abs():max(), method .. " " .. other .. " parameter " .. i)
        end
        assert.is_true(math.abs(o.loss - one.loss) <= 1e-6 * one.loss)
        assert.equal(one.acc, o.acc)
      end
      assert.is_true(one.acc > 0.5, "the schedule learns: " .. one.acc)
    end
    os.execute("rm -rf " .. dir)
  end)

  it("resumes from rank 0's checkpoint after a rank was killed mid-epoch", function()
    if not pcall(blua.data.mnist, "test") then
      pending("MNIST is not fetched (scripts/fetch-data)")
      return
    end
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    -- Rank 1 kills itself in the third batch of epoch 2, after rank 0 saved epoch 1.
    local f = assert(io.open(dir .. "/kill.lua", "w"))
    -- The 30 s limit counts from the kill, not from start-up (a loaded machine trains slowly).
    f:write(string.format([[
      local train = blua.train
      local bregman = train.bregman
      train.bregman = function(net, data, o)
        o.on_batch = function(epoch, b)
          if epoch == 2 and b == 3 and blua.dist.rank() == 1 then
            local stamp = io.open("%s/killed_at", "w")
            stamp:write(os.time())
            stamp:close()
            os.execute("kill -9 " .. io.open("/proc/self/stat"):read("n"))
          end
        end
        return bregman(net, data, o)
      end
    ]], dir))
    f:close()
    local args = string.format("scripts/train_mnist.lua --distributed data --train-size 1000 --epochs 3 --quiet --save %s/ck.blua", dir)
    local function run(prefix, more)
      local t0 = os.time()
      local p = io.popen(string.format("ASAN_OPTIONS=detect_leaks=0 timeout 120 %s %s %s %s %s 2>&1", mpirun, exe, prefix, args, more))
      local out = p:read("a")
      local ok, _, code = p:close()
      return out, ok and 0 or code, os.time() - t0
    end
    local out, code = run(string.format("-e 'dofile(\"%s/kill.lua\")'", dir), "")
    local ended = os.time()
    assert.is_not.equal(0, code, out)
    assert.truthy(out:find("rank 1 with PID %d+ on node [^\n]* exited on signal 9"), out)
    local stamp = assert(io.open(dir .. "/killed_at"))
    local killed = stamp:read("n")
    stamp:close()
    assert.is_true(ended - killed < 30, out)
    local ck = blua.load(dir .. "/ck.blua")
    assert.equal(1, ck.epoch)
    out, code = run("", "--resume " .. dir .. "/ck.blua")
    assert.equal(0, code, out)
    assert.truthy(out:find("resuming bregman from", 1, true), out)
    assert.truthy(out:find("epoch 3 ", 1, true), out)
    assert.is_nil(out:find("epoch 1 ", 1, true), out)
    local _, finals = out:gsub("final: train accuracy", "")
    assert.equal(1, finals, "only rank 0 prints: " .. out)
    assert.equal(3, blua.load(dir .. "/ck.blua").epoch)
    os.execute("rm -rf " .. dir)
  end)
end)
