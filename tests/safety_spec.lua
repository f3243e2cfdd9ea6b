-- Memory safety from Lua: the reproducers of a hostile review and their variants at other entry
-- points. Each case must end in a Lua error (or the right result), never a crash, a hang or a
-- leak; the suite runs under AddressSanitizer and UndefinedBehaviorSanitizer.
local blua = require "blua"
local support = require "tests.support"

local exe = os.getenv("BLUA_EXE") or "blua"
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

local function close(t) getmetatable(t).__close(t) end

-- Runs a chunk in a fresh blua process (cwd = dir); returns its exit status and output.
local function run(dir, code)
  local script = dir .. "/script.lua"
  support.write_file(script, code)
  local p = io.popen(("cd '%s' && timeout 60 '%s' script.lua 2>&1; echo \"status=$?\""):format(dir, exe))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("status=(%d+)%s*$")), out
end

local extremes = {0, -1, 2 ^ 31, 2 ^ 32 + 1, 1 << 61, math.maxinteger, math.mininteger, 0 / 0, 1 / 0, -1 / 0, 1.5}

describe("sizes, indices and dimensions from Lua (class 1)", function()
  it("narrow cannot overflow first + len", function()
    assert.has_error(function() blua.ones(4, 4):narrow(1, 2, math.maxinteger) end)
    assert.has_error(function() blua.ones(4, 4):narrow(2, math.maxinteger, 2) end)
    assert.has_error(function() blua.ones(4, 4):narrow(1, math.mininteger, 1) end)
    assert.has_error(function() blua.ones(4, 4):narrow(2 ^ 32 + 1, 1, 1) end, "bad dimension in 'narrow': 4294967297 for a 2-D tensor")
    local d = {x = blua.ones(10, 3), y = blua.ones(10, 1), n = 10}
    assert.has_error(function() blua.data.subset(d, 2, math.maxinteger) end,
      "out of range in 'blua.data.subset': rows 2..9223372036854775807 of a set of 10")
  end)

  it("every integer argument is range-checked before any arithmetic", function()
    local t = blua.ones(3, 4)
    local bad = {2 ^ 32 + 1, 1 << 61, math.maxinteger, math.mininteger, 0 / 0, 1 / 0, -1 / 0, 1.5, -7}
    local calls = {
      zeros = function(v) return blua.zeros(v, v, 2) end, eye = function(v) return blua.eye(v) end,
      randperm = function(v) return blua.randperm(v) end, narrow_dim = function(v) return t:narrow(v, 1, 1) end,
      narrow_first = function(v) return t:narrow(1, v, 1) end, narrow_len = function(v) return t:narrow(1, 1, v) end,
      select_i = function(v) return t:select(1, v) end, select_d = function(v) return t:select(v, 1) end,
      size = function(v) return t:size(v) end, get = function(v) return t:get(v, 1) end,
      set = function(v) return t:set(1, v, 0) end, view = function(v) return t:view(v, v) end,
      view_infer = function(v) return t:view(v, -1) end, reshape = function(v) return t:reshape(2, v) end,
      sum = function(v) return t:sum(v) end, max = function(v) return t:max(v) end,
      mean = function(v) return t:mean(v) end, argmax = function(v) return t:argmax(v) end,
      transpose = function(v) return t:transpose(1, v) end, squeeze = function(v) return t:squeeze(v) end,
      unsqueeze = function(v) return t:unsqueeze(v) end, index_d = function(v) return t:index(v, {1}) end,
      index_i = function(v) return t:index(1, {v}) end, indexRows = function(v) return t:indexRows({v}) end,
      index_tensor = function(v) return t:indexRows(blua.tensor{v}) end,
      brackets = function(v) return t[v] end, assign = function(v) t[v] = 1 end,
      cat = function(v) return blua.cat({t, t}, v) end, spectralNorm = function(v) return blua.spectralNorm(t, v) end,
      setNumThreads = function(v) return blua.setNumThreads(v) end,
      idx_cap = function(v) return blua.data.idx("/nonexistent", {max_elements = v}) end,
      subset = function(v) return blua.data.subset({x = t, y = t, n = 3}, 1, v) end,
    }
    for name, f in pairs(calls) do
      for _, v in ipairs(bad) do
        local ok = pcall(f, v)
        assert.is_false(ok, name .. "(" .. tostring(v) .. ") should be an error")
      end
    end
    blua.setNumThreads(1)
  end)

  it("view checks the element count without a wrapping product", function()
    assert.has_error(function() blua.ones(4, 4):view(1 << 32, 1 << 32) end)
    assert.has_error(function() blua.ones(4, 4):view(1 << 62, 4) end)
    assert.has_error(function() blua.zeros(1 << 20, 1 << 20) end, "tensor too large in 'zeros': 1048576x1048576 (at most 2^34 elements)")
  end)

  it("empty tensors cannot carry huge other sizes (loops over them would take minutes)", function()
    assert.has_error(function() blua.zeros(0, 4):view(2 ^ 32 + 1, 0) end)
    assert.has_error(function() blua.zeros(1 << 30, 0) end)
    assert.are.same({0, 784}, {blua.zeros(0, 784):size()})
  end)

  it("randperm refuses sizes whose byte count would wrap", function()
    assert.has_error(function() blua.randperm(1 << 61) end, "bad size in 'randperm': 2305843009213693952 (0..2^31-1)")
    assert.equal(5, #blua.randperm(5))
  end)

  it("index lists with a huge __len do not size anything", function()
    local huge = setmetatable({}, {__len = function() return math.maxinteger end})
    assert.equal(0, blua.ones(4, 4):indexRows(huge):size(1))
    local big = setmetatable({1}, {__len = function() return 1 << 40 end})
    assert.equal(1, blua.ones(4, 4):index(1, big):size(1))
  end)

  it("index tensors must hold integers: NaN, infinities and fractions are errors", function()
    local t = blua.ones(4, 4)
    assert.has_error(function() t:indexRows(blua.tensor{0 / 0}) end)
    assert.has_error(function() t:indexRows(blua.tensor{1 / 0}) end)
    assert.has_error(function() t:indexRows(blua.tensor{2.7}) end, "bad index in 'indexRows': entry 1 is 2.7000000476837, not an integer")
    assert.has_error(function() t:indexRows{1.5} end)
    assert.has_error(function() t:index(1, blua.tensor{1e30}) end)
    assert.are.same({4}, {t:indexRows(blua.tensor{2}):size(2)})
  end)

  it("setNumThreads refuses counts it cannot honour", function()
    local n = blua.getNumThreads()
    assert.has_error(function() blua.setNumThreads(2 ^ 31) end, "bad thread count in 'setNumThreads': 2147483648 (1..1024)")
    assert.has_error(function() blua.setNumThreads(0) end)
    assert.equal(n, blua.getNumThreads())
  end)
end)

describe("tensors closed while C uses them (class 2)", function()
  it("a map callback that closes its own tensor gets an error", function()
    local t = blua.ones(3, 3)
    local ok, err = pcall(t.map, t, function(v) close(t) return v end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("closed"), err)
  end)

  it("index lists are read raw: a lying __len or an __index that closes the tensor runs no code", function()
    local t = blua.ones(3, 3)
    local ran = false
    local idx = setmetatable({2}, {__len = function() ran = true return math.maxinteger end,
                                   __index = function() ran = true close(t) return 1 end})
    assert.are.same({1, 3}, {t:indexRows(idx):size()})
    assert.are.same({3, 1}, {t:index(2, idx):size()})
    assert.is_false(ran)
  end)

  it("finalizers that close arguments while a result is allocated give errors, not crashes", function()
    local closed_errors = 0
    for round = 1, 300 do
      local a, b = blua.ones(64, 64), blua.ones(64, 64)
      local victim = round % 2 == 0 and a or b
      -- garbage whose finalizer closes a live argument
      for _ = 1, 20 do setmetatable({}, {__gc = function() close(victim) end}) end
      local ops = {function() return a + b end, function() return a:mm(b) end, function() return a * b end,
                   function() return a:clone() end, function() return a:sum(1) end, function() return a:max(2) end,
                   function() return -a end, function() return a:index(1, {1, 2}) end,
                   function() return blua.cat({a, b}, 1) end, function() return a:t():contiguous() end,
                   function() return tostring(a) end, function() return a:totable() end,
                   function() return blua.activation.get("relu"):forward(a) end}
      local ok, err = pcall(ops[round % #ops + 1])
      if not ok then
        assert.truthy(tostring(err):find("closed"), err)
        closed_errors = closed_errors + 1
      end
      collectgarbage()
    end
    -- How often a finalizer lands inside a call depends on the collector's pace (about every
    -- round in a release build); any that does must end in the error above, never a crash.
    assert.is_true(closed_errors <= 300)
  end)

  it("a closed argument is an error at every tensor method", function()
    local t = blua.ones(2, 2)
    close(t)
    for name, f in pairs(blua.Tensor) do
      assert.is_false(pcall(f, t, 1, 1, 1), name)
      local ok, err = pcall(f, t, t, t, t)
      assert.is_false(ok, name)
      assert.truthy(tostring(err):find("closed", 1, true) or tostring(err):find("bad argument", 1, true),
        name .. ": " .. tostring(err))
    end
    assert.equal("[blua.Tensor (closed)]", tostring(t))
  end)
end)

describe("kernels on views (class 3)", function()
  it("a bias given as a transposed view is read with its own stride", function()
    local net = blua.nn.mlp{30, 40, 3}
    local x = blua.randn(5, 30)
    net.b[1] = blua.ones(1, 40)
    local want = net:forward(x)
    net.b[1] = blua.ones(1, 40):t() -- a 40x1 view with a column stride of 40
    local got = net:forward(x)
    assert.is_true((got - want):abs():max() < 1e-6)
    local big = blua.nn.mlp{30, 4000, 3}
    big.b[1] = blua.ones(1, 4000):t()
    assert.are.same({5, 3}, {big:forward(x):size()})
    net.b[1] = blua.ones(40, 2):narrow(2, 1, 1) -- a strided column
    assert.is_true((net:forward(x) - want):abs():max() < 1e-6)
    net.b[1] = blua.ones(2, 40)
    assert.has_error(function() net:forward(x) end)
  end)

  it("row-vector helpers and optimisers accept strided views", function()
    local t = blua.zeros(3, 4)
    t:addRow(blua.tensor{{1, 0}, {2, 0}, {3, 0}, {4, 0}}:narrow(2, 1, 1):t()) -- 1x4, column stride 2
    assert.are.same({1, 2, 3, 4}, t[1]:totable())
    local v = blua.zeros(2, 4):narrow(1, 1, 1)
    assert.has_no.errors(function() t:sumRows() end)
    local start = blua.ones(4, 4):narrow(2, 2, 1) -- 4x1, stride 4
    assert.is_true(blua.spectralNorm(blua.eye(4), 10, start) > 0.99)
    local x, g = blua.ones(4, 3):t(), blua.ones(3, 4)
    local m, s = blua.zeros(3, 4), blua.zeros(3, 4)
    blua._adam(x, g, m, s, 0.1, 0.9, 0.999, 1e-8, 0, 1)
    assert.is_true(math.abs(x:sum() - 12 * 0.9) < 1e-4)
    assert.truthy(v)
  end)
end)

describe("special files (class 4)", function()
  it("blua.load and blua.data.idx refuse a FIFO without blocking", function()
    local fifo = tmp .. "/fifo"
    assert(os.execute("mkfifo " .. fifo))
    local t0 = blua.clock()
    assert.has_error(function() blua.load(fifo) end)
    local ok, err = pcall(blua.data.idx, fifo)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("not a regular file"), err)
    assert.is_true(blua.clock() - t0 < 5)
    assert.has_error(function() blua.data.idx("/dev/zero") end)
    assert.has_error(function() blua.load("/dev/zero") end)
  end)
end)

describe("loading never runs code (class 5)", function()
  it("a type name naming a module in the working directory is not required", function()
    local dir = tmp .. "/evil"
    os.execute("mkdir -p " .. dir .. "/blua")
    support.write_file(dir .. "/blua/evil.lua", 'io.open("' .. dir .. '/ran", "w"):close() return {}')
    -- written by a process that registered the name
    local status = run(dir, 'blua.register_type("blua.evil.T", {}) blua.save("x.blua", setmetatable({}, ' ..
      'debug.getregistry()["blua.types.byname"]["blua.evil.T"]))')
    assert.equal(0, status)
    local status2, out = run(dir, 'local ok, err = pcall(blua.load, "x.blua") print(ok, err)')
    assert.equal(0, status2)
    assert.truthy(out:find("unknown type 'blua.evil.T'", 1, true), out)
    assert.is_nil(io.open(dir .. "/ran"))
    -- blua's own types still resolve in a fresh process
    local status3, out3 = run(dir, 'blua.save("n.blua", blua.nn.mlp{2, 3, 1})')
    assert.equal(0, status3, out3)
    local status4, out4 = run(dir, 'print(blua.load("n.blua"):forward(blua.ones(1, 2)):size(2))')
    assert.equal(0, status4, out4)
    assert.truthy(out4:find("1"))
  end)
end)

describe("decompression bounds (class 6)", function()
  local function idx_header(...)
    local dims = {...}
    local h = string.pack(">BBBB", 0, 0, 0x08, #dims)
    for _, d in ipairs(dims) do h = h .. string.pack(">I4", d) end
    return h
  end

  it("a caller cap on the element count refuses a file before its data is read", function()
    local raw = tmp .. "/bomb"
    support.write_file(raw, idx_header(4000, 1000) .. string.rep("\0", 4000 * 1000))
    assert(os.execute(("gzip -c -n '%s' > '%s.gz'"):format(raw, raw)))
    local f = io.open(raw .. ".gz", "rb")
    local size = f:seek("end")
    f:close()
    assert.is_true(size < 20000) -- 4 MB of data in a few kB
    local ok, err = pcall(blua.data.idx, raw .. ".gz", {max_elements = 1000000})
    assert.is_false(ok)
    assert.truthy(tostring(err):find("4000000 elements exceed the caller's limit of 1000000", 1, true), err)
    assert.truthy(tostring(err):find(raw .. ".gz", 1, true))
    local t = blua.data.idx(raw .. ".gz", {max_elements = 4000000})
    assert.are.same({4000, 1000}, {t:size()})
    assert.equal(0, t:sum())
    assert.has_error(function() blua.data.idx(raw, {max_elements = 0}) end)
    assert.has_error(function() blua.data.idx(raw, {max_elements = 0 / 0}) end)
    assert.has_error(function() blua.data.idx(raw, {maximum = 3}) end)
  end)

  it("a gzip stream shorter than its header declares fails without a large allocation", function()
    local raw = tmp .. "/short"
    support.write_file(raw, idx_header(1 << 16, 1 << 15) .. string.rep("\7", 1000))
    assert(os.execute(("gzip -c -n '%s' > '%s.gz'"):format(raw, raw)))
    assert.has_error(function() blua.data.idx(raw .. ".gz") end)
  end)
end)

describe("saving over files (class 7)", function()
  it("refuses to replace a read-only file and keeps a file's mode", function()
    local path = tmp .. "/ro.blua"
    blua.save(path, {1})
    os.execute("chmod 0444 " .. path)
    local ok, err = pcall(blua.save, path, {2})
    assert.is_false(ok)
    assert.truthy(tostring(err):find("read-only", 1, true), err)
    assert.are.same({1}, blua.load(path))
    local p = io.popen("stat -c %a " .. path)
    assert.equal("444", p:read("l"))
    p:close()
    local rw = tmp .. "/rw.blua"
    blua.save(rw, {1})
    os.execute("chmod 0640 " .. rw)
    blua.save(rw, {2})
    p = io.popen("stat -c %a " .. rw)
    assert.equal("640", p:read("l"))
    p:close()
    assert.are.same({2}, blua.load(rw))
  end)
end)

teardown(function() os.execute("rm -rf " .. tmp) end)
