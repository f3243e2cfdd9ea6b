-- blua.save / blua.load: bit-exact round trips of tensors (NaN payloads, infinities, views,
-- transposes) and tables (integer vs float, strings, shared references, cycles, registered
-- types), clear errors for what cannot be saved, damaged and hand-crafted hostile checkpoints
-- rejected, and a process killed with SIGKILL while saving never leaves a broken file.
local blua = require "blua"
local support = require "tests.support"

local exe = os.getenv("BLUA_EXE") or "blua"
local tmp = support.tempdir(teardown)
local file = tmp .. "/t.ckpt"

local read, write = support.read_file, support.write_file

local function roundtrip(v)
  blua.save(file, v)
  return blua.load(file)
end

-- Bitwise equality of every element (NaN payloads included) through the double bit pattern.
local function same_bits(a, b)
  if a:dim() ~= b:dim() then return false end
  local r, c = a:size()
  local r2, c2 = b:size()
  if r ~= r2 or c ~= c2 then return false end
  for i = 1, r do
    for j = 1, (c or 1) do
      local x = a:dim() == 2 and a:get(i, j) or a:get(i)
      local y = b:dim() == 2 and b:get(i, j) or b:get(i)
      if string.pack("<d", x) ~= string.pack("<d", y) then return false end
    end
  end
  return true
end

-- A float IDX file turned into a tensor: the only way to plant NaNs with chosen payloads.
local function from_bits(rows, cols, words)
  local parts = {string.pack(">BBBBI4I4", 0, 0, 0x0D, 2, rows, cols)}
  for i, w in ipairs(words) do parts[i + 1] = string.pack(">I4", w) end
  local path = tmp .. "/bits.idx"
  write(path, table.concat(parts))
  return blua.data.idx(path)
end

