-- Data sets: the real MNIST and Fashion-MNIST (shapes, label counts, pixel ranges, known first
-- labels), IDX files of every kind written here, a corpus of hostile IDX files (each must raise
-- an error naming the file), subsets, the seeded batch iterator and one-hot labels.
local blua = require "blua"
local support = require "tests.support"

local exe = os.getenv("BLUA_EXE") or "blua"
local tmp = support.tempdir(teardown)

local function write(name, bytes)
  local path = tmp .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

local function gzip(name, bytes)
  local raw = write(name .. ".src", bytes)
  assert(os.execute(("gzip -c -n '%s' > '%s/%s'"):format(raw, tmp, name)))
  return tmp .. "/" .. name
end

local read = support.read_file

-- An IDX header: type code, then dimensions.
local function idx_header(code, ...)
  local dims = {...}
  local h = string.pack(">BBBB", 0, 0, code, #dims)
  for _, d in ipairs(dims) do h = h .. string.pack(">I4", d) end
  return h
end

-- Runs a shell command, returns its output and whether it succeeded.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

-- The real data sets. A test is registered as pending, with the reason, only when the files
-- are absent (scripts/test fetches them first); any other loading error fails the test.
local function with_set(name, loader, split, fn)
  local ok, d = pcall(loader, split)
  if not ok and tostring(d):find("data set not found", 1, true) then
    pending(name .. " -- skipped, data set absent (run scripts/fetch-data): " .. tostring(d))
    return
  end
  it(name, function()
    if not ok then error(d, 0) end
    fn(d)
  end)
end

local function label_counts(y)
  local counts = {}
  local n = y:size(1)
  for i = 1, n do
    local l = y:get(i, 1)
    counts[l] = (counts[l] or 0) + 1
  end
  return counts
end

for _, set in ipairs({"mnist", "fashion"}) do
  local loader = blua.data[set]
  describe("blua.data." .. set, function()
    with_set("has 60000 training samples of 784 pixels in [0, 1] and labels 1..10", loader, "train", function(d)
      assert.equal(60000, d.n)
      assert.same({60000, 784}, {d.x:size()})
      assert.same({60000, 1}, {d.y:size()})
      assert.equal(0, d.x:min())
      assert.equal(1, d.x:max())
      assert.equal(1, d.y:min())
      assert.equal(10, d.y:max())
      assert.equal(set .. "/train", d.name)
      -- Pixels are k/255 for integers k.
      local scaled = d.x:narrow(1, 1, 100):clone():mul(255)
      assert.is_true((scaled - scaled:clone():add(0.5):floor()):abs():max() < 1e-3)
      local counts = label_counts(d.y)
      for l = 1, 10 do
        assert.is_true(counts[l] >= 5000 and counts[l] <= 7000, ("label %d occurs %s times"):format(l, counts[l]))
      end
    end)

    with_set("has 10000 test samples", loader, "test", function(d)
      assert.equal(10000, d.n)
      assert.same({10000, 784}, {d.x:size()})
      assert.same({10000, 1}, {d.y:size()})
      assert.is_true(d.x:min() >= 0 and d.x:max() <= 1)
      local counts = label_counts(d.y)
      local total = 0
      for l = 1, 10 do
        assert.is_true(counts[l] >= 800 and counts[l] <= 1200)
        total = total + counts[l]
      end
      assert.equal(10000, total)
    end)

    with_set("returns the cached set on a second call", loader, "test", function(d)
      assert.equal(d, loader("test"))
    end)
  end)
end

describe("the published data", function()
  with_set("starts with the known MNIST training labels 5 0 4 1 9 (labels 6 1 5 2 10)", blua.data.mnist, "train", function(d)
    assert.same({6, 1, 5, 2, 10}, {d.y:get(1, 1), d.y:get(2, 1), d.y:get(3, 1), d.y:get(4, 1), d.y:get(5, 1)})
    -- The first image, a 5, has ink in its middle rows and none in its corners.
    assert.equal(0, d.x:get(1, 1))
    assert.is_true(d.x:narrow(1, 1, 1):sum() > 50)
  end)

  with_set("starts Fashion-MNIST training with an ankle boot (class 9, label 10)", blua.data.fashion, "train", function(d)
    assert.equal(10, d.y:get(1, 1))
  end)

  with_set("prints 60000 10000 from the command line", blua.data.mnist, "test", function()
    local out, ok = run(("'%s' -e 'print(blua.data.mnist(\"train\").n, blua.data.fashion(\"test\").n)'"):format(exe))
    assert.is_true(ok, out)
    assert.equal("60000\t10000\n", out)
  end)
end)

describe("data set errors", function()
  it("rejects an unknown split", function()
    assert.has_error(function() blua.data.mnist("validation") end,
      'bad split in \'blua.data.mnist\': validation (use "train" or "test")')
    assert.has_error(function() blua.data.fashion() end)
  end)

  it("says how to fetch a missing data set", function()
    local empty = tmp .. "/empty-data"
    os.execute("mkdir -p " .. empty)
    local out, ok = run(("BLUA_DATA='%s' '%s' -e 'blua.data.mnist(\"test\")'"):format(empty, exe))
    assert.is_falsy(ok)
    assert.truthy(out:find("data set not found in 'blua.data.mnist'", 1, true), out)
    assert.truthy(out:find("scripts/fetch-data", 1, true), out)
    assert.truthy(out:find(empty .. "/mnist", 1, true), out)
  end)

  it("finds data under BLUA_DATA, raw or gzip", function()
    local root = tmp .. "/mini"
    os.execute(("mkdir -p '%s/mnist' '%s/fashion'"):format(root, root))
    local imgs = idx_header(0x08, 3, 28, 28) .. string.rep("\0", 784 * 2) .. string.rep("\255", 784)
    local labs = idx_header(0x08, 3) .. "\0\9\4"
    for _, split in ipairs({"t10k", "train"}) do
      write(("mini/mnist/%s-images-idx3-ubyte"):format(split), imgs)
      write(("mini/mnist/%s-labels-idx1-ubyte"):format(split), labs)
      gzip(("mini/fashion/%s-images-idx3-ubyte.gz"):format(split), imgs)
      gzip(("mini/fashion/%s-labels-idx1-ubyte.gz"):format(split), labs)
    end
    local script = write("mini.lua", [[
      local m, f = blua.data.mnist("test"), blua.data.fashion("train")
      print(("%d %d %g %g %g %g %g"):format(m.n, f.n, m.x:sum(), f.x:sum(), m.y:get(1, 1), m.y:get(2, 1), f.y:get(3, 1)))]])
    local out, ok = run(("BLUA_DATA='%s' '%s' '%s'"):format(root, exe, script))
    assert.is_true(ok, out)
    assert.equal("3 3 784 784 1 10 5\n", out)
    -- Wrong shapes are refused: labels that do not match the images.
    write("mini/mnist/t10k-labels-idx1-ubyte", idx_header(0x08, 2) .. "\0\1")
    out, ok = run(("BLUA_DATA='%s' '%s' -e 'blua.data.mnist(\"test\")'"):format(root, exe))
    assert.is_falsy(ok)
    assert.truthy(out:find("does not hold 3 byte labels", 1, true), out)
  end)
end)

describe("blua.data.idx", function()
  it("reads every type code, raw and gzip, rows = first dimension", function()
    local ubyte = idx_header(0x08, 2, 3) .. "\1\2\3\4\5\255"
    for _, path in ipairs({write("u8", ubyte), gzip("u8.gz", ubyte)}) do
      local t, info = blua.data.idx(path)
      assert.same({2, 3}, {t:size()})
      assert.same({{1, 2, 3}, {4, 5, 255}}, t:totable())
      assert.equal("ubyte", info.type)
      assert.same({2, 3}, info.dims)
      assert.equal(path:sub(-3) == ".gz", info.compressed)
    end
    local t = blua.data.idx(write("i8", idx_header(0x09, 2) .. "\128\127"))
    assert.same({2, 1}, {t:size()})
    assert.same({-128, 127}, {t:get(1, 1), t:get(2, 1)})
    t = blua.data.idx(write("i16", idx_header(0x0B, 2) .. string.pack(">i2>i2", -300, 12345)))
    assert.same({-300, 12345}, {t:get(1, 1), t:get(2, 1)})
    t = blua.data.idx(write("i32", idx_header(0x0C, 1, 2) .. string.pack(">i4>i4", -7, 1 << 20)))
    assert.same({-7, 1 << 20}, {t:get(1, 1), t:get(1, 2)})
    t = blua.data.idx(gzip("f32.gz", idx_header(0x0D, 1, 1, 2) .. string.pack(">f>f", 0.5, -1 / 0)))
    assert.same({1, 2}, {t:size()})
    assert.same({0.5, -1 / 0}, {t:get(1, 1), t:get(1, 2)})
    t = blua.data.idx(write("f64", idx_header(0x0E, 2, 1, 1, 1) .. string.pack(">d>d", 0.25, -1e10)))
    assert.same({0.25, -1e10}, {t:get(1, 1), t:get(2, 1)})
  end)

  it("gives the same tensor for a raw file and its gzip", function()
    local bytes = {}
    for i = 1, 100 * 30 do bytes[i] = string.char((i * 37) % 256) end
    local body = idx_header(0x08, 100, 5, 6) .. table.concat(bytes)
    local a, b = blua.data.idx(write("same", body)), blua.data.idx(gzip("same.gz", body))
    assert.same({100, 30}, {a:size()})
    assert.equal(0, (a - b):abs():max())
  end)

  local h3 = idx_header(0x08, 2, 2, 2)
  local good = h3 .. "\1\2\3\4\5\6\7\8"
  local gz_good = read(gzip("good.gz", good))
  local hostile = {
    {"empty", "", "the file is empty"},
    {"short-header", "\0\0\8", "header is truncated"},
    {"wrong-magic", "\18\52\86\120\0\0\0\1", "magic 0x12345678 is not an IDX magic"},
    {"wrong-type", idx_header(0x0A, 2) .. "\0\0", "unknown type code 0x0a"},
    {"rank-0", "\0\0\8\0", "rank 0"},
    {"dims-cut", h3:sub(1, 9), "header is truncated"},
    {"huge-dims", idx_header(0x08, 65536, 65536, 65536) .. "\0", "more than"},
    {"overflow", idx_header(0x0E, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) .. "\0", "more than"},
    {"big-claim", idx_header(0x0D, 1 << 20, 1 << 12) .. "\0\0\0\0", "truncated"},
    {"truncated", good:sub(1, -2), "truncated"},
    {"trailing", good .. "x", "trailing garbage"},
    {"zero-dim", idx_header(0x08, 3, 0), "dimension 2 is 0"},
    {"gz-trailing.gz", gz_good .. "garbage", "trailing garbage"},
    {"gz-cut.gz", gz_good:sub(1, -9), "truncated"},
    {"gz-crc.gz", gz_good:sub(1, -9) .. string.rep("\255", 4) .. gz_good:sub(-4), "corrupt gzip"},
    {"gz-header-only.gz", gz_good:sub(1, 6), "truncated"},
  }
  -- gzip of hostile contents: the decompressed data is judged like a raw file.
  for _, case in ipairs({{"gz-truncated.gz", good:sub(1, -2), "truncated"}, {"gz-long.gz", good .. "xy", "trailing garbage"},
                         {"gz-huge.gz", idx_header(0x0D, 1 << 20, 1 << 12), "truncated"},
                         {"gz-magic.gz", "\1\2\3\4\0\0\0\0", "not an IDX magic"}}) do
    hostile[#hostile + 1] = {case[1], read(gzip(case[1] .. ".tmp", case[2])), case[3]}
  end
  -- Deflate data mangled in the middle.
  local mangled = gz_good:sub(1, 12) .. string.rep("\165", #gz_good - 20) .. gz_good:sub(-8)
  hostile[#hostile + 1] = {"gz-corrupt.gz", mangled, ""}

  for _, case in ipairs(hostile) do
    it("rejects a hostile file: " .. case[1], function()
      local path = write(case[1], case[2])
      local ok, err = pcall(blua.data.idx, path)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("in 'blua.data.idx'", 1, true), err)
      assert.truthy(tostring(err):find("'" .. path .. "'", 1, true), err)
      assert.truthy(tostring(err):find(case[3], 1, true), err)
    end)
  end

  it("rejects a missing file and a directory", function()
    assert.has_error(function() blua.data.idx(tmp .. "/nope") end,
      ("cannot open IDX file in 'blua.data.idx': '%s/nope': No such file or directory"):format(tmp))
    assert.has_error(function() blua.data.idx(tmp) end,
      ("cannot open IDX file in 'blua.data.idx': '%s': is a directory"):format(tmp))
    assert.has_error(function() blua.data.idx(42) end)
  end)
end)

-- A small synthetic set: row i of x is filled with i, label (i % 10) + 1.
local function synthetic(n, cols)
  local x, y = blua.zeros(n, cols), blua.zeros(n, 1)
  for i = 1, n do
    x:narrow(1, i, 1):fill(i)
    y:set(i, 1, (i % 10) + 1)
  end
  return {x = x, y = y, n = n, classes = 10, name = "synthetic"}
end

describe("blua.data.subset", function()
  it("is a view of the rows first .. first+count-1", function()
    local d = synthetic(20, 3)
    local s = blua.data.subset(d, 5, 4)
    assert.equal(4, s.n)
    assert.same({4, 3}, {s.x:size()})
    assert.same({4, 1}, {s.y:size()})
    assert.equal(5, s.x:get(1, 1))
    assert.equal(8, s.x:get(4, 3))
    assert.equal(10, s.classes)
    assert.equal("synthetic[5..8]", s.name)
    s.x:set(1, 1, -1)
    assert.equal(-1, d.x:get(5, 1)) -- shares storage
    assert.equal(20, blua.data.subset(d, 20, 1).x:get(1, 2))
  end)

  it("refuses ranges outside the set", function()
    local d = synthetic(10, 2)
    assert.has_error(function() blua.data.subset(d, 0, 3) end, "out of range in 'blua.data.subset': rows 0..2 of a set of 10")
    assert.has_error(function() blua.data.subset(d, 8, 4) end, "out of range in 'blua.data.subset': rows 8..11 of a set of 10")
    assert.has_error(function() blua.data.subset(d, 1, 0) end)
    assert.has_error(function() blua.data.subset(d, 1.5, 2) end)
    assert.has_error(function() blua.data.subset({}, 1, 2) end)
  end)
end)

describe("blua.data.batches", function()
  local function collect(d, bs, opts)
    local rows, sizes = {}, {}
    for xb, yb, idx, k in blua.data.batches(d, bs, opts) do
      sizes[#sizes + 1] = xb:size(1)
      assert.equal(#sizes, k)
      assert.equal(xb:size(1), yb:size(1))
      assert.equal(xb:size(1), #idx)
      for i, r in ipairs(idx) do
        assert.equal(r, xb:get(i, 1)) -- row i of the batch is row idx[i] of the set
        assert.equal((r % 10) + 1, yb:get(i, 1))
        rows[#rows + 1] = r
      end
    end
    return rows, sizes
  end

  it("visits every row once, in order without shuffle", function()
    local d = synthetic(25, 2)
    local rows, sizes = collect(d, 10, {shuffle = false})
    assert.same({10, 10, 5}, sizes)
    for i = 1, 25 do assert.equal(i, rows[i]) end
    local _, dropped = collect(d, 10, {shuffle = false, drop_last = true})
    assert.same({10, 10}, dropped)
  end)

  it("shuffles reproducibly from a seed, covering every row once", function()
    local d = synthetic(50, 2)
    local a, sizes = collect(d, 8, {seed = 42})
    local b = collect(d, 8, {seed = 42})
    local c = collect(d, 8, {seed = 43})
    assert.same(a, b)
    assert.are_not.same(a, c)
    assert.same({8, 8, 8, 8, 8, 8, 2}, sizes)
    local sorted = {table.unpack(a)}
    table.sort(sorted)
    for i = 1, 50 do assert.equal(i, sorted[i]) end
    local inorder = true
    for i = 1, 50 do inorder = inorder and a[i] == i end
    assert.is_false(inorder)
  end)

  it("follows blua.manualSeed when no seed is given", function()
    local d = synthetic(30, 1)
    blua.manualSeed(7)
    local a = collect(d, 30)
    blua.manualSeed(7)
    local b = collect(d, 30)
    assert.same(a, b)
  end)

  it("gives copies when shuffled or asked to, views otherwise", function()
    local d = synthetic(6, 2)
    for xb in blua.data.batches(d, 3, {seed = 1}) do xb:fill(-5) end
    for xb in blua.data.batches(d, 3, {shuffle = false, copy = true}) do xb:fill(-5) end
    assert.equal(1, d.x:min())
    for xb in blua.data.batches(d, 3, {shuffle = false}) do xb:fill(-5) end
    assert.equal(-5, d.x:max())
  end)

  it("checks its arguments", function()
    local d = synthetic(4, 1)
    assert.has_error(function() blua.data.batches(d, 0) end)
    assert.has_error(function() blua.data.batches(d, 2, {suffle = true}) end,
      "bad option in 'blua.data.batches': unknown option 'suffle' (known: shuffle, seed, copy, drop_last)")
    assert.has_error(function() blua.data.batches(d, 2, {seed = 1.5}) end)
    assert.has_error(function() blua.data.batches({x = d.x, y = blua.zeros(3, 1)}, 2) end)
  end)
end)

describe("blua.data.onehot", function()
  it("puts a 1 in the label's column", function()
    local y = blua.tensor{{3}, {1}, {10}}
    local o = blua.data.onehot(y, 10)
    assert.same({3, 10}, {o:size()})
    assert.equal(3, o:sum())
    assert.equal(1, o:get(1, 3))
    assert.equal(1, o:get(2, 1))
    assert.equal(1, o:get(3, 10))
    assert.same({3, 4}, {blua.data.onehot(blua.tensor{{1}, {2}, {4}}, 4):size()})
  end)

  it("refuses labels outside 1..classes", function()
    assert.has_error(function() blua.data.onehot(blua.tensor{{1}, {11}}, 10) end,
      "bad label in 'blua.data.onehot': 11 at row 2 is not an integer in 1..10")
    assert.has_error(function() blua.data.onehot(blua.tensor{{0}}, 10) end)
    assert.has_error(function() blua.data.onehot(blua.tensor{{1.5}}, 10) end)
    assert.has_error(function() blua.data.onehot(blua.tensor{{1, 2}}, 10) end)
    assert.has_error(function() blua.data.onehot("y", 10) end)
  end)
end)
