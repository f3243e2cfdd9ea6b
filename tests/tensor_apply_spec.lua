-- Torch7's callback methods (apply, map with a second tensor, map2) and small forms (all, any,
-- viewAs, cat, float, type). Exact values against plain Lua on row-major value lists, views
-- (transposed, narrowed, permuted) against their contiguous copies, and every hazard a callback
-- can bring: errors, wrong results, closing a tensor of the call, collecting garbage, calling
-- the method again, yielding.
local blua = require "blua"

local nan = 0 / 0

local function flatten(x, out)
  if type(x) ~= "table" then
    out[#out + 1] = x
  else
    for _, v in ipairs(x) do flatten(v, out) end
  end
  return out
end

local function values(t) return flatten(t:totable(), {}) end

local function close(t) getmetatable(t).__close(t) end

local function fails_with(f, want)
  local ok, err = pcall(f)
  assert.is_false(ok, "no error, expected: " .. want)
  assert.are.equal(want, tostring(err):gsub("^[^:]*:%d+: ", ""))
end

-- Sequential values 1..n in a tensor of the given sizes.
local function seq(...)
  local n = 0
  return blua.zeros(...):apply(function() n = n + 1 return n end)
end

-- The views the spec checks every method on, each with a fresh storage.
local function views()
  return {
    transposed = function() return seq(3, 4):t() end,
    narrowed = function() return seq(4, 5):narrow(2, 2, 3):narrow(1, 2, 2) end,
    permuted = function() return seq(2, 3, 4):permute(3, 1, 2) end,
  }
end

describe("t:apply(f)", function()
  it("replaces each entry by f's number in row-major order, keeps it on nil, returns t", function()
    local t = blua.tensor{{1, -2, 3}, {4, 5, -6}}
    local seen = {}
    local r = t:apply(function(x)
      seen[#seen + 1] = x
      if x < 0 then return nil end
      return x * x + 0.5
    end)
    assert.are.equal(t, r)
    assert.same({1, -2, 3, 4, 5, -6}, seen)
    assert.same({{1.5, -2, 9.5}, {16.5, 25.5, -6}}, t:totable())
    -- a function that returns nothing leaves t as it was (Torch7's sum idiom)
    local sum = 0
    t:apply(function(x) sum = sum + x end)
    assert.are.equal(1.5 - 2 + 9.5 + 16.5 + 25.5 - 6, sum)
    assert.same({{1.5, -2, 9.5}, {16.5, 25.5, -6}}, t:totable())
  end)

  it("rounds to float, passes NaN and infinities through, and does nothing on an empty tensor", function()
    local t = blua.tensor{0.1, nan, 1}
    t:apply(function(x) if x ~= x then return math.huge end return x / 3 end)
    local v = values(t)
    assert.are.equal(string.unpack("f", string.pack("f", 0.1 / 3)), v[1])
    assert.are.equal(math.huge, v[2])
    assert.are.equal(string.unpack("f", string.pack("f", 1 / 3)), v[3])
    local calls = 0
    blua.zeros(0):apply(function() calls = calls + 1 end)
    assert.are.equal(0, calls)
  end)

  it("on a view gives its contiguous copy's result and writes through to the storage", function()
    for name, make in pairs(views()) do
      local v, c = make(), make():contiguous()
      local seen_v, seen_c = {}, {}
      v:apply(function(x) seen_v[#seen_v + 1] = x return 2 * x - 1 end)
      c:apply(function(x) seen_c[#seen_c + 1] = x return 2 * x - 1 end)
      assert.same(seen_c, seen_v, name)
      assert.same(c:totable(), v:totable(), name)
    end
    local base = seq(2, 3)
    base:t():apply(function(x) return -x end)
    assert.same({{-1, -2, -3}, {-4, -5, -6}}, base:totable())
  end)
end)

describe("t:map(u, f) and t:map2(u, v, f)", function()
  it("call f with the entries at each row-major position; sizes may differ, counts may not", function()
    local t, u = seq(2, 3), blua.tensor{10, 20, 30, 40, 50, 60}
    assert.are.equal(t, t:map(u, function(x, y) if y == 30 then return nil end return x * y end))
    assert.same({{10, 40, 3}, {160, 250, 360}}, t:totable())
    local v = blua.tensor{{1, 0}, {1, 0}, {2, 1}}
    local args = {}
    assert.are.equal(t, t:map2(u, v, function(x, y, z)
      args[#args + 1] = {x, y, z}
      if z == 0 then return nil end
      return x + y * z
    end))
    assert.same({{10, 10, 1}, {40, 20, 0}, {3, 30, 1}, {160, 40, 0}, {250, 50, 2}, {360, 60, 1}}, args)
    assert.same({{20, 40, 33}, {160, 350, 420}}, t:totable())
  end)

  it("read each tensor in its own order on views, as on contiguous copies", function()
    local t, u, v = seq(3, 4):t(), seq(3, 6):narrow(2, 2, 4):t(), seq(2, 2, 3):permute(3, 2, 1)
    local tc, uc, vc = t:contiguous(), u:contiguous(), v:contiguous()
    local f = function(x, y, z) return x * 100 + y * 10 + z end
    t:map2(u, v, f)
    tc:map2(uc, vc, f)
    assert.same(tc:totable(), t:totable())
    local g = function(x, y) return x - y end
    t:map(v, g)
    tc:map(vc, g)
    assert.same(tc:totable(), t:totable())
  end)

  it("may be given t itself or a view of t as a source: entries are read when their turn comes", function()
    local t = blua.tensor{1, 2, 3, 4}
    t:map(t, function(x, y) return x + y end)
    assert.same({2, 4, 6, 8}, t:totable())
    -- a transposed view reads entries already written by earlier steps: as in Torch7, no copy
    local w = blua.tensor{{1, 2}, {3, 4}}
    w:map(w:t(), function(x, y) return x * 10 + y end)
    -- position 1: 1,1 -> 11; 2: 2 and t(1,2) = w(2,1) = 3 -> 23; 3: 3 and w(1,2) = 23 -> 53; 4: 4,4 -> 44
    assert.same({{11, 23}, {53, 44}}, w:totable())
  end)

  it("refuse bad arguments with messages naming the method", function()
    local t = blua.zeros(2, 2)
    fails_with(function() t:map(blua.zeros(3), print) end,
               "size mismatch in 'map': t has 2x2, u has 3 (the same number of entries expected)")
    fails_with(function() t:map2(t, blua.zeros(3), print) end,
               "size mismatch in 'map2': t has 2x2, v has 3 (the same number of entries expected)")
    fails_with(function() t:map2(5, t, print) end, "bad argument in 'map2': u must be a tensor, got number")
    fails_with(function() t:map2(t, nil, print) end, "bad argument in 'map2': v must be a tensor, got nil")
    fails_with(function() t:map2(t, t, 5) end, "bad argument in 'map2': f must be a function, got number")
    fails_with(function() t:map(t, "f") end, "bad argument in 'map': f must be a function, got string")
    fails_with(function() t:map(5) end, "bad argument in 'map': f (a function) or u (a tensor) expected, got number")
    fails_with(function() t:map() end, "bad argument in 'map': f (a function) or u (a tensor) expected, got no value")
    fails_with(function() t:apply() end, "bad argument in 'apply': f must be a function, got nil")
    local c = blua.zeros(4)
    close(c)
    fails_with(function() t:map(c, print) end, "bad argument in 'map': u must be a tensor, got a closed tensor")
    fails_with(function() c:apply(print) end, "calling 'apply' on bad self (tensor was closed)")
    fails_with(function() t:apply(print, 1) end, "t:apply: (f) expected, got 1 more argument")
    fails_with(function() t:map(t, print, 1) end, "t:map: (f | u, f) expected, got 1 more argument")
    fails_with(function() t:map2(t, t, print, 1, 2) end, "t:map2: (u, v, f) expected, got 2 more arguments")
    assert.same({{0, 0}, {0, 0}}, t:totable())
  end)
end)

describe("blua's t:map(f) keeps its contract", function()
  it("f must return a number: nil is an error, not a kept entry (unlike t:apply)", function()
    local t = blua.tensor{1, 2, 3}
    assert.are.equal(t, t:map(function(x) return x + 1 end))
    assert.same({2, 3, 4}, t:totable())
    fails_with(function() t:map(function(x) if x > 2 then return nil end return 0 end) end,
               "bad result in 'map': function returned a nil, number expected")
    assert.same({0, 3, 4}, t:totable()) -- the entry before the error stays written
    fails_with(function() t:map(function(x) return x end, 2) end, "t:map: (f) expected, got 1 more argument")
    fails_with(function() t:map(function() close(t) return 1 end) end,
               "tensor closed in 'map': the function closed the tensor being mapped")
  end)
end)

-- Each callback method with its tensors, for the hazard tests: call(f) runs it on fresh tensors.
local function methods()
  local ms = {}
  ms.apply = function(f)
    local t = seq(2, 3)
    return t, {t = t}, function() return t:apply(f) end
  end
  ms.map = function(f)
    local t, u = seq(2, 3), seq(6)
    return t, {t = t, u = u}, function() return t:map(u, f) end
  end
  ms.map2 = function(f)
    local t, u, v = seq(2, 3), seq(3, 2), seq(6)
    return t, {t = t, u = u, v = v}, function() return t:map2(u, v, f) end
  end
  return ms
end

describe("callbacks that misbehave", function()
  it("an error in f propagates; the entries written before it stay written", function()
    for name, make in pairs(methods()) do
      local calls = 0
      local t, _, run = make(function(x)
        calls = calls + 1
        if calls == 4 then error("stop here", 0) end
        return -x
      end)
      fails_with(run, "stop here")
      assert.same({{-1, -2, -3}, {4, 5, 6}}, t:totable(), name)
    end
  end)

  it("a result that is neither a number nor nil is an error naming the method", function()
    for name, make in pairs(methods()) do
      local t, _, run = make(function(x) if x == 2 then return {} end return 0 end)
      fails_with(run, "bad result in '" .. name .. "': function returned a table, number or nil expected")
      assert.same({{0, 2, 3}, {4, 5, 6}}, t:totable(), name)
    end
  end)

  it("closing any tensor of the call is an error naming it, also on the last entry", function()
    for name, make in pairs(methods()) do
      for _, who in ipairs{"t", "u", "v"} do
        for _, at in ipairs{1, 6} do
          local calls = 0
          local tensors
          local _, ts, run = make(function()
            calls = calls + 1
            if calls == at then close(tensors[who]) end
            return 7
          end)
          tensors = ts
          if ts[who] then
            fails_with(run, "tensor closed in '" .. name .. "': the function closed " .. who)
            if who ~= "t" then assert.same(at == 1 and {{1, 2, 3}, {4, 5, 6}} or {{7, 7, 7}, {7, 7, 6}}, ts.t:totable()) end
          end
        end
      end
    end
  end)

  it("a finalizer run by the collector inside f that closes a tensor gives the same error", function()
    for name, make in pairs(methods()) do
      local tensors
      local _, ts, run = make(function(x)
        setmetatable({}, {__gc = function() close(tensors.t) end})
        collectgarbage()
        return x
      end)
      tensors = ts
      fails_with(run, "tensor closed in '" .. name .. "': the function closed t")
    end
  end)

  it("tensors with no reference left but the call's own survive a full collection in f", function()
    local got = blua.zeros(2, 3):map2(seq(6):t(), seq(3, 2):t(), function(_, y, z)
      collectgarbage()
      return y * z
    end):totable()
    assert.same({{1, 6, 15}, {8, 20, 36}}, got) -- y: 1..6, z: 1, 3, 5, 2, 4, 6
    local u = seq(2, 2):map(seq(4), function(x, y) collectgarbage() return x + y end)
    assert.same({{2, 4}, {6, 8}}, u:totable())
  end)

  it("f may call the same method on the same tensor", function()
    local t = blua.zeros(3)
    t:apply(function(x)
      t:apply(function(y) return y + 1 end)
      return 10 * x
    end)
    -- step 1 reads 0, all +1, writes 0; step 2 reads 1, all +1, writes 10; step 3 reads 2, +1, writes 20
    assert.same({2, 11, 20}, t:totable())
    local a, b = blua.tensor{1, 2}, blua.tensor{3, 4}
    a:map2(b, a, function(x, y, z)
      b:map(a, function(p, q) return p + q end)
      return x + y + z
    end)
    -- step 1: x=1,y=3,z=1; b becomes {4, 6}; a[1] = 5. step 2: x=2,y=6,z=2; b becomes {9, 8}; a[2] = 10
    assert.same({5, 10}, a:totable())
    assert.same({9, 8}, b:totable())
  end)

  it("a yield inside f is an error, and the tensor stays usable", function()
    for name, make in pairs(methods()) do
      local t, _, run = make(function(x) coroutine.yield(x) return 0 end)
      local ok, err = coroutine.resume(coroutine.create(run))
      assert.is_false(ok, name)
      assert.is_truthy(tostring(err):find("attempt to yield across a C%-call boundary"), err)
      assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable(), name)
    end
  end)

  it("finalizers closing any argument at any time give 'closed' errors, never crashes", function()
    for round = 1, 90 do
      local ms = methods()
      local names = {"apply", "map", "map2"}
      local tensors
      local _, ts, run = ms[names[round % 3 + 1]](function(x)
        if x % 3 == round % 3 then collectgarbage("step") end
        return x + 1
      end)
      tensors = ts
      local pool = {}
      for _, t in pairs(tensors) do pool[#pool + 1] = t end
      local victim = pool[round % #pool + 1]
      for _ = 1, 10 do setmetatable({}, {__gc = function() close(victim) end}) end
      local ok, err = pcall(run)
      if not ok then assert.is_truthy(tostring(err):find("closed"), err) end
      collectgarbage()
    end
  end)
end)

describe("t:all() and t:any()", function()
  it("test every entry against zero; NaN is non-zero, -0 is zero; empty: all true, any false", function()
    assert.is_true(blua.tensor{{1, -2}, {nan, 0.5}}:all())
    assert.is_true(blua.tensor{{1, -2}, {nan, 0.5}}:any())
    assert.is_false(blua.tensor{1, 2, -0.0}:all())
    assert.is_true(blua.tensor{1, 2, -0.0}:any())
    assert.is_false(blua.tensor{0, -0.0}:any())
    assert.is_true(blua.tensor{nan}:any())
    assert.is_true(blua.zeros(0):all())
    assert.is_false(blua.zeros(0):any())
    assert.is_true(blua.zeros(3, 0):all())
    assert.is_false(blua.zeros(3, 0):any())
  end)

  it("read only a view's own entries", function()
    local m = blua.tensor{{1, 0, 1}, {1, 1, 1}, {0, 1, 1}}
    assert.is_true(m:narrow(2, 3, 1):all())
    assert.is_false(m:narrow(2, 2, 2):all())
    assert.is_true(m:narrow(1, 2, 1):all())
    assert.is_false(m:t():narrow(1, 2, 1):all())
    local z = blua.zeros(4, 5)
    z:set(4, 5, 2)
    assert.is_false(z:narrow(1, 1, 3):any())
    assert.is_false(z:t():narrow(1, 1, 4):any())
    assert.is_true(z:t():narrow(1, 5, 1):any())
    local p = blua.ones(2, 3, 4)
    p:set(2, 3, 1, 0)
    assert.is_false(p:permute(3, 1, 2):all())
    assert.is_true(p:permute(3, 1, 2):narrow(1, 2, 3):all())
    fails_with(function() p:all(1) end, "t:all: () expected, got 1 more argument")
    fails_with(function() p:any(true) end, "t:any: () expected, got 1 more argument")
  end)
end)

describe("t:viewAs(u), t:cat(u [, d]), t:float(), t:type()", function()
  it("viewAs: a view with u's sizes sharing t's storage; t must be contiguous", function()
    local t, u = seq(6), blua.zeros(2, 3)
    local v = t:viewAs(u)
    assert.same({{1, 2, 3}, {4, 5, 6}}, v:totable())
    v:set(2, 1, -4)
    assert.same({1, 2, 3, -4, 5, 6}, t:totable())
    assert.same({{1, 2}, {3, -4}, {5, 6}}, t:viewAs(u:t()):totable())
    assert.are.equal(0, blua.zeros(0):viewAs(blua.zeros(2, 0)):nElement())
    fails_with(function() t:viewAs(blua.zeros(5)) end, "size mismatch in 'viewAs': cannot view 6 as 5")
    fails_with(function() u:t():viewAs(t) end, "not contiguous in 'viewAs': a view needs a contiguous tensor, got 3x2")
    fails_with(function() t:viewAs({2, 3}) end, "bad argument in 'viewAs': u must be a tensor, got table")
    fails_with(function() t:viewAs(u, 1) end, "t:viewAs: (u) expected, got 1 more argument")
  end)

  it("cat: a new tensor as blua.cat({t, u}, d), along the last dimension by default", function()
    local a, b = seq(2, 3), seq(2, 2)
    local r = a:cat(b)
    assert.same(blua.cat({a, b}):totable(), r:totable())
    assert.same({{1, 2, 3, 1, 2}, {4, 5, 6, 3, 4}}, r:totable())
    r:set(1, 1, 0)
    assert.are.equal(1, a:get(1, 1))
    assert.same({{1, 2, 3}, {4, 5, 6}, {1, 2, 3}}, a:cat(a:narrow(1, 1, 1), 1):totable())
    assert.same({1, 2, 3}, blua.tensor{1}:cat(blua.tensor{2, 3}):totable())
    -- views: as their contiguous copies
    local tv, uv = seq(3, 4):t(), seq(4, 5):narrow(2, 2, 2)
    assert.same(tv:contiguous():cat(uv:contiguous(), 2):totable(), tv:cat(uv, 2):totable())
    fails_with(function() a:cat(b, 1) end, "size mismatch in 'cat': cannot join 2x3 and 2x2 along dimension 1")
    fails_with(function() a:cat(b, 3) end, "bad dimension in 'cat': 3 for a 2-D tensor")
    fails_with(function() a:cat(b, 0.5) end, "bad dimension in 'cat': 0.5 is not an integer")
    fails_with(function() a:cat({b}) end, "bad argument in 'cat': u must be a tensor, got table")
    fails_with(function() a:cat(a, b) end, "bad argument in 'cat': d must be a dimension, got a tensor (Torch7's " ..
               "res:cat(a, b), writing into res, is not taken: blua.cat({a, b}) makes a new tensor)")
    fails_with(function() a:cat(b, 2, 1) end, "t:cat: (u [, d]) expected, got 1 more argument")
  end)

  it("float returns t itself and type Torch7's name of a float tensor", function()
    local t = seq(2, 2)
    assert.are.equal(t, t:float())
    local v = t:t()
    assert.are.equal(v, v:float())
    assert.are.equal("torch.FloatTensor", t:type())
    assert.are.equal("torch.FloatTensor", t:t():type())
    fails_with(function() t:type("torch.DoubleTensor") end, "t:type: () expected, got 1 more argument")
    fails_with(function() t:float(1) end, "t:float: () expected, got 1 more argument")
  end)
end)