-- CRC-32 (the zlib polynomial), to build checkpoints whose checksums are right but whose
-- contents are hostile.
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  crc_table[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

local MAGIC = "\x89BLUA\r\n\x1a"
local function checkpoint(payload, version)
  local h = MAGIC .. string.pack("<I4I4I8I4", version or 1, 0, #payload, crc32(payload))
  return h .. string.pack("<I4", crc32(h)) .. payload
end

local function expect_load_error(bytes, want)
  write(file, bytes)
  local ok, err = pcall(blua.load, file)
  assert.is_false(ok, "loaded a bad checkpoint")
  err = tostring(err)
  assert.truthy(err:find("in 'blua.load'", 1, true), err)
  assert.truthy(err:find("'" .. file .. "'", 1, true), err)
  assert.truthy(err:find(want, 1, true), ("wanted %q in %q"):format(want, err))
end

describe("saving tensors", function()
  it("round-trips values bit for bit, NaN payloads and infinities included", function()
    local words = {0x7FC01234, 0xFFC00001, 0x7F800001, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x3F800000}
    local t = from_bits(2, 4, words)
    local r = roundtrip(t)
    assert.is_true(same_bits(t, r))
    assert.is_true(r:get(1, 1) ~= r:get(1, 1)) -- still NaN
    assert.equal(1 / 0, r:get(1, 4))
    -- The loaded tensor saves to the very same bytes.
    local first = read(file)
    blua.save(file, r)
    assert.equal(first, read(file))
  end)

  it("round-trips random tensors, 1-D and 2-D, small and large", function()
    blua.manualSeed(11)
    for _, t in ipairs({blua.randn(3, 5), blua.randn(200, 300), blua.tensor{1.5, -2, 3}, blua.randn(1, 1)}) do
      local r = roundtrip(t)
      assert.equal(t:dim(), r:dim())
      assert.same({t:size()}, {r:size()})
      assert.equal(0, (r - t):abs():max())
    end
    local v = roundtrip(blua.tensor{1, 2, 3})
    assert.equal(1, v:dim())
    assert.equal(3, v:get(3))
  end)

  it("saves views and transposes as their contents", function()
    blua.manualSeed(3)
    local base = blua.randn(40, 30)
    local cases = {base:narrow(1, 5, 10), base:narrow(2, 3, 7), base:t(), base:narrow(2, 2, 20):t(),
                   blua.randn(300, 400):t()}
    for _, v in ipairs(cases) do
      local r = roundtrip(v)
      assert.same({v:size()}, {r:size()})
      assert.equal(0, (r - v):abs():max())
      assert.is_true(r:isContiguous())
    end
  end)

  it("keeps one tensor referenced twice as one tensor", function()
    local t = blua.ones(2, 2)
    local r = roundtrip({a = t, b = t, c = t:clone()})
    assert.equal(r.a, r.b)
    assert.are_not.equal(r.a, r.c)
    r.a:set(1, 1, 5)
    assert.equal(5, r.b:get(1, 1))
  end)

  -- The times are printed, not asserted: a shared machine makes any bound flaky.
  it("saves and loads 60000x784 exactly", function()
    local big = blua.rand(60000, 784)
    local t0 = blua.clock()
    blua.save(file, {x = big})
    local t1 = blua.clock()
    local r = blua.load(file)
    local t2 = blua.clock()
    print(("\n    60000x784: save %.3f s, load %.3f s"):format(t1 - t0, t2 - t1))
    assert.equal(0, (r.x - big):abs():max())
  end)
end)

describe("saving tables", function()
  it("keeps integers and floats apart, and every number exactly", function()
    local nums = {1, 1.0, -0.0, 0.1, math.maxinteger, math.mininteger, 2^53 + 0.0, 1e308, 5e-324, 1 / 0, -1 / 0}
    local r = roundtrip(nums)
    for i, v in ipairs(nums) do
      assert.equal(math.type(v), math.type(r[i]))
      assert.equal(string.pack("<n", v), string.pack("<n", r[i]))
    end
    assert.equal(-1 / 0, 1 / r[3]) -- negative zero survives
    local nan = roundtrip({0 / 0})[1]
    assert.is_true(nan ~= nan)
  end)

  it("keeps strings, booleans, nesting and keys of every kind", function()
    local key_t, key_x = {k = 1}, blua.ones(1, 1)
    local v = {
      "", "a\0b", string.rep("xyz", 100000), true, false,
      nested = {deep = {deeper = {deepest = "here"}}},
      [2.5] = "float key", [-7] = "int key", [true] = "bool key", [key_t] = "table key", [key_x] = "tensor key",
      ["with space"] = 1,
    }
    local r = roundtrip(v)
    assert.equal("", r[1])
    assert.equal("a\0b", r[2])
    assert.equal(string.rep("xyz", 100000), r[3])
    assert.is_true(r[4])
    assert.is_false(r[5])
    assert.equal("here", r.nested.deep.deeper.deepest)
    assert.equal("float key", r[2.5])
    assert.equal("int key", r[-7])
    assert.equal("bool key", r[true])
    assert.equal(1, r["with space"])
    local tk, xk = 0, 0
    for k, val in pairs(r) do
      if type(k) == "table" then tk = tk + 1; assert.equal("table key", val); assert.equal(1, k.k) end
      if blua.isTensor(k) then xk = xk + 1; assert.equal("tensor key", val) end
    end
    assert.equal(1, tk)
    assert.equal(1, xk)
  end)

  it("saves top-level values that are not tables", function()
    assert.equal(42, roundtrip(42))
    assert.equal("s", roundtrip("s"))
    assert.is_false(roundtrip(false))
    assert.is_nil(roundtrip(nil))
  end)

  it("preserves shared references and cycles", function()
    local shared = {1, 2, 3}
    local v = {a = shared, b = shared, list = {shared, shared}}
    v.self = v
    local x, y = {name = "x"}, {name = "y"}
    x.other, y.other = y, x
    v.pair = x
    local r = roundtrip(v)
    assert.equal(r.a, r.b)
    assert.equal(r.a, r.list[1])
    assert.equal(r.list[1], r.list[2])
    assert.equal(r, r.self)
    assert.equal("y", r.pair.other.name)
    assert.equal(r.pair, r.pair.other.other)
    assert.same({1, 2, 3}, r.a)
  end)

  it("restores registered types and refuses unregistered metatables", function()
    local Point = {}
    Point.__index = Point
    function Point:norm2() return self.x * self.x + self.y * self.y end
    assert.equal(Point, blua.register_type("test.Point", Point))
    local p = setmetatable({x = 3, y = 4}, Point)
    local r = roundtrip({p = p, again = p})
    assert.equal(Point, getmetatable(r.p))
    assert.equal(25, r.p:norm2())
    assert.equal(r.p, r.again)
    -- A type registered again under the same name takes over.
    local Point2 = {__index = {kind = function() return 2 end}}
    blua.register_type("test.Point", Point2)
    assert.equal(Point2, getmetatable(blua.load(file).p))
    assert.has_error(function() blua.save(file, {q = setmetatable({}, Point)}) end,
      "cannot save in 'blua.save': obj.q is a table whose metatable is not a registered type " ..
      "(blua.register_type(name, mt) makes such tables saveable)")
    assert.has_error(function() blua.register_type("", {}) end)
    assert.has_error(function() blua.register_type("x", 1) end)
  end)

  it("names the path of a value that cannot be saved", function()
    local cases = {
      {{layers = {{}, {fn = print}}}, "obj.layers[2].fn is a function"},
      {{co = coroutine.create(function() end)}, "obj.co is a coroutine"},
      {{f = io.stdout}, "obj.f is a userdata that is not a tensor"},
      {{["a b"] = {[true] = {[1.5] = print}}}, 'obj["a b"][true][1.5] is a function'},
      {{t = {[print] = 1}}, "a key of obj.t is a function"},
      {print, "obj is a function"},
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(blua.save, file, case[1])
      assert.is_false(ok)
      assert.truthy(tostring(err):find("cannot save in 'blua.save': " .. case[2], 1, true), err)
    end
  end)

  it("leaves the old file untouched when a save fails", function()
    blua.save(file, {version = 1})
    assert.has_error(function() blua.save(file, {version = 2, bad = print}) end)
    assert.equal(1, blua.load(file).version)
    assert.has_error(function() blua.save(tmp .. "/no/such/dir/x.ckpt", 1) end)
    local p = io.popen("ls -A '" .. tmp .. "'")
    local listing = p:read("a")
    p:close()
    assert.is_nil(listing:find("tmp%-"), listing) -- no temporary file left behind
  end)

  it("refuses tables nested too deeply, in both directions", function()
    local deep = {}
    local cur = deep
    for _ = 1, 1100 do cur.next = {}; cur = cur.next end
    assert.has_error(function() blua.save(file, deep) end)
    -- 1100 nested table headers, written by hand.
    local payload = string.rep("\6" .. string.pack("<I8", 1) .. "\3" .. string.pack("<i8", 1), 1100) .. "\0"
    expect_load_error(checkpoint(payload), "nested more than 1000 deep")
  end)
end)

describe("loading damaged checkpoints", function()
  local good
  setup(function()
    blua.manualSeed(5)
    blua.save(file, {w = blua.randn(20, 10), name = "net", epochs = 3, list = {1, 2.5, "x"}})
    good = read(file)
  end)

  it("rejects a file truncated anywhere", function()
    for cut = 0, #good - 1, 13 do
      write(file, good:sub(1, cut))
      local ok, err = pcall(blua.load, file)
      assert.is_false(ok, "loaded a file cut at " .. cut)
      assert.truthy(tostring(err):find(file, 1, true), err)
      assert.truthy(tostring(err):find("bad checkpoint in 'blua.load'", 1, true), err)
    end
    expect_load_error(good:sub(1, #good - 1), "the file is truncated")
    expect_load_error("", "the file is empty")
    expect_load_error(good:sub(1, 20), "header is truncated")
  end)

  it("rejects any flipped bit", function()
    for pos = 1, #good, 7 do
      local byte = good:byte(pos) ~ (1 << (pos % 8))
      write(file, good:sub(1, pos - 1) .. string.char(byte) .. good:sub(pos + 1))
      local ok, err = pcall(blua.load, file)
      assert.is_false(ok, "loaded a file with a bit flipped at byte " .. pos)
      assert.truthy(tostring(err):find(file, 1, true), err)
    end
    expect_load_error(good:sub(1, 40) .. string.char(good:byte(41) ~ 1) .. good:sub(42), "payload checksum mismatch")
    expect_load_error(good:sub(1, 16) .. string.char(good:byte(17) ~ 1) .. good:sub(18), "header checksum mismatch")
  end)

  it("loads version 1 files (the 2-D format) and writes version 2 with N-d tensors", function()
    local v1 = string.pack("<BBi8i8ffff", 9, 2, 2, 2, 1, 2, 3, 4)
    write(file, checkpoint(v1, 1))
    assert.are.same({{1, 2}, {3, 4}}, blua.load(file):totable())
    write(file, checkpoint(string.pack("<BBi8i8ff", 9, 1, 2, 1, 5, 6), 1))
    assert.are.same({5, 6}, blua.load(file):totable())
    -- the N-d tag does not exist in version 1 files
    local nd = string.pack("<BBi8i8i8ffff", 10, 3, 1, 2, 2, 1, 2, 3, 4)
    expect_load_error(checkpoint(nd, 1), "tag 10 (an N-d tensor) does not exist in format version 1")
    write(file, checkpoint(nd, 2))
    assert.are.same({{{1, 2}, {3, 4}}}, blua.load(file):totable())
    expect_load_error(checkpoint(string.pack("<BBi8", 10, 9, 1), 2), "tensor of dimension 9")
    expect_load_error(checkpoint(string.pack("<BBi8i8i8", 10, 3, 1, -2, 2), 2), "impossible shape")
    expect_load_error(checkpoint(string.pack("<BBi8i8i8", 10, 3, 1 << 20, 1 << 20, 1 << 20), 2), "impossible shape")
    blua.save(file, blua.zeros(2, 3, 4))
    local bytes = read(file)
    assert.equal(2, string.unpack("<I4", bytes, 9))
    assert.are.same({2, 3, 4}, {blua.load(file):size()})
  end)

  it("rejects other files, other versions and extra bytes", function()
    expect_load_error("just some text that is long enough to hold a header", "not a blua checkpoint")
    expect_load_error(checkpoint("\0", 3), "format version 3 is not supported")
    expect_load_error(good .. "\0", "trailing bytes")
    expect_load_error(checkpoint("\0\0"), "1 payload bytes follow the saved value")
    local ok, err = pcall(blua.load, tmp .. "/missing.ckpt")
    assert.is_false(ok)
    assert.truthy(err:find("cannot open checkpoint in 'blua.load'", 1, true), err)
  end)

  it("checks every length and reference of a well-checksummed payload", function()
    local u8, i64 = function(v) return string.pack("<I8", v) end, function(v) return string.pack("<i8", v) end
    local cases = {
      {"\99", "unknown value tag 99"},
      {"\6" .. u8(1 << 40), "table of 1099511627776 pairs"},
      {"\5" .. u8(1 << 40) .. "abc", "string of 1099511627776 bytes"},
      {"\5" .. u8(10) .. "abc", "string of 10 bytes with 3 left"},
      {"\8" .. u8(0), "reference to object 0 before it exists"},
      {"\6" .. u8(1) .. "\8" .. u8(1) .. "\2", "reference to object 1 before it exists"},
      {"\9\2" .. i64(1 << 16) .. i64(1 << 16), "needs 17179869184 bytes"},
      {"\9\2" .. i64(-1) .. i64(3), "impossible shape"},
      {"\9\3" .. i64(1) .. i64(1) .. "\0\0\0\0", "dimension 3"},
      {"\9\2" .. i64(1 << 40) .. i64(1 << 40), "exceeds the element limit"},
      {"\6" .. u8(1) .. "\0\2", "nil or NaN key"},
      {"\6" .. u8(1) .. "\4" .. string.pack("<d", 0 / 0) .. "\2", "nil or NaN key"},
      {"\6" .. u8(1) .. "\2\0", "nil value"},
      {"\7" .. u8(9) .. "no.such.T" .. u8(0), "unknown type 'no.such.T'"},
      {"\7" .. u8(1000) .. "x", "type name of 1000 bytes"},
      {"\3" .. "\1\2\3", "the payload ends inside an integer"},
      {"", "the payload ends inside a value tag"},
    }
    for _, case in ipairs(cases) do expect_load_error(checkpoint(case[1]), case[2]) end
    -- The same hand-made encoding of a valid value loads, so the cases above fail for their flaw.
    local r = blua.load((function()
      write(file, checkpoint("\6" .. u8(2) .. "\3" .. i64(1) .. "\2" .. "\5" .. u8(1) .. "k" .. "\8" .. u8(0)))
      return file
    end)())
    assert.is_true(r[1])
    assert.equal(r, r.k)
  end)
end)

describe("crash safety", function()
  it("survives SIGKILL during saves: the file always loads, old or new", function()
    local path = tmp .. "/kill.ckpt"
    local script = tmp .. "/saver.lua"
    write(script, [[
      local path, k, rounds = arg[1], tonumber(arg[2]), tonumber(arg[3])
      local t = blua.zeros(1000, 1000)
      for _ = 1, rounds do
        k = k + 1
        t:fill(k)
        blua.save(path, {k = k, t = t, s = string.rep("s", k % 997)})
      end
    ]])
    blua.save(path, {k = 0, t = blua.zeros(1000, 1000), s = ""})
    -- Time a few saves, so the kills land from start-up through several saves in flight.
    local t0 = blua.clock()
    assert(os.execute(("'%s' '%s' '%s' 0 3"):format(exe, script, path)))
    local span = blua.clock() - t0
    local seed = os.time()
    math.randomseed(seed)
    local changed = 0
    for round = 1, 50 do
      local before = blua.load(path).k
      local delay = span * (0.3 + 1.2 * math.random())
      os.execute(("'%s' '%s' '%s' %d 1000000 & pid=$!; sleep %.3f; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null")
        :format(exe, script, path, before, delay))
      local ok, r = pcall(blua.load, path)
      assert.is_true(ok, ("round %d (seed %d): %s"):format(round, seed, tostring(r)))
      assert.is_true(r.k >= before, "went back in time")
      assert.equal(r.k, r.t:min())
      assert.equal(r.k, r.t:max())
      assert.equal(r.k % 997, #r.s)
      if r.k > before then changed = changed + 1 end
      os.execute("rm -f '" .. path .. "'.tmp-*")
    end
    print(("\n    kill test: %d of 50 rounds saw a newer checkpoint (3 saves take %.3f s)"):format(changed, span))
    assert.is_true(changed > 0, "no round got past start-up: the test did not exercise saving")
  end)
end)
