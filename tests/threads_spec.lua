-- Waiting threads sleep after a short spin by default (a competing process must not make an
-- epoch several times slower), in the blua command and in the module loaded by a stock lua5.4;
-- a policy the user sets in the environment wins. blua._waitProbe() measures the CPU time a
-- thread spends waiting 50 ms for another: microseconds when it sleeps (after the spin of a few
-- microseconds), milliseconds when it spins.
local exe = os.getenv("BLUA_EXE") or "build/blua"
local build = os.getenv("BLUA_BUILD_DIR") or "build"
local repo = debug.getinfo(1, "S").source:match("^@(.*)/tests/[^/]*$") or "."

local clean = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u BLUA_SET_WAIT_POLICY "
local probe = [[print(os.getenv('OMP_WAIT_POLICY'), os.getenv('BLUA_SET_WAIT_POLICY'), blua._waitProbe(), os.getenv('GOMP_SPINCOUNT'))]]

local function run_once(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, cmd .. " failed:\n" .. out)
  local policy, mark, cpu, spin = out:match("^(%S+)%s+(%S+)%s+(%S+)%s+(%S+)")
  return policy, mark, tonumber(cpu), out, spin
end

-- On a loaded machine a spinning thread may get no core during one 50 ms probe, so the probe
-- runs up to five times and the largest CPU time counts: spinning shows in at least one run,
-- while a sleeping thread stays at microseconds in all of them.
local function run(cmd)
  local policy, mark, cpu, out, spin = run_once(cmd)
  for _ = 2, 5 do
    if cpu > 1e-3 then break end
    local p2, m2, c2 = run_once(cmd)
    assert(p2 == policy and m2 == mark, out)
    cpu = math.max(cpu, c2)
  end
  return policy, mark, cpu, out, spin
end

describe("thread waiting", function()
  it("is passive after a short spin by default in the blua command", function()
    local policy, mark, cpu, _, spin = run(clean .. "'" .. exe .. "' -e \"" .. probe .. "\"")
    assert.are.equal("passive", policy)
    assert.are.equal("300", spin)
    assert.are.equal("1", mark)
    assert.is_true(cpu >= 0 and cpu < 1e-3, "a waiting thread used " .. cpu .. " s of CPU")
  end)

  it("follows the user's OMP_WAIT_POLICY and GOMP_SPINCOUNT", function()
    local policy, mark, cpu = run(clean .. "OMP_WAIT_POLICY=active '" .. exe .. "' -e \"" .. probe .. "\"")
    assert.are.equal("active", policy)
    assert.are.equal("nil", mark)
    assert.is_true(cpu > 1e-3, "a spinning thread used only " .. cpu .. " s of CPU")
    local spin
    policy, mark, _, _, spin = run(clean .. "GOMP_SPINCOUNT=1000 '" .. exe .. "' -e \"" .. probe .. "\"")
    assert.are.equal("nil", policy)
    assert.are.equal("nil", mark)
    assert.are.equal("1000", spin)
  end)

  it("is passive after a short spin by default in the module for a stock lua5.4", function()
    local lua = io.popen("command -v lua5.4"):read("l")
    assert.is_truthy(lua, "lua5.4 is needed (scripts/bootstrap installs it)")
    -- A sanitizer build's module needs the sanitizer runtime loaded first.
    local cache = io.open(build .. "/CMakeCache.txt")
    local sanitized = cache and cache:read("a"):find("BLUA_SANITIZE:BOOL=ON", 1, true)
    if cache then cache:close() end
    local preload = ""
    if sanitized then
      local asan = io.popen("gcc -print-file-name=libasan.so"):read("l")
      local ubsan = io.popen("gcc -print-file-name=libubsan.so"):read("l")
      preload = "LD_PRELOAD='" .. asan .. " " .. ubsan .. "' ASAN_OPTIONS=detect_leaks=0 "
    end
    local env = clean .. preload .. "LUA_CPATH='" .. build .. "/lib/?.so;;' LUA_PATH='" .. repo ..
      "/lua/?.lua;" .. repo .. "/lua/?/init.lua;;' "
    local code = "\"blua = require('blua') " .. probe .. "\""
    local policy, mark, cpu, _, spin = run(env .. lua .. " -e " .. code)
    assert.are.equal("passive", policy)
    assert.are.equal("300", spin)
    assert.are.equal("1", mark)
    assert.is_true(cpu >= 0 and cpu < 1e-3, "a waiting thread used " .. cpu .. " s of CPU")
    policy, mark, cpu = run(env .. "OMP_WAIT_POLICY=active " .. lua .. " -e " .. code)
    assert.are.equal("active", policy)
    assert.is_true(cpu > 1e-3, "a spinning thread used only " .. cpu .. " s of CPU")
  end)
end)

