-- t:expand / t:expandAs: views whose size-1 dimensions repeat by a step of 0. Reads through
-- every kind of method against plain Lua values; writes into such a view (any in-place method,
-- any destination) refused with one message; the loop over every in-place method of the docs.
local blua = require "blua"

local function refuses(f, text)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  assert.is_truthy(tostring(err):find(text, 1, true), tostring(err))
end

local WRITE = "the tensor is an expanded view whose entries share memory; clone it first"

-- x is 3x1 {1, 2, 3}: its expansion to 3x4 has entry (i, j) = i.
local function col() return blua.tensor{{1}, {2}, {3}} end
local function ref(i, j) return i end

local function same(t, f, rows, cols)
  local tab = t:totable()
  assert.are.equal(rows, #tab)
  for i = 1, rows do
    assert.are.equal(cols, #tab[i])
    for j = 1, cols do assert.are.equal(f(i, j), tab[i][j]) end
  end
end

describe("t:expand", function()
  it("is a view with step 0 along the repeated dimensions, sharing t's storage", function()
    local x = col()
    local e = x:expand(3, 4)
    assert.are.same({3, 4}, {e:size()})
    assert.are.same({1, 0}, {e:stride()})
    assert.is_false(e:isContiguous())
    same(e, ref, 3, 4)
    x[2][1] = 7
    assert.are.equal(7, e:get(2, 4))
    same(x:expand{3, 4}, function(i) return i == 2 and 7 or i end, 3, 4)
    same(col():expandAs(blua.zeros(3, 4)), ref, 3, 4)
  end)

  it("adds leading dimensions and keeps sizes given unchanged", function()
    local e = blua.tensor{1, 2}:expand(3, 2)
    assert.are.same({3, 2}, {e:size()})
    same(e, function(_, j) return j end, 3, 2)
    local f = blua.ones(2, 3):expand(4, 2, 3)
    assert.are.same({4, 2, 3}, {f:size()})
    assert.are.equal(24, f:sum())
    -- 8-D: 1x...x1 to 2x...x2
    local g = blua.tensor{5}:view(1):expand(2, 2, 2, 2, 2, 2, 2, 2)
    assert.are.equal(8, g:dim())
    assert.are.equal(5 * 256, g:sum())
    assert.are.equal(5 * 256, g:clone():sum())
  end)

  it("of and to empty tensors", function()
    local z = blua.zeros(1, 3):expand(0, 3)
    assert.are.equal(0, z:nElement())
    z:fill(1) -- no entries, nothing shared
    local e = blua.zeros(0):expand(2, 0)
    assert.are.same({2, 0}, {e:size()})
  end)

  it("refuses bad sizes with clear errors", function()
    refuses(function() blua.ones(2, 3):expand(3, 3) end,
      "bad sizes in 'expand': 3x3 cannot expand a 2x3 tensor (dimension 1 has size 2, not 1)")
    refuses(function() blua.ones(2, 3):expand(3) end, "bad sizes in 'expand': 1 given to expand a 2x3 tensor (2..8 expected)")
    refuses(function() blua.ones(1, 3):expand(0 / 0, 3) end, "bad size in 'expand'")
    refuses(function() blua.ones(1, 3):expand(-1, 3) end, "bad size in 'expand': -1 (sizes must be non-negative)")
    refuses(function() blua.ones(1, 3):expand(math.maxinteger, 3) end, "in 'expand'")
    refuses(function() blua.ones(1, 3):expand(2 ^ 31, 2 ^ 31) end, "tensor too large in 'expand'")
    refuses(function() blua.ones(1, 3):expand(1.5, 3) end, "bad size in 'expand'")
    refuses(function() blua.ones(1, 3):expand(1, 1, 1, 1, 1, 1, 1, 1, 3) end, "t:expand: (n1, n2, ... | {n1, n2, ...}) expected")
    refuses(function() blua.ones(1, 3):expand{1, 1, 1, 1, 1, 1, 1, 1, 3} end, "bad sizes in 'expand': 9 sizes given (1..8)")
    refuses(function() blua.ones(1, 3):expand() end, "bad sizes in 'expand': 0 sizes given (1..8)")
    refuses(function() blua.ones(1, 3):expandAs(blua.ones(2, 2)) end, "bad sizes in 'expandAs'")
  end)

  for _, threads in ipairs{1, 2} do
    it("reads right through every kind of method (" .. threads .. " thread(s))", function()
      local saved = blua.getNumThreads()
      blua.setNumThreads(threads)
      local e = col():expand(3, 4)
      same(e:clone(), ref, 3, 4)
      same(e:contiguous(), ref, 3, 4)
      same(blua.zeros(3, 4):copy(e), ref, 3, 4)
      same(blua.zeros(2, 6):copy(e):view(3, 4), ref, 3, 4)
      assert.is_truthy(tostring(e):find("3x4", 1, true))
      same(blua.ones(3, 4):add(e), function(i) return 1 + i end, 3, 4)
      same(blua.ones(3, 4):add(2, e), function(i) return 1 + 2 * i end, 3, 4)
      same(blua.ones(3, 4):sub(e), function(i) return 1 - i end, 3, 4)
      same(blua.ones(3, 4):mul(2):cmul(e), function(i) return 2 * i end, 3, 4)
      same(blua.ones(3, 4):mul(6):cdiv(e), function(i) return 6 / i end, 3, 4)
      same(blua.ones(3, 4):cmax(e), function(i) return math.max(1, i) end, 3, 4)
      same(e + e, function(i) return 2 * i end, 3, 4)
      same(-e, function(i) return -i end, 3, 4)
      same(e * 3, function(i) return 3 * i end, 3, 4)
      assert.are.equal(24, e:sum())
      assert.are.equal(2, e:mean())
      assert.are.equal(3, e:max())
      assert.are.equal(1, e:min())
      same(e:sum(2), function(i) return 4 * i end, 3, 1)
      same(e:sum(1), function() return 6 end, 1, 4)
      same(e:t():sort(2), function(_, j) return j end, 4, 3)
      same(e:cumsum(2), function(i, j) return i * j end, 3, 4)
      same(e:index(2, {4, 1}), ref, 3, 2)
      same(e:indexRows{3, 1}, function(i) return i == 1 and 3 or 1 end, 2, 4)
      same(e:narrow(2, 2, 2), ref, 3, 2)
      same(e:select(2, 3):view(3, 1), ref, 3, 1)
      same(e:t(), function(_, j) return j end, 4, 3)
      same(e:transpose(1, 2):t(), ref, 3, 4)
      same(e:reshape(4, 3), function(i, j) return ((i - 1) * 3 + j - 1) // 4 + 1 end, 4, 3)
      refuses(function() e:view(12) end, "view")
      assert.are.equal(24, blua.sum and blua.sum(e) or e:sum())
      same(e:maskedSelect(blua.ones(3, 4)):view(3, 4), ref, 3, 4)
      -- products: an expanded operand is copied for BLAS, never passed with a step of 0
      local b = blua.tensor{{1, 0}, {0, 1}, {1, 1}, {2, -1}}
      same(e:mm(b), function(i, j) return i * (j == 1 and 4 or 1) end, 3, 2)
      same(blua.zeros(3, 2):mm(e, b), function(i, j) return i * (j == 1 and 4 or 1) end, 3, 2)
      same(blua.ones(3, 2):addmm(2, 1, e, b), function(i, j) return 2 + i * (j == 1 and 4 or 1) end, 3, 2)
      same(b:t():mm(e:t()), function(i, j) return j * (i == 1 and 4 or 1) end, 2, 3)
      local r = blua.tensor{1, 2, 3, 4}:expand(3, 4)
      same(r:mm(b), function(_, j) return j == 1 and 12 or 1 end, 3, 2)
      local v = e:mv(blua.ones(4))
      assert.are.same({4, 8, 12}, v:totable())
      assert.are.same({4, 8, 12}, blua.zeros(3):mv(e, blua.ones(4)):totable())
      assert.are.same({4, 8, 12}, blua.zeros(3):addmv(e, blua.tensor{1}:expand(4)):totable())
      same(blua.zeros(3, 4):addr(blua.tensor{1}:expand(3), blua.tensor{2}:expand(4)), function() return 2 end, 3, 4)
      local a3 = col():view(1, 3, 1):expand(2, 3, 4)
      local p = a3:bmm(blua.ones(2, 4, 1))
      assert.are.same({{{4}, {8}, {12}}, {{4}, {8}, {12}}}, p:totable())
      assert.are.same({{{4}, {8}, {12}}, {{4}, {8}, {12}}}, blua.zeros(2, 3, 1):bmm(a3, blua.ones(2, 4, 1)):totable())
      -- above the parallel threshold (32768 entries)
      local row = blua.range(1, 200):view(1, 200)
      local big = row:expand(300, 200)
      assert.are.equal(300 * 200 * 201 / 2, big:sum())
      local acc = blua.zeros(300, 200):add(big):add(big:t():t())
      assert.are.equal(2 * 300 * 200 * 201 / 2, acc:sum())
      assert.is_true(acc:narrow(1, 300, 1):equal(row:clone():mul(2)))
      assert.is_true(big:contiguous():equal(big))
      blua.setNumThreads(saved)
    end)
  end

  it("saves its values with blua.save", function()
    local path = os.tmpname()
    blua.save(path, col():expand(3, 4))
    local back = blua.load(path)
    os.remove(path)
    assert.is_true(back:isContiguous())
    same(back, ref, 3, 4)
  end)

  it("refuses writes with the method's name", function()
    local e = col():expand(3, 4)
    refuses(function() e:fill(1) end, "cannot write in 'fill': " .. WRITE)
    refuses(function() e:add(1) end, "cannot write in 'add': " .. WRITE)
    refuses(function() e:copy(blua.ones(3, 4)) end, "cannot write in 'copy': " .. WRITE)
    refuses(function() e:indexFill(2, {1}, 0) end, "cannot write in 'indexFill': " .. WRITE)
    refuses(function() e:maskedFill(blua.ones(3, 4), 0) end, "cannot write in 'maskedFill': " .. WRITE)
    refuses(function() e:apply(function() return 1 end) end, "cannot write in 'apply': " .. WRITE)
    refuses(function() e:map(blua.ones(3, 4), function(a) return a end) end, "cannot write in 'map': " .. WRITE)
    refuses(function() e[1] = 2 end, "cannot write in 'newindex': " .. WRITE)
    refuses(function() e:t():zero() end, "cannot write in 'zero': " .. WRITE)
    refuses(function() e:narrow(1, 1, 2):exp() end, "cannot write in 'exp': " .. WRITE)
    refuses(function() e:mm(blua.ones(4, 4), blua.ones(4, 4):narrow(1, 1, 4)) end, "cannot write in 'mm': " .. WRITE)
    refuses(function() assert(pcall(e.fill, e, 1)) end, "cannot write in 'fill': " .. WRITE)
    -- a source that is an expanded view of the destination's own memory
    local t = blua.ones(3, 4)
    refuses(function() t:add(t:narrow(1, 1, 1):expand(3, 4)) end,
      "bad argument in 'add': the source is an expanded view of the destination's memory; clone it first")
    refuses(function() t:copy(t:narrow(1, 1, 1):expand(3, 4)) end, "the source is an expanded view of the destination's memory")
    refuses(function() t:indexCopy(1, {1, 2, 3}, t:narrow(1, 1, 1):expand(3, 4)) end, "the source is an expanded view")
    refuses(function() t[2] = t[1]:narrow(1, 1, 1):expand(4) end,
      "bad argument in 'newindex': the source is an expanded view of the destination's memory; clone it first")
    refuses(function() t:cmul(t:narrow(1, 1, 1):expand(3, 4)) end, "in 'cmul': the source is an expanded view")
    refuses(function() t:map(t:narrow(1, 1, 1):expand(3, 4), function(a) return a end) end, "in 'map': the source is an expanded view")
    t[2] = blua.tensor{9}:expand(4) -- another tensor's memory: fine
    assert.are.same({9, 9, 9, 9}, t[2]:totable())
    -- slices without repeated entries stay writable views
    local s = e:select(2, 1)
    s:fill(5)
    same(e, function() return 5 end, 3, 4)
  end)

  it("no in-place method of the docs succeeds on an expanded view", function()
    local docs = assert(io.open("docs/api.md")):read("a")
    local names = {}
    for row in docs:gmatch("\n(|[^\n]*)") do
      local first, inplace = row:match("^|([^|]*)|%s*([^|]-)%s*|")
      if inplace == "yes" then
        for item in first:gmatch("`([^`]*)`") do
          local name = item:match("^%a:(%w+)") or item:match("^(%w+)$")
          if name then names[#names + 1] = name end
        end
      end
    end
    assert.is_true(#names >= 60, "found " .. #names .. " in-place methods")
    local function u() return blua.ones(3, 4) end
    local tries = {
      {}, {1}, {2}, {u()}, {1, u()}, {u(), u()}, {1, 1, u(), u()}, {2, {1}, 1}, {2, {1}, u()}, {1, {1}, 1},
      {blua.ones(3, 4), 1}, {blua.ones(3, 4), u()}, {function(a) return a end}, {u(), function(a) return a end},
      {u(), u(), function(a) return a end}, {1, 1, 1}, {u(), 0.5}, {2, 1, 1}, {2, blua.ones(3, 1), u()}, {0, 1},
      {blua.ones(4, 4), blua.ones(4, 4)}, {blua.ones(3, 4), blua.ones(4, 4)}, {blua.ones(4), blua.ones(4)},
    }
    local selves = {
      function() return col():expand(3, 4) end,
      function() return blua.tensor{1}:expand(3) end,
      function() return blua.ones(1, 1, 4):expand(2, 3, 4) end,
    }
    for _, name in ipairs(names) do
      local refused = false
      for _, self in ipairs(selves) do
        for _, args in ipairs(tries) do
          local e = self()
          local m = e[name]
          assert.is_function(m, name)
          local ok, err = pcall(m, e, table.unpack(args))
          assert.is_false(ok, "t:" .. name .. " wrote into an expanded view")
          if tostring(err):find(WRITE, 1, true) then refused = true end
        end
      end
      assert.is_true(refused, "t:" .. name .. " never refused an expanded view")
    end
  end)

  it("no method of blua.Tensor changes an expanded view or its base: it refuses or only reads", function()
    local function u() return blua.ones(3, 4) end
    local tries = {
      {}, {1}, {2}, {u()}, {1, u()}, {u(), u()}, {1, 1, u(), u()}, {2, {1}, 1}, {2, {1}, u()}, {1, {1}, 1},
      {u(), 1}, {function() return 0 end}, {u(), function() return 0 end}, {u(), u(), function() return 0 end},
      {1, 1, 1}, {u(), 0.5}, {2, 1, 1}, {0, 1}, {{1, 2}, blua.zeros(2, 4)}, {blua.ones(4, 4), blua.ones(4, 4)},
    }
    local count = 0
    for name, m in pairs(blua.Tensor) do
      if type(m) == "function" and name ~= "print" then
        count = count + 1
        for _, args in ipairs(tries) do
          local x = col()
          local e = x:expand(3, 4)
          local ok, err = pcall(m, e, table.unpack(args))
          assert.are.same({{1}, {2}, {3}}, x:totable(), "t:" .. name .. " changed the base of an expanded view")
          if not ok and tostring(err):find("clone it first", 1, true) then
            assert.is_truthy(tostring(err):find("'" .. name .. "'", 1, true) or name == "indexRows", name .. ": " .. tostring(err))
          end
        end
      end
    end
    assert.is_true(count >= 100, count .. " methods")
  end)

  it("refuses an expanded view as the destination of an into form", function()
    local e = blua.zeros(1, 4):expand(2, 4)
    refuses(function() blua.ones(3, 4):indexRows({1, 2}, e) end, "cannot write in 'indexRows': " .. WRITE)
    refuses(function() blua.zeros(1, 4):expand(3, 4):mm(blua.ones(3, 2), blua.ones(2, 4)) end, "cannot write in 'mm': " .. WRITE)
    refuses(function() blua.zeros(1, 4):expand(3, 4):addmm(blua.ones(3, 2), blua.ones(2, 4)) end, "cannot write in 'addmm': " .. WRITE)
    refuses(function() blua.zeros(1):expand(3):mv(blua.ones(3, 2), blua.ones(2)) end, "cannot write in 'mv': " .. WRITE)
    refuses(function() blua.zeros(1, 1, 4):expand(2, 3, 4):bmm(blua.ones(2, 3, 2), blua.ones(2, 2, 4)) end,
      "cannot write in 'bmm': " .. WRITE)
    refuses(function() blua.zeros(1, 3, 4):expand(2, 3, 4):baddbmm(blua.ones(2, 3, 2), blua.ones(2, 2, 4)) end,
      "cannot write in 'baddbmm': " .. WRITE)
    refuses(function() blua.zeros(1, 4):expand(3, 4):addbmm(blua.ones(2, 3, 2), blua.ones(2, 2, 4)) end,
      "cannot write in 'addbmm': " .. WRITE)
    refuses(function() blua.zeros(1, 4):expand(3, 4):addr(blua.ones(3), blua.ones(4)) end, "cannot write in 'addr': " .. WRITE)
  end)

  it("reads right through the functional forms and views of views", function()
    local e = col():expand(3, 4)
    same(blua.add(e, 1), function(i) return i + 1 end, 3, 4)
    same(blua.cmul(e, e), function(i) return i * i end, 3, 4)
    same(blua.neg(e), function(i) return -i end, 3, 4)
    assert.are.equal(24, blua.sum(e))
    same(blua.mm(e, blua.ones(4, 1)), function(i) return 4 * i end, 3, 1)
    local p = col():view(3, 1, 1):expand(3, 2, 4):permute(3, 1, 2)
    assert.are.same({4, 3, 2}, {p:size()})
    assert.are.equal(48, p:sum())
    assert.are.equal(2, p:select(2, 2):get(1, 2))
    same(p:select(1, 1), function(i) return i end, 3, 2)
    assert.are.equal(0, (p:contiguous() - p):abs():max())
  end)

  it("as training data trains the same bits as its clone, in the C epoch and the Lua loop", function()
    local function run(method, expanded, force_lua)
      blua.manualSeed(7)
      local x = blua.randn(1, 6):expand(24, 6)
      if not expanded then x = x:clone() end
      local y = blua.ones(24, 1)
      y:narrow(1, 1, 12):fill(2)
      blua.manualSeed(3)
      local net = blua.nn.mlp{6, 5, 2}
      local o = {epochs = 2, batch = 8, verbose = false, eval_train = false}
      if force_lua then o.on_batch = function() end end
      local h = blua.train[method](net, {x = x, y = y}, o)
      return h[#h].loss, net.W[1]:clone()
    end
    for _, method in ipairs{"backprop", "bregman"} do
      for _, force_lua in ipairs{false, true} do
        local l1, w1 = run(method, true, force_lua)
        local l2, w2 = run(method, false, force_lua)
        assert.are.equal(l2, l1)
        assert.is_true(w1:equal(w2))
      end
    end
  end)

  it("is refused as training and optimiser state", function()
    local W = blua.ones(1, 3):expand(2, 3)
    refuses(function() blua._adam({W}, {blua.ones(2, 3)}, {blua.zeros(2, 3)}, {blua.zeros(2, 3)}, 0.1, 0.9, 0.99, 1e-8, 0, 1) end,
      "cannot write in 'adam': " .. WRITE)
    refuses(function() blua._sgd(W, blua.ones(2, 3), blua.zeros(2, 3), 0.1, 0, false, 0) end, "cannot write in '_sgd': " .. WRITE)
  end)
end)
