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
end)