-- blua._team(f, ...) runs f with a thread team up (a training epoch's batches hand their row
-- shares to it); f's results come back and its errors are raised again once the team is down.
describe("the epoch's thread team", function()
  local blua = require "blua"

  it("returns what the function returns and raises its errors", function()
    local old = blua.getNumThreads()
    blua.setNumThreads(2)
    local a, b, c = blua._team(function(x, y) return x + y, "two", nil end, 1, 2)
    assert.are.same({3, "two", nil}, {a, b, c})
    local ok, err = pcall(blua._team, function() error("inside the team") end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("inside the team", 1, true), err)
    -- a team opened inside a team just runs the function; a later team works as before
    assert.are.equal(5, blua._team(function() return blua._team(function() return 5 end) end))
    local t = blua.rand(300, 70)
    local rows = {}
    for i = 1, 300 do rows[i] = 301 - i end
    local inside = blua._team(function() return t:indexRows(rows) + t:indexRows(rows) end)
    assert.are.equal(0, (inside - t:indexRows(rows) * 2):abs():max())
    assert.has_error(function() blua._team(42) end)
    blua.setNumThreads(old)
  end)

  it("closes when a callback fails inside an epoch, and the next run has a team again", function()
    local old = blua.getNumThreads()
    blua.setNumThreads(2)
    blua.manualSeed(5)
    local data = {x = blua.rand(256, 200), y = blua.zeros(256, 1):fill(1)}
    for i = 1, 256, 2 do data.y:set(i, 1, 2) end
    for _, method in ipairs{"backprop", "bregman"} do
      local net = blua.nn.mlp{200, 60, 2} -- (shares big enough for the team, weights too small to split)
      local ok, err = pcall(blua.train[method], net, data, {epochs = 2, batch = 64, verbose = false,
        on_batch = function(_, b) if b == 3 then error("stop at batch 3") end end})
      assert.is_false(ok)
      assert.truthy(tostring(err):find("stop at batch 3", 1, true), err)
      -- a callback that collects garbage and closes nothing it does not own
      blua.train[method](net, data, {epochs = 1, batch = 64, verbose = false, eval_train = false,
        on_batch = function() collectgarbage() end})
      assert.are.equal(4, blua._teamStats().batches)
    end
    blua.setNumThreads(old)
  end)

  it("gathers the next batch's rows on the team while the current one finishes", function()
    local old = blua.getNumThreads()
    blua.setNumThreads(2)
    blua.manualSeed(4)
    local src, y = blua.rand(500, 300), blua.rand(500, 10)
    local rows = {}
    for i = 1, 200 do rows[i] = (i * 37) % 500 + 1 end
    local want_x, want_y = src:indexRows(rows), y:indexRows(rows)
    -- outside a team: gathered at once
    local dx, dy = blua.zeros(200, 300), blua.zeros(200, 10)
    assert.is_false(blua._gatherRows({dx, dy}, {src, y}, rows))
    assert.are.equal(0, (dx - want_x):abs():max())
    assert.are.equal(0, (dy - want_y):abs():max())
    -- inside: posted, done once _teamJoin returns, even when the caller drops its tensors
    -- meanwhile (the gather holds them); a second post first finishes the first
    local posted, same = blua._team(function()
      local ex, ey = blua.zeros(200, 300), blua.zeros(200, 10)
      local p = blua._gatherRows({ex, ey}, {blua.rand(500, 300), y}, rows)
      ex, ey = nil, nil
      collectgarbage()
      local fx = blua.zeros(200, 300)
      assert.is_true(blua._gatherRows({fx}, {src}, rows))
      blua._teamJoin()
      local sum = fx:sum()
      -- left posted when the team closes: joined, nothing leaks (the suite runs under ASan)
      blua._gatherRows({blua.zeros(200, 300)}, {src}, rows)
      return p, math.abs(sum - want_x:sum()) < 1e-3 * math.abs(sum)
    end)
    assert.is_true(posted)
    assert.is_true(same)
    -- bad rows and shapes are errors before anything is posted
    blua._team(function()
      assert.has_error(function() blua._gatherRows({dx}, {src}, {1, 2, 501}) end)
      assert.has_error(function() blua._gatherRows({blua.zeros(3, 300)}, {src}, {1, 2}) end)
      assert.has_error(function() blua._gatherRows({dx, dy}, {src}, rows) end)
      assert.has_error(function() blua._gatherRows({src}, {src}, rows) end)
      assert.has_error(function() blua._gatherRows({dx}, {5}, {1}) end, "bad argument #2 to '_gatherRows' (sources[1] must be a live tensor)")
      assert.has_error(function() blua._gatherRows({"x"}, {src}, {1}) end, "bad argument #1 to '_gatherRows' (destinations[1] must be a live tensor)")
    end)
    -- training: the next batch's rows are gathered on the team (over 32 768 entries a batch),
    -- and the result is the 1-thread one
    local data = {x = blua.rand(512, 300), y = blua.zeros(512, 1):fill(1)}
    for i = 1, 512, 2 do data.y:set(i, 1, 2) end
    local nets = {}
    for _, threads in ipairs{1, 2} do
      blua.setNumThreads(threads)
      blua.manualSeed(9)
      nets[threads] = blua.nn.mlp{300, 64, 2}
      blua.train.bregman(nets[threads], data, {epochs = 1, batch = 128, verbose = false, eval_train = false})
    end
    local with_gathers = blua._teamStats().batches
    for l = 1, 2 do assert.are.equal(0, (nets[1].W[l] - nets[2].W[l]):abs():max()) end
    -- the same inputs as a transposed view: rows that are not contiguous are gathered at once,
    -- by a plain OpenMP loop, so the team gets 4 batches of tasks fewer (the gathers posted for
    -- batches 2 to 4, and batch 1's gather, which splits over the team); the same result
    blua.manualSeed(9)
    local net = blua.nn.mlp{300, 64, 2}
    blua.train.bregman(net, {x = data.x:t():clone():t(), y = data.y},
      {epochs = 1, batch = 128, verbose = false, eval_train = false})
    assert.are.equal(with_gathers - 4, blua._teamStats().batches)
    for l = 1, 2 do assert.are.equal(0, (net.W[l] - nets[2].W[l]):abs():max()) end
    blua.setNumThreads(old)
  end)

  it("gets each batch of an epoch as one batch of tasks, a task per row share", function()
    local old = blua.getNumThreads()
    blua.setNumThreads(2)
    blua.manualSeed(3)
    local data = {x = blua.rand(256, 200), y = blua.zeros(256, 1):fill(1)}
    for i = 1, 256, 2 do data.y:set(i, 1, 2) end
    local net = blua.nn.mlp{200, 60, 2}
    blua.train.backprop(net, data, {epochs = 2, batch = 64, verbose = false, eval_train = false})
    local s = blua._teamStats() -- (the last epoch's team: 4 batches of 2 shares)
    assert.are.equal(4, s.batches)
    assert.are.equal(8, s.caller + s.others)
    -- shares of a few microseconds each run one after another on the caller, and the epoch
    -- opens no team at all (opening one would reset the counts of the last)
    for _, method in ipairs{"backprop", "bregman"} do
      local tiny = blua.nn.mlp{8, 4, 2}
      blua.train[method](tiny, {x = data.x:narrow(2, 1, 8):clone(), y = data.y},
        {epochs = 1, batch = 64, verbose = false, eval_train = false})
      assert.are.equal(4, blua._teamStats().batches)
    end
    -- the same inputs through layers wide enough for shares side by side: a team again, its
    -- shares handed out batch by batch
    blua.train.backprop(blua.nn.mlp{8, 400, 400, 2}, {x = data.x:narrow(2, 1, 8):clone(), y = data.y},
      {epochs = 1, batch = 64, verbose = false, eval_train = false})
    s = blua._teamStats()
    assert.is_true(s.batches >= 4 and s.caller + s.others >= 8, string.format("%d batches", s.batches))
    blua.setNumThreads(old)
  end)
end)

describe("training inside a coroutine", function()
  local blua = require "blua"
  it("may yield from on_batch (the epoch then runs without a thread team)", function()
    blua.manualSeed(4)
    local data = {x = blua.rand(200, 10), y = blua.zeros(200, 1):fill(1)}
    for i = 1, 200, 2 do data.y:set(i, 1, 2) end
    for _, method in ipairs{"backprop", "bregman"} do
      local net = blua.nn.mlp{10, 8, 2}
      local co = coroutine.wrap(function()
        blua.train[method](net, data, {epochs = 2, batch = 50, verbose = false, threads = 2,
          on_batch = function(_, b) coroutine.yield(b) end})
        return "done"
      end)
      local seen = 0
      while co() ~= "done" do seen = seen + 1 end
      assert.are.equal(8, seen)
    end
  end)
end)

-- Sums of many entries are ordered sums of fixed blocks, not OpenMP reductions, so a reported
-- energy or loss does not change with the thread count (nor from run to run).
describe("sums over many entries", function()
  local blua = require "blua"
  it("are the same with 1 and 2 threads: tensor sums, penalties and energies", function()
    local old = blua.getNumThreads()
    blua.manualSeed(9)
    local z = blua.randn(3000, 70) * 3       -- 210 000 entries, far above the parallel threshold
    local u = blua.rand(3000, 70)
    local p = blua.activation.get("softmax"):forward(z)
    local function values()
      local out = {z:sum(), z:norm(), z:dot(u), blua.activation.quadratic_penalty(u, z, 0.5)}
      for _, name in ipairs{"relu", "sigmoid", "tanh", "soft_threshold", "identity"} do
        local a = blua.activation.get(name)
        local x = a:forward(z)
        out[#out + 1] = a:bregman(x, z * 0.9)
        out[#out + 1] = a:psi(x)
        out[#out + 1] = a:conj(z)
      end
      local s = blua.activation.get("softmax")
      out[#out + 1] = s:bregman(p, z * 0.9)
      out[#out + 1] = s:conj(z)
      return out
    end
    blua.setNumThreads(1)
    local one = values()
    blua.setNumThreads(2)
    for _ = 1, 3 do
      local two = values()
      for i, v in ipairs(one) do assert.are.equal(v, two[i], "value " .. i) end
    end
    blua.setNumThreads(old)
  end)

  it("makes products side by side, one thread each (the floor benchmark's blocks)", function()
    blua.manualSeed(5)
    local a, b = blua.randn(37, 50), blua.randn(60, 50):t() -- b a transposed view
    local c1, c2, c3 = blua.zeros(20, 60), blua.zeros(17, 60), blua.zeros(37, 60)
    local seconds = blua._mmSideBySide(3, {c1, a:narrow(1, 1, 20), b}, {c2, a:narrow(1, 21, 17), b}, {c3, a, b})
    assert.is_true(seconds >= 0)
    local want = a:mm(b)
    assert.is_true((c1 - want:narrow(1, 1, 20)):abs():max() < 1e-4)
    assert.is_true((c2 - want:narrow(1, 21, 17)):abs():max() < 1e-4)
    assert.is_true((c3 - want):abs():max() < 1e-4)
    -- a result that another product reads or writes, bad shapes, counts and entries are errors
    assert.has_error(function() blua._mmSideBySide(1, {c3, a, b}, {blua.zeros(37, 50), c3, blua.zeros(60, 50)}) end,
      "bad argument #2 to '_mmSideBySide' (its result shares storage with product 2)")
    assert.has_error(function() blua._mmSideBySide(1, {c1, a, b}) end, "size mismatch in '_mmSideBySide': 37x50 * 50x60 -> 20x60")
    assert.has_error(function() blua._mmSideBySide(0, {c3, a, b}) end, "bad repetitions in '_mmSideBySide': 0 (1 to 2^31 - 1)")
    assert.has_error(function() blua._mmSideBySide(math.maxinteger, {c3, a, b}) end)
    assert.has_error(function() blua._mmSideBySide(1) end,
      "bad arguments to '_mmSideBySide': 1 to 64 products {c, a, b} expected, got 0")
    assert.has_error(function() blua._mmSideBySide(1, {c3, a}) end,
      "bad argument #2 to '_mmSideBySide' (product[3] must be a live tensor)")
    local closed = blua.zeros(37, 60)
    getmetatable(closed).__close(closed)
    assert.has_error(function() blua._mmSideBySide(1, {closed, a, b}) end)
  end)
end)
