-- Torch7's elementwise maps and statistics (runtime/tensor_math.c): sin .. cosh, frac, cinv,
-- fmod, remainder, atan2, lerp, csub, cumprod, dist, renorm, median, kthvalue, mode. Exact
-- values against plain Lua (libm in double, rounded to float), NaN and infinities, views
-- against their contiguous copies, the parallel path, and errors naming method and shapes.
local blua = require "blua"

local nan = 0 / 0
local function f32(x) return (string.unpack("f", string.pack("f", x))) end

-- Equal as floats: the same number with the same sign of zero, or both NaN.
local function same(a, b)
  if a ~= a or b ~= b then return a ~= a and b ~= b end
  return a == b and (a ~= 0 or 1 / a == 1 / b)
end

-- The entries in row-major order as floats (t:map hands them over as they are: t:get would
-- give -0.0 as the integer 0).
local function flat(t)
  local out = {}
  t:clone():map(function(v)
    out[#out + 1] = v
    return v
  end)
  return out
end

local function assert_same_list(want, got, what)
  assert.equal(#want, #got, what)
  for i = 1, #want do
    assert.is_true(same(want[i], got[i]), string.format("%s: entry %d: want %s, got %s", what, i, want[i], got[i]))
  end
end

-- Floats chosen to reach every branch: zeros of both signs, halves, a float pi, small and big
-- magnitudes, the domain edges of asin/acos, infinities and NaN.
local xs = {0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.25, 10.0, 100.75, f32(0.1), f32(math.pi), f32(-1e-3),
  f32(1e-30), 88.5, -7.75, 1e6, math.huge, -math.huge, nan}

local function ref_map(name, x, a)
  if name == "sin" then return math.sin(x)
  elseif name == "cos" then return math.cos(x)
  elseif name == "tan" then return math.tan(x)
  elseif name == "asin" then return math.asin(x)
  elseif name == "acos" then return math.acos(x)
  elseif name == "atan" then return math.atan(x)
  elseif name == "cinv" or name == "reciprocal" then return 1.0 / x
  elseif name == "fmod" then return math.fmod(x, a)
  elseif name == "remainder" then return x % a
  end
end

describe("t:sin, cos, tan, asin, acos, atan, cinv, reciprocal", function()
  it("are libm in double rounded to float, in place, returning t", function()
    for _, name in ipairs{"sin", "cos", "tan", "asin", "acos", "atan", "cinv", "reciprocal"} do
      local t = blua.tensor(xs)
      assert.equal(t, t[name](t))
      local want = {}
      for i, x in ipairs(xs) do want[i] = f32(ref_map(name, x)) end
      assert_same_list(want, flat(t), name)
    end
  end)

  it("give NaN outside the domain and keep signed zeros", function()
    local t = blua.tensor{2, -2, -0.0}
    local a = flat(t:clone():asin())
    assert.is_true(a[1] ~= a[1] and a[2] ~= a[2] and same(a[3], -0.0))
    local c = flat(blua.tensor{0.0, -0.0}:cinv())
    assert.same({math.huge, -math.huge}, c)
  end)
end)

describe("t:sinh and t:cosh", function()
  it("match the exponential forms to a float's precision, exactly at zero and the infinities", function()
    local vals = {0.0, -0.0, 0.5, -0.5, 1.0, -3.25, 10.0, 20.0, math.huge, -math.huge, nan}
    local s, c = flat(blua.tensor(vals):sinh()), flat(blua.tensor(vals):cosh())
    for i, x in ipairs(vals) do
      if x ~= x then
        assert.is_true(s[i] ~= s[i] and c[i] ~= c[i])
      elseif math.abs(x) == math.huge or x == 0 then
        assert.is_true(same(x, s[i]), "sinh " .. x)
        assert.equal(x == 0 and 1 or math.huge, c[i])
      else
        local ws, wc = (math.exp(x) - math.exp(-x)) / 2, (math.exp(x) + math.exp(-x)) / 2
        assert.is_true(math.abs(s[i] - ws) <= math.abs(ws) * 2 ^ -23, "sinh " .. x)
        assert.is_true(math.abs(c[i] - wc) <= wc * 2 ^ -23, "cosh " .. x)
        assert.equal(f32(s[i]), s[i])
      end
    end
    assert.same({math.huge, -math.huge}, flat(blua.tensor{100, -100}:sinh())) -- overflows the float
  end)
end)

describe("t:frac", function()
  it("is x - trunc(x), the sign of x; NaN for the infinities", function()
    local got = flat(blua.tensor{2.5, -2.5, 3, -0.25, 1e6 + 0.5, 2 ^ 30, math.huge, -math.huge, nan}:frac())
    assert.same({0.5, -0.5, 0, -0.25, 0.5, 0}, {got[1], got[2], got[3], got[4], got[5], got[6]})
    for i = 7, 9 do assert.is_true(got[i] ~= got[i], i) end
  end)
end)

describe("t:fmod and t:remainder", function()
  it("fmod keeps the dividend's sign, remainder takes the divisor's (Lua's %)", function()
    assert.same({1, -1, 1.5, -1.5}, flat(blua.tensor{7, -7, 7.5, -7.5}:fmod(3)))
    assert.same({1, 2, 1.5, 1.5}, flat(blua.tensor{7, -7, 7.5, -7.5}:remainder(3)))
    assert.same({1, -1}, flat(blua.tensor{7, -7}:fmod(-3)))
    assert.same({-2, -1}, flat(blua.tensor{7, -7}:remainder(-3)))
  end)

  it("match math.fmod and x % a exactly, NaN for a zero divisor", function()
    for _, a in ipairs{3.0, -3.0, 0.5, -0.75, f32(0.1), f32(1e-3), 1e6, math.huge, -math.huge, 0.0, nan} do
      for _, name in ipairs{"fmod", "remainder"} do
        local want = {}
        for i, x in ipairs(xs) do want[i] = f32(ref_map(name, x, a)) end
        assert_same_list(want, flat(blua.tensor(xs)[name](blua.tensor(xs), a)), name .. "(" .. a .. ")")
      end
    end
  end)

  it("round the divisor to float first", function()
    local t = blua.tensor{1}
    assert.equal(f32(math.fmod(1.0, f32(0.1))), t:fmod(0.1):get(1))
  end)
end)

describe("t:atan2 and t:lerp", function()
  local ys = {1.0, -1.0, 0.0, -0.0, 0.0, -0.0, 3.5, -2.25, math.huge, -math.huge, math.huge, 1.0, nan, 1.0}
  local xs2 = {1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -0.5, 0.0, math.huge, 2.0, -math.huge, nan, 1.0, -math.huge}

  it("atan2(t, u) is math.atan(y, x) rounded to float, in place", function()
    local t, u = blua.tensor(ys), blua.tensor(xs2)
    assert.equal(t, t:atan2(u))
    local want = {}
    for i = 1, #ys do want[i] = f32(math.atan(ys[i], xs2[i])) end
    assert_same_list(want, flat(t), "atan2")
    assert_same_list(xs2, flat(u), "u untouched")
  end)

  it("lerp(u, w) is t + w (u - t) in double rounded to float", function()
    for _, w in ipairs{0, 1, 0.5, 0.3, -2, 1.5, nan} do
      local t, u = blua.tensor(ys), blua.tensor(xs2)
      assert.equal(t, t:lerp(u, w))
      local want = {}
      for i = 1, #ys do want[i] = f32(ys[i] + w * (xs2[i] - ys[i])) end
      assert_same_list(want, flat(t), "lerp " .. w)
    end
  end)

  it("take t itself as u; refuse another view sharing t's memory and a shape mismatch", function()
    local t = blua.tensor{1, 2, 3}
    t:lerp(t, 0.5)
    assert.same({1, 2, 3}, flat(t))
    local want = f32(math.atan(2.0, 2.0))
    assert.equal(want, t:clone():atan2(t:clone()):get(2))
    local base = blua.tensor{1, 2, 3, 4}
    assert.has_error(function() base:narrow(1, 1, 3):atan2(base:narrow(1, 2, 3)) end,
      "aliasing in 'atan2': t and u share memory")
    assert.has_error(function() base:narrow(1, 2, 3):lerp(base:narrow(1, 1, 3), 0.5) end,
      "aliasing in 'lerp': t and u share memory")
    assert.has_error(function() blua.zeros(2, 3):atan2(blua.zeros(3, 2)) end, "size mismatch in 'atan2': 2x3 and 3x2")
    assert.has_error(function() blua.zeros(2, 3):lerp(blua.zeros(6), 1) end, "size mismatch in 'lerp': 2x3 and 6")
    assert.same({1, 2, 3, 4}, flat(base))
  end)
end)

describe("t:csub", function()
  it("is t - u or t - a, in place", function()
    local t = blua.tensor{5, 7}
    assert.equal(t, t:csub(blua.tensor{1, 2}))
    assert.same({4, 5}, flat(t))
    assert.same({3.5, 4.5}, flat(t:csub(0.5)))
    assert.has_error(function() t:csub(blua.zeros(3)) end, "size mismatch in 'csub': 2 and 3")
  end)
end)

-- A view of every layout over the same values: transposed, narrowed out of a wider tensor, and a
-- permuted 3-D one; each with its contiguous copy.
local function layouts()
  local vals = {{0.5, -2, 3.25, nan}, {1, 1, -0.0, 7}, {math.huge, 2, 2, -1}}
  local base = blua.tensor(vals)
  local wide = blua.zeros(3, 7):fill(9)
  local narrow = wide:narrow(2, 3, 4)
  narrow:copy(base)
  local tr = blua.tensor(vals):t():contiguous():t()
  local cube = blua.tensor{{{1, 2, 3}, {4, -5, 6}}, {{0.25, 8, nan}, {10, 11, -12}}}
  local perm = cube:clone():permute(3, 1, 2)
  return {{narrow, wide}, {tr}, {perm}}
end

describe("every method on views", function()
  local maps = {
    {"sin"}, {"cos"}, {"tan"}, {"asin"}, {"acos"}, {"atan"}, {"sinh"}, {"cosh"}, {"frac"}, {"cinv"},
    {"reciprocal"}, {"fmod", 1.5}, {"remainder", -1.5},
  }

  it("in-place maps give a view its contiguous copy's values and leave the rest untouched", function()
    for _, m in ipairs(maps) do
      for _, case in ipairs(layouts()) do
        local v, wide = case[1], case[2]
        local copy = v:contiguous()
        local want = flat(copy[m[1]](copy, table.unpack(m, 2)))
        assert.equal(v, v[m[1]](v, table.unpack(m, 2)))
        assert_same_list(want, flat(v), m[1])
        if wide then
          for _, j in ipairs{1, 2, 7} do
            for i = 1, 3 do assert.equal(9, wide:get(i, j)) end
          end
        end
      end
    end
  end)

  it("atan2 and lerp on views equal the contiguous computation", function()
    for _, case in ipairs(layouts()) do
      local v = case[1]
      local u = v:clone():mul(-0.5):add(1)
      local ut = u:contiguous()
      local ac = v:contiguous()
      local want = flat(ac:atan2(ut))
      assert_same_list(want, flat(v:clone():atan2(u)), "atan2 into a clone")
      if v:dim() == 2 then
        local tview = v:clone():t():contiguous():t() -- transposed layout, same shape
        assert_same_list(want, flat(tview:atan2(u)), "atan2 transposed")
      end
      assert_same_list(flat(v:contiguous():lerp(ut, 0.25)), flat(v:lerp(u, 0.25)), "lerp view")
    end
  end)

  it("cumprod, median, kthvalue, mode and renorm on views equal the contiguous copy", function()
    for _, case in ipairs(layouts()) do
      local v = case[1]
      local c = v:contiguous()
      for d = 1, v:dim() do
        assert_same_list(flat(c:cumprod(d)), flat(v:cumprod(d)), "cumprod " .. d)
        for _, m in ipairs{{"median"}, {"mode"}, {"kthvalue", 2}} do
          local args = m[2] and {m[2], d} or {d}
          local cv, ci = c[m[1]](c, table.unpack(args))
          local vv, vi = v[m[1]](v, table.unpack(args))
          assert_same_list(flat(cv), flat(vv), m[1] .. " " .. d)
          assert.same(flat(ci), flat(vi))
        end
        local r1, r2 = c:clone():renorm(2, d, 3), v:clone():renorm(2, d, 3)
        assert_same_list(flat(r1), flat(r2), "renorm " .. d)
        if v:dim() == 2 then
          local rv = v:contiguous():t():contiguous():t()
          assert_same_list(flat(r1), flat(rv:renorm(2, d, 3)), "renorm in place " .. d)
        end
      end
      assert.is_true(same(c:dist(c:clone():zero(), 1), v:dist(v:clone():zero(), 1)))
    end
  end)
end)

describe("the parallel path", function()
  it("maps tensors above the thread threshold entry by entry as the small path does", function()
    blua.manualSeed(7)
    local t = blua.rand(210, 170):mul(8):add(-4)
    local small = t:narrow(1, 1, 3):clone()
    for _, m in ipairs{{"sin"}, {"atan"}, {"remainder", 0.75}} do
      local big = t:clone()[m[1]](t:clone(), table.unpack(m, 2))
      local sv = small:clone()[m[1]](small:clone(), table.unpack(m, 2))
      assert_same_list(flat(sv), flat(big:narrow(1, 1, 3)), m[1])
      local tr = t:t():contiguous():t()
      assert_same_list(flat(big), flat(tr[m[1]](tr, table.unpack(m, 2))), m[1] .. " transposed")
      local want = f32(ref_map(m[1], t:get(200, 100) + 0.0, m[2]))
      assert.equal(want, big:get(200, 100))
    end
    local u = blua.rand(210, 170)
    local l = t:clone():lerp(u, 0.5)
    assert.equal(f32(t:get(150, 3) + 0.5 * (u:get(150, 3) - t:get(150, 3))), l:get(150, 3))
    local r = t:clone():renorm(1, 1, 10)
    local row = r:narrow(1, 5, 1):clone():abs():sum()
    assert.is_true(math.abs(row - 10) < 1e-3, row)
    local c = t:cumprod(1)
    assert_same_list(flat(t:narrow(2, 1, 3):clone():cumprod(1)), flat(c:narrow(2, 1, 3)), "cumprod")
    local s = t:t():contiguous():t()
    assert_same_list(flat(t:median(1)), flat(s:median(1)), "median transposed")
  end)
end)

describe("t:cumprod", function()
  it("gives running products along d in double, rounded to float", function()
    local t = blua.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.same({{1, 2, 6}, {4, 20, 120}}, t:cumprod(2):totable())
    assert.same({{1, 2, 3}, {4, 10, 18}}, t:cumprod(1):totable())
    -- a product that leaves float range and comes back stays finite in double
    local big = blua.tensor{1e30, 1e30, 1e-30, 1e-30}
    local got = flat(big:cumprod(1))
    assert.same({f32(f32(1e30)), math.huge, f32(f32(1e30) * f32(1e30) * f32(1e-30)),
      f32(f32(1e30) * f32(1e30) * f32(1e-30) * f32(1e-30))}, got)
    local n = flat(blua.tensor{2, nan, 3}:cumprod(1))
    assert.is_true(n[1] == 2 and n[2] ~= n[2] and n[3] ~= n[3])
    assert.same({0, 3}, {blua.zeros(0, 3):cumprod(1):size(1), blua.zeros(0, 3):cumprod(2):size(2)})
    assert.has_error(function() t:cumprod() end, "bad dimension in 'cumprod': integer expected, got no value")
    assert.has_error(function() t:cumprod(3) end, "bad dimension in 'cumprod': 3 for a 2-D tensor")
  end)
end)

describe("t:dist", function()
  local a = {1.5, -2, 0, 4, 1e-3, -7.25}
  local b = {0.5, -2, 3, -4, 0, 1}
  local function ref(p)
    local acc = 0.0
    for i = 1, #a do
      local d = math.abs(f32(a[i]) - f32(b[i]))
      if p == 0 then acc = acc + (d ~= 0 and 1 or 0)
      elseif p == math.huge then acc = math.max(acc, d)
      elseif p == 2 then acc = acc + d * d
      else acc = acc + d ^ p end
    end
    if p == 0 or p == 1 or p == math.huge then return acc end
    if p == 2 then return math.sqrt(acc) end
    return acc ^ (1 / p)
  end

  it("is the p-norm of t - u (default 2; 0 counts non-zeros; math.huge the largest)", function()
    local t, u = blua.tensor(a), blua.tensor(b)
    for _, p in ipairs{2, 1, 0, math.huge, 3, 0.5, 1.7} do
      assert.equal(ref(p), t:dist(u, p), "p = " .. p)
    end
    assert.equal(ref(2), t:dist(u))
    assert.equal(5, t:dist(u, 0))
    assert.same(a, {1.5, -2, 0, 4, 1e-3, -7.25})
  end)

  it("propagates NaN, is 0 for empty tensors, and refuses bad p and shapes", function()
    local t = blua.tensor{1, nan}
    assert.is_true(t:dist(blua.zeros(2)) ~= t:dist(blua.zeros(2)))
    assert.is_true(t:dist(blua.zeros(2), math.huge) ~= t:dist(blua.zeros(2), math.huge))
    assert.equal(2, t:dist(blua.zeros(2), 0))
    assert.equal(0, blua.zeros(0, 3):dist(blua.zeros(0, 3)))
    assert.has_error(function() t:dist(t, -1) end, "bad p in 'dist': -1.0 (must be >= 0)")
    assert.has_error(function() t:dist(t, nan) end)
    assert.has_error(function() t:dist(blua.zeros(3)) end, "size mismatch in 'dist': 2 and 3")
  end)
end)

describe("t:renorm", function()
  -- Torch7's rule: each slice along d with a p-norm above maxnorm scaled by maxnorm / (norm + 1e-7).
  local function ref(rows, p, maxnorm)
    local out = {}
    for i, row in ipairs(rows) do
      local acc = 0.0
      for _, x in ipairs(row) do acc = acc + (p == 2 and x * x or math.abs(x) ^ p) end
      local norm = p == 2 and math.sqrt(acc) or acc ^ (1 / p)
      out[i] = {}
      for j, x in ipairs(row) do out[i][j] = norm > maxnorm and f32(x * (maxnorm / (norm + 1e-7))) or x end
    end
    return out
  end

  it("scales the slices along d whose p-norm is above maxnorm, in place", function()
    local rows = {{3, 4, 0}, {0.5, 0.5, 0.5}, {-6, 8, 0}}
    for _, p in ipairs{2, 1, 3} do
      local t = blua.tensor(rows)
      assert.equal(t, t:renorm(p, 1, 5))
      assert.same(ref(rows, p, 5), t:totable(), "p = " .. p)
    end
    -- along dimension 2 the slices are the columns
    local t = blua.tensor(rows):renorm(2, 2, 1)
    local cols = {{3, 0.5, -6}, {4, 0.5, 8}, {0, 0.5, 0}}
    local want = ref(cols, 2, 1)
    for i = 1, 3 do
      for j = 1, 3 do assert.equal(want[j][i], t:get(i, j)) end
    end
    -- p = math.huge: the largest magnitude
    assert.same({{f32(3 * (2 / (4 + 1e-7))), f32(-4 * (2 / (4 + 1e-7)))}, {1, 1}},
      blua.tensor{{3, -4}, {1, 1}}:renorm(math.huge, 1, 2):totable())
  end)

  it("refuses bad arguments naming the method", function()
    local t = blua.tensor{{1, 2}, {3, 4}}
    assert.has_error(function() t:renorm(0, 1, 1) end, "bad p in 'renorm': 0.0 (must be > 0)")
    assert.has_error(function() t:renorm(nan, 1, 1) end)
    assert.has_error(function() t:renorm(2, 3, 1) end, "bad dimension in 'renorm': 3 for a 2-D tensor")
    assert.has_error(function() t:renorm(2, 1, -1) end, "bad maxnorm in 'renorm': -1.0 (must be >= 0)")
    assert.has_error(function() t:renorm(2, 1, nan) end)
    assert.has_error(function() blua.zeros(4):renorm(2, 1, 1) end,
      "bad tensor in 'renorm': 4 has 1 dimension, renorm needs at least 2")
    assert.same({{1, 2}, {3, 4}}, t:totable())
  end)
end)

-- Plain-Lua order statistics of each row of a 2-D list: sorted by value, NaN last, ties by
-- position; returns the value and 1-based index at the chosen rank.
local function sorted_row(row)
  local e = {}
  for i, v in ipairs(row) do e[i] = {v = v, i = i} end
  table.sort(e, function(x, y)
    local xn, yn = x.v ~= x.v, y.v ~= y.v
    if xn ~= yn then return yn end
    if not xn and x.v ~= y.v then return x.v < y.v end
    return x.i < y.i
  end)
  return e
end

local function ref_mode(row)
  local e = sorted_row(row)
  local best, best_len, start = 1, 0, 1
  for j = 1, #e do
    local a, b = e[j].v, e[j + 1] and e[j + 1].v
    local eq = b ~= nil and (a == b or (a ~= a and b ~= b))
    if not eq then
      if j - start + 1 > best_len then best, best_len = j, j - start + 1 end
      start = j + 1
    end
  end
  return e[best].v, e[best].i
end

describe("t:median, t:kthvalue and t:mode", function()
  local rows = {{3, 1, 2, 2}, {5, nan, -1, 0}, {7, 7, -0.0, 0}, {nan, nan, 4, 4}, {1, 2, 3, 4}}

  it("match the plain-Lua order along the last dimension by default", function()
    local t = blua.tensor(rows)
    local mv, mi = t:median()
    local ov, oi = t:mode()
    assert.same({5, 1}, {mv:size(1), mv:size(2)})
    for r, row in ipairs(rows) do
      local e = sorted_row(row)
      local m = e[(#row - 1) // 2 + 1]
      assert.is_true(same(m.v + 0.0, mv:get(r, 1) + 0.0), "median row " .. r)
      assert.equal(m.i, mi:get(r, 1))
      for k = 1, #row do
        local kv, ki = t:kthvalue(k)
        assert.is_true(same(e[k].v + 0.0, kv:get(r, 1) + 0.0), "kth " .. k .. " row " .. r)
        assert.equal(e[k].i, ki:get(r, 1))
      end
      local wv, wi = ref_mode(row)
      assert.is_true(same(wv + 0.0, ov:get(r, 1) + 0.0), "mode row " .. r)
      assert.equal(wi, oi:get(r, 1), "mode index row " .. r)
    end
  end)

  it("take the lower median, place NaN last, and pick the smallest of equally frequent values", function()
    local v, i = blua.tensor{4, 1, 3, 2}:median()
    assert.same({2, 4}, {v:get(1), i:get(1)})
    v, i = blua.tensor{nan, 1, nan}:median()
    assert.is_true(v:get(1) ~= v:get(1))
    assert.equal(1, i:get(1))
    v, i = blua.tensor{5, 2, 5, 2, 9}:mode()
    assert.same({2, 4}, {v:get(1), i:get(1)})
    v, i = blua.tensor{nan, 1, nan}:mode()
    assert.is_true(v:get(1) ~= v:get(1))
    assert.equal(3, i:get(1))
    v, i = blua.tensor{{1, 5}, {2, 6}, {3, 7}}:kthvalue(3, 1)
    assert.same({{3, 7}}, v:totable())
    assert.same({{3, 3}}, i:totable())
    v, i = blua.tensor{{1, 5}, {2, 6}, {3, 7}}:median(1)
    assert.same({{2, 6}}, v:totable())
    assert.same({{2, 2}}, i:totable())
  end)

  it("give empty results for empty lines elsewhere and refuse an empty dimension", function()
    local v, i = blua.zeros(0, 3):median()
    assert.same({0, 1}, {v:size(1), v:size(2)})
    assert.same({0, 1}, {i:size(1), i:size(2)})
    assert.has_error(function() blua.zeros(2, 0):median() end, "empty dimension in 'median': 2 of 2x0 has no elements")
    assert.has_error(function() blua.zeros(2, 0):mode() end, "empty dimension in 'mode': 2 of 2x0 has no elements")
    assert.has_error(function() blua.zeros(0, 2):kthvalue(1, 1) end, "bad k in 'kthvalue': 1 not in 1..0 for dimension 1 of 0x2")
  end)

  it("refuse bad k and d with messages naming the method and shape", function()
    local t = blua.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.has_error(function() t:kthvalue(0) end, "bad k in 'kthvalue': 0 not in 1..3 for dimension 2 of 2x3")
    assert.has_error(function() t:kthvalue(4) end, "bad k in 'kthvalue': 4 not in 1..3 for dimension 2 of 2x3")
    assert.has_error(function() t:kthvalue(3, 1) end, "bad k in 'kthvalue': 3 not in 1..2 for dimension 1 of 2x3")
    assert.has_error(function() t:kthvalue(math.maxinteger) end,
      "bad k in 'kthvalue': " .. math.maxinteger .. " not in 1..3 for dimension 2 of 2x3")
    assert.has_error(function() t:kthvalue(math.mininteger) end,
      "bad k in 'kthvalue': " .. math.mininteger .. " not in 1..3 for dimension 2 of 2x3")
    assert.has_error(function() t:kthvalue(2 ^ 31) end, "bad k in 'kthvalue': 2147483648 not in 1..3 for dimension 2 of 2x3")
    assert.has_error(function() t:kthvalue(1.5) end, "bad k in 'kthvalue': 1.5 is not an integer")
    assert.has_error(function() t:kthvalue() end, "bad k in 'kthvalue': integer expected, got no value")
    local ok, err = pcall(t.kthvalue, t, nan)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("bad k in 'kthvalue': %-?nan is not an integer"), err)
    assert.has_error(function() t:median(3) end, "bad dimension in 'median': 3 for a 2-D tensor")
    assert.has_error(function() t:mode(0) end, "bad dimension in 'mode': 0 for a 2-D tensor")
    assert.has_error(function() t:median(2 ^ 31) end, "bad dimension in 'median': 2147483648 for a 2-D tensor")
  end)
end)

describe("arguments", function()
  it("past the last are refused naming the method and its usage", function()
    local t = blua.tensor{{1, 2}, {3, 4}}
    local cases = {
      {"sin", "()", 1}, {"cinv", "()", 1}, {"fmod", "(a)", 2}, {"remainder", "(a)", 2}, {"atan2", "(u)", 2},
      {"lerp", "(u, w)", 3}, {"csub", "(u | a)", 2}, {"cumprod", "(dim)", 2}, {"dist", "(u [, p])", 3},
      {"renorm", "(p, dim, maxnorm)", 4}, {"median", "([dim])", 2}, {"kthvalue", "(k [, dim])", 3}, {"mode", "([dim])", 2},
    }
    for _, c in ipairs(cases) do
      local args = {}
      for i = 1, c[3] do args[i] = 1 end
      local ok, err = pcall(t[c[1]], t, table.unpack(args))
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("t:" .. c[1] .. ": " .. c[2] .. " expected, got 1 more argument", 1, true), err)
    end
    assert.same({{1, 2}, {3, 4}}, t:totable())
  end)

  it("of the wrong type are refused naming the method", function()
    local t = blua.tensor{{1, 2}, {3, 4}}
    local cases = {
      {function() t:fmod("x") end, "bad a in 'fmod': number expected, got string"},
      {function() t:remainder() end, "bad a in 'remainder': number expected, got no value"},
      {function() t:lerp(t) end, "bad w in 'lerp': number expected, got no value"},
      {function() t:lerp(t, {}) end, "bad w in 'lerp': number expected, got table"},
      {function() t:dist(t, "two") end, "bad p in 'dist': number expected, got string"},
      {function() t:renorm(true, 1, 1) end, "bad p in 'renorm': number expected, got boolean"},
      {function() t:renorm(2, 1) end, "bad maxnorm in 'renorm': number expected, got no value"},
      {function() t:renorm(2, nil, 1) end, "bad dimension in 'renorm': integer expected, got nil"},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(c[2], 1, true), err)
    end
    for _, f in ipairs{function() t:atan2(2) end, function() t:dist(2) end, function() t:lerp(1, 1) end} do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("blua.Tensor expected", 1, true), err)
    end
    assert.same({{1, 2}, {3, 4}}, t:totable())
  end)
end)

describe("maps and statistics under the collector", function()
  local function close(t) getmetatable(t).__close(t) end

  it("a closed tensor as self or argument is refused", function()
    local ops = {
      function(t, u) return t:sin() end, function(t, u) return t:fmod(2) end, function(t, u) return t:atan2(u) end,
      function(t, u) return u:atan2(t) end, function(t, u) return t:lerp(u, 0.5) end, function(t, u) return u:lerp(t, 0.5) end,
      function(t, u) return u:csub(t) end, function(t, u) return t:cumprod(1) end, function(t, u) return u:dist(t) end,
      function(t, u) return t:renorm(2, 1, 1) end, function(t, u) return t:median() end,
      function(t, u) return t:kthvalue(1) end, function(t, u) return t:mode(1) end,
    }
    for i, op in ipairs(ops) do
      local t, u = blua.ones(2, 2), blua.ones(2, 2)
      close(t)
      local ok, err = pcall(op, t, u)
      assert.is_false(ok, i)
      assert.is_truthy(tostring(err):find("closed"), err)
    end
  end)

  it("finalizers that close arguments during a call give errors, not crashes", function()
    for round = 1, 120 do
      local t, u = blua.ones(16, 16), blua.ones(16, 16)
      local victim = round % 2 == 0 and t or u
      for _ = 1, 20 do setmetatable({}, {__gc = function() close(victim) end}) end
      local ops = {function() return t:cumprod(2) end, function() return t:median(1) end,
                   function() return t:kthvalue(3, 2) end, function() return t:mode() end,
                   function() return t:lerp(u, 0.5) end, function() return u:dist(t, 3) end,
                   function() return t:renorm(1, 2, 2) end, function() return t:cosh() end}
      local ok, err = pcall(ops[round % #ops + 1])
      if not ok then assert.truthy(tostring(err):find("closed"), err) end
      collectgarbage()
    end
  end)
end)
