-- Shapes and small linear algebra (runtime/ltensor_shape.c): addcmul, addcdiv, mv, addmv, addr,
-- bmm, baddbmm, addbmm, range, linspace, logspace, diag, trace, tril, triu, repeatTensor, split, chunk, equal,
-- isSameSizeAs. Exact values against plain Lua references, views (transposed, narrowed,
-- permuted) against their contiguous copies, aliasing, and every bad argument's message.
local blua = require "blua"

local nan = 0 / 0

local function fails_with(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function refuses(f, text)
  local err = fails_with(f)
  assert.is_truthy(err:find(text, 1, true), err)
end

-- The float nearest to x, as a tensor stores it.
local function f32(x) return blua.tensor{x}:get(1) end

-- Same entries, NaN matching NaN.
local function same_values(expected, t)
  local got = t:totable()
  local function walk(e, g, where)
    if type(e) == "table" then
      assert.equal(#e, #g, where)
      for i = 1, #e do walk(e[i], g[i], where .. "[" .. i .. "]") end
    elseif e ~= e then
      assert.is_true(g ~= g, where .. " should be NaN")
    else
      assert.equal(e, g, where)
    end
  end
  walk(expected, got, "")
end

-- Three layouts of one matrix's values: transposed strides, a narrowed window of a wider
-- tensor, and a permuted 3-D tensor selected back to 2-D.
local function views(values)
  local base = blua.tensor(values)
  local r, c = base:size(1), base:size(2)
  local tr = base:t():contiguous():t()
  local wide = blua.zeros(r + 2, c + 3):fill(99)
  local narrow = wide:narrow(1, 2, r):narrow(2, 2, c)
  narrow:copy(base)
  local cube = blua.zeros(c, 2, r)
  local perm = cube:permute(3, 1, 2):select(3, 2)
  perm:copy(base)
  assert.is_false(tr:isContiguous() or narrow:isContiguous() or perm:isContiguous())
  return {tr, narrow, perm}, wide
end

-- A strided vector of the given values (every other entry of a longer one).
local function strided(values)
  local long = blua.zeros(2 * #values):fill(77)
  local v = long:view(#values, 2):select(2, 1)
  v:copy(blua.tensor(values))
  assert.is_false(v:isContiguous())
  return v, long
end

describe("t:addcmul and t:addcdiv", function()
  local t0 = {{1, 2, 3}, {4, 5, 6}}
  local a0 = {{0.5, -1, 3}, {2, 0.25, -7}}
  local b0 = {{3, 7, -2}, {0.1, 9, 1.5}}
  local function reference(v, divide)
    local r = {}
    for i = 1, 2 do
      r[i] = {}
      for j = 1, 3 do
        local p = divide and v * f32(a0[i][j]) / f32(b0[i][j]) or v * f32(a0[i][j]) * f32(b0[i][j])
        r[i][j] = f32(t0[i][j] + p)
      end
    end
    return r
  end

  it("adds v·a·b and v·a/b in place (v defaults to 1) and return t", function()
    for _, v in ipairs{1, 2.5, -0.3} do
      for _, m in ipairs{"addcmul", "addcdiv"} do
        local t = blua.tensor(t0)
        local r = v == 1 and t[m](t, blua.tensor(a0), blua.tensor(b0)) or t[m](t, v, blua.tensor(a0), blua.tensor(b0))
        assert.equal(t, r)
        same_values(reference(v, m == "addcdiv"), t)
      end
    end
  end)

  it("give the same on views as on contiguous copies, leaving the rest of the storage alone", function()
    for _, m in ipairs{"addcmul", "addcdiv"} do
      local expected = blua.tensor(t0)[m](blua.tensor(t0), 3, blua.tensor(a0), blua.tensor(b0)):totable()
      local ts = views(t0)
      local as, bs = views(a0), views(b0)
      for k = 1, 3 do
        local t, wide = views(t0)
        t[k][m](t[k], 3, as[k], bs[(k % 3) + 1])
        same_values(expected, t[k])
        if k == 2 then assert.equal(99 * 18, wide:sum() - t[k]:sum()) end
      end
      assert.is_not_nil(ts)
    end
  end)

  it("let t be a or b, and copy a source that overlaps t otherwise", function()
    local t = blua.tensor{1, 2, 3}
    t:addcmul(t, t) -- t + t·t
    same_values({2, 6, 12}, t)
    local u = blua.tensor{1, 2, 3, 4}
    local head, tail = u:narrow(1, 1, 3), u:narrow(1, 2, 3)
    head:addcmul(tail, blua.ones(3)) -- head[i] += tail[i] with tail read before any write
    same_values({3, 5, 7, 4}, u)
    local sq = blua.tensor{{1, 2}, {3, 4}}
    sq:addcmul(sq:t(), blua.ones(2, 2)) -- sq + sqᵀ from the values before the call
    same_values({{2, 5}, {5, 8}}, sq)
    local w = blua.tensor{8, 6, 4, 2}
    w:narrow(1, 2, 3):addcdiv(2, w:narrow(1, 1, 3), blua.tensor{2, 2, 2})
    same_values({8, 14, 10, 6}, w)
  end)

  it("let NaN and infinities through, and divide by zero as floats do", function()
    local t = blua.tensor{1, 1, 1, 1}
    t:addcdiv(blua.tensor{1, -1, 0, nan}, blua.tensor{0, 0, 0, 1})
    same_values({math.huge, -math.huge, nan, nan}, t)
  end)

  it("refuse other shapes, a source tensor first, and extra arguments", function()
    local t = blua.zeros(2, 3)
    refuses(function() t:addcmul(blua.zeros(3, 2), blua.zeros(2, 3)) end, "size mismatch in 'addcmul': 2x3 += 3x2 * 2x3")
    refuses(function() t:addcdiv(2, blua.zeros(2, 3), blua.zeros(6)) end, "size mismatch in 'addcdiv': 2x3 += 2x3 / 6")
    refuses(function() t:addcmul(t, 2, t, t) end, "t:addcmul: ([v,] a, b) expected, got 1 more argument")
    refuses(function() t:addcmul(t, t, t) end, "t:addcmul: ([v,] a, b) expected, got (tensor, tensor, tensor); Torch7's form")
    refuses(function() t:addcmul(1, 2, t) end, "t:addcmul: ([v,] a, b) expected, got (number, number, tensor)")
    refuses(function() t:addcmul("2", t, t) end, "got (string, tensor, tensor)")
    refuses(function() t:addcmul(t) end, "got (tensor)")
    local v = blua.zeros(0)
    assert.equal(v, v:addcmul(blua.zeros(0), blua.zeros(0)))
  end)
end)

-- Plain Lua: beta·y + alpha·m·x.
local function ref_mv(m, x, y, beta, alpha)
  local r = {}
  for i = 1, #m do
    local s = 0
    for j = 1, #x do s = s + m[i][j] * x[j] end
    r[i] = (y and beta * y[i] or 0) + alpha * s
  end
  return r
end

describe("mv and addmv", function()
  local m0 = {{1, 2, 3}, {4, 5, 6}, {-7, 8, 0}, {2, 2, -2}}
  local x0 = {3, -1, 2}
  local y0 = {1, 2, 3, 4}

  it("blua.mv and m:mv(x) give a new product; y:mv(m, x) writes into y", function()
    local want = ref_mv(m0, x0, nil, 0, 1)
    same_values(want, blua.mv(blua.tensor(m0), blua.tensor(x0)))
    local m = blua.tensor(m0)
    local r = m:mv(blua.tensor(x0))
    same_values(want, r)
    same_values(m0, m)
    local y = blua.tensor{nan, nan, nan, nan}
    assert.equal(y, y:mv(m, blua.tensor(x0)))
    same_values(want, y)
  end)

  it("addmv takes Torch7's forms: one number is alpha, two are beta and alpha", function()
    local m, x = blua.tensor(m0), blua.tensor(x0)
    local y = blua.tensor(y0)
    assert.equal(y, y:addmv(m, x))
    same_values(ref_mv(m0, x0, y0, 1, 1), y)
    same_values(ref_mv(m0, x0, y0, 1, 3), blua.tensor(y0):addmv(3, m, x))
    same_values(ref_mv(m0, x0, y0, -2, 0.5), blua.tensor(y0):addmv(-2, 0.5, m, x))
    -- beta 0 does not read y (NaN there does not come through)
    same_values(ref_mv(m0, x0, nil, 0, 2), blua.tensor{nan, 1, nan, 1}:addmv(0, 2, m, x))
  end)

  it("are the same on transposed, narrowed and permuted matrices and strided vectors", function()
    local want = ref_mv(m0, x0, y0, 2, -1)
    for _, m in ipairs(views(m0)) do
      local x = strided(x0)
      local y, long = strided(y0)
      y:addmv(2, -1, m, x)
      same_values(want, y)
      for i = 2, 8, 2 do assert.equal(77, long:get(i)) end
      same_values(ref_mv(m0, x0, nil, 0, 1), blua.mv(m, x))
    end
  end)

  it("give the right product when the result shares memory with m or x", function()
    local sq = {{2, 1, 0}, {1, 3, 1}, {0, 1, 4}}
    local x = blua.tensor{1, 2, 3}
    x:mv(blua.tensor(sq), x) -- x = sq·x, x read before it is written
    same_values(ref_mv(sq, {1, 2, 3}, nil, 0, 1), x)
    local m = blua.tensor(sq)
    local col = m:select(2, 1) -- a column of m as the result
    col:addmv(1, 1, m, blua.tensor{1, 1, 1})
    same_values({2 + 3, 1 + 5, 0 + 5}, col)
    local v = blua.tensor{1, 2, 3, 4}
    local mat = v:view(2, 2)
    v:narrow(1, 1, 2):mv(mat, v:narrow(1, 3, 2))
    same_values({1 * 3 + 2 * 4, 3 * 3 + 4 * 4, 3, 4}, v)
  end)

  it("handle empty sizes: an empty inner dimension gives beta·y", function()
    same_values({0, 0}, blua.mv(blua.zeros(2, 0), blua.zeros(0)))
    same_values({3, 6}, blua.tensor{1, 2}:addmv(3, 5, blua.zeros(2, 0), blua.zeros(0)))
    same_values({0, 0}, blua.tensor{nan, 2}:addmv(0, 5, blua.zeros(2, 0), blua.zeros(0)))
    assert.equal(0, blua.mv(blua.zeros(0, 3), blua.zeros(3)):size(1))
  end)

  it("refuse wrong shapes, ambiguous forms and extra arguments", function()
    local m, x = blua.zeros(4, 3), blua.zeros(3)
    refuses(function() blua.mv(m, blua.zeros(4)) end, "size mismatch in 'mv': 4x3 * 4 (a matrix times a vector)")
    refuses(function() blua.mv(x, x) end, "size mismatch in 'mv': 3 * 3")
    refuses(function() m:mv(m) end, "size mismatch in 'mv': 4x3 * 4x3")
    refuses(function() blua.zeros(3):mv(m, x) end, "size mismatch in 'mv': 4x3 * 3 -> 3 (a matrix times a vector into a vector)")
    refuses(function() blua.zeros(4):mv(m, blua.zeros(4)) end, "size mismatch in 'mv': 4x3 * 4 -> 4")
    refuses(function() blua.zeros(4, 1):addmv(m, x) end, "size mismatch in 'addmv': 4x1 + 4x3 * 3")
    refuses(function() blua.zeros(4):addmv(blua.zeros(4), 2, m, x) end, "got (tensor, number, tensor, tensor); Torch7's form with a source tensor")
    refuses(function() blua.zeros(4):addmv(1, 2, 3, m, x) end, "t:addmv: ([beta,] [alpha,] m, x) expected, got 1 more argument")
    refuses(function() blua.zeros(4):addmv(1, m) end, "t:addmv: ([beta,] [alpha,] m, x) expected, got (number, tensor)")
    refuses(function() blua.mv(m, x, x) end, "blua.mv: (m, x) expected, got 1 more argument")
    refuses(function() m:mv(m, x, x) end, "t:mv: (x | m, x) expected, got 1 more argument")
  end)
end)

describe("the into forms with a nil by mistake", function()
  it("c:bmm(a, nil) and y:mv(m, nil) are errors, not the new product c·a or y·m", function()
    local a, c = blua.ones(2, 3, 3), blua.ones(2, 3, 3)
    assert.has_error(function() return c:bmm(a, nil) end, "bad argument #2 to 'bmm' (blua.Tensor expected, got nil)")
    local m, y = blua.ones(3, 3), blua.ones(3)
    assert.has_error(function() return y:mv(m, nil) end, "bad argument #2 to 'mv' (blua.Tensor expected, got nil)")
    assert.has_error(function() return c:mm(a, nil) end)
    assert.same({2, 3, 3}, {c:bmm(a):size(1), c:bmm(a):size(2), c:bmm(a):size(3)})
  end)
end)

describe("bmm, baddbmm and addbmm", function()
  -- 2 x 2 x 3 times 2 x 3 x 2; small values, so every product is exact in float.
  local a0 = {{{1, 2, 3}, {4, 5, 6}}, {{-1, 0.5, 2}, {0, 3, -2}}}
  local b0 = {{{1, 0}, {2, 1}, {-1, 3}}, {{0, 2}, {1, 1}, {4, -1}}}
  local c0 = {{{1, 1}, {1, 1}}, {{2, 2}, {2, 2}}}
  -- beta·c[i] + alpha·a[i]·b[i] per batch entry in plain Lua (c nil: 0).
  local function ref_bmm(a, b, c, beta, alpha)
    local r = {}
    for i = 1, #a do
      r[i] = {}
      for j = 1, #a[i] do
        r[i][j] = {}
        for l = 1, #b[i][1] do
          local s = 0
          for k = 1, #b[i] do s = s + a[i][j][k] * b[i][k][l] end
          r[i][j][l] = f32((c and beta * c[i][j][l] or 0) + alpha * s)
        end
      end
    end
    return r
  end
  local function ref_addbmm(a, b, c, beta, alpha)
    local per = ref_bmm(a, b, nil, 0, 1)
    local r = {}
    for j = 1, #c do
      r[j] = {}
      for l = 1, #c[1] do
        local s = 0
        for i = 1, #a do s = s + per[i][j][l] end
        r[j][l] = f32(beta * c[j][l] + alpha * s)
      end
    end
    return r
  end
  -- The same values as a permuted (non-contiguous) 3-D view.
  local function permuted(values)
    local t = blua.tensor(values)
    local p = t:permute(3, 1, 2):contiguous():permute(2, 3, 1)
    assert.is_false(p:isContiguous())
    same_values(values, p)
    return p
  end

  it("blua.bmm and a:bmm(b) give a new product; c:bmm(a, b) writes into c", function()
    local want = ref_bmm(a0, b0, nil, 0, 1)
    local a, b = blua.tensor(a0), blua.tensor(b0)
    same_values(want, blua.bmm(a, b))
    local r = a:bmm(b)
    assert.are_not.equal(a, r)
    same_values(want, r)
    same_values(a0, a)
    local c = blua.zeros(2, 2, 2):fill(nan)
    assert.equal(c, c:bmm(a, b))
    same_values(want, c)
  end)

  it("baddbmm and addbmm take Torch7's forms: one number is alpha, two are beta and alpha", function()
    local a, b = blua.tensor(a0), blua.tensor(b0)
    local c = blua.tensor(c0)
    assert.equal(c, c:baddbmm(a, b))
    same_values(ref_bmm(a0, b0, c0, 1, 1), c)
    same_values(ref_bmm(a0, b0, c0, 1, 3), blua.tensor(c0):baddbmm(3, a, b))
    same_values(ref_bmm(a0, b0, c0, -2, 0.5), blua.tensor(c0):baddbmm(-2, 0.5, a, b))
    local s0 = {{1, 2}, {3, 4}}
    local s = blua.tensor(s0)
    assert.equal(s, s:addbmm(a, b))
    same_values(ref_addbmm(a0, b0, s0, 1, 1), s)
    same_values(ref_addbmm(a0, b0, s0, 1, -1), blua.tensor(s0):addbmm(-1, a, b))
    same_values(ref_addbmm(a0, b0, s0, 0.5, 2), blua.tensor(s0):addbmm(0.5, 2, a, b))
    -- beta 0 does not read c (NaN there does not come through)
    same_values(ref_bmm(a0, b0, nil, 0, 2), blua.zeros(2, 2, 2):fill(nan):baddbmm(0, 2, a, b))
    same_values(ref_addbmm(a0, b0, s0, 0, 1), blua.zeros(2, 2):fill(nan):addbmm(0, 1, a, b))
  end)

  it("are the same on permuted and narrowed operands and results", function()
    local a, b = permuted(a0), permuted(b0)
    same_values(ref_bmm(a0, b0, nil, 0, 1), blua.bmm(a, b))
    local wide = blua.zeros(3, 4, 5):fill(99)
    local c = wide:narrow(1, 2, 2):narrow(2, 2, 2):narrow(3, 3, 2)
    c:copy(blua.tensor(c0))
    c:baddbmm(2, -1, a, b)
    same_values(ref_bmm(a0, b0, c0, 2, -1), c)
    assert.equal(99, wide:get(1, 1, 1))
    assert.equal(99, wide:get(3, 4, 5))
    assert.equal(99 * (3 * 4 * 5 - 8), wide:sum() - c:sum())
    local s = permuted({{{1, 2}, {3, 4}}}):select(1, 1)
    s:addbmm(1, 1, a, b)
    same_values(ref_addbmm(a0, b0, {{1, 2}, {3, 4}}, 1, 1), s)
  end)

  it("give the right product when the result shares memory with a or b", function()
    local q0 = {{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}
    local q = blua.tensor(q0)
    q:bmm(q, q) -- every batch entry is read before any is written
    same_values(ref_bmm(q0, q0, nil, 0, 1), q)
    q = blua.tensor(q0)
    q:baddbmm(2, 1, blua.tensor(q0), q)
    same_values(ref_bmm(q0, q0, q0, 2, 1), q)
    -- the result is batch entry 1 of a: the sum reads entry 1 after the first product
    local a = blua.tensor(q0)
    local s = a:select(1, 1)
    s:addbmm(1, 1, a, blua.tensor(q0))
    same_values(ref_addbmm(q0, q0, q0[1], 1, 1), s)
    same_values(q0[2], a:select(1, 2))
  end)

  it("handle empty sizes: an empty inner dimension gives beta·c", function()
    same_values({{{0, 0}}, {{0, 0}}}, blua.bmm(blua.zeros(2, 1, 0), blua.zeros(2, 0, 2)))
    same_values({{{3, 3}}}, blua.ones(1, 1, 2):baddbmm(3, 5, blua.zeros(1, 1, 0), blua.zeros(1, 0, 2)))
    same_values({{3, 3}}, blua.ones(1, 2):addbmm(3, 5, blua.zeros(0, 1, 4), blua.zeros(0, 4, 2)))
    same_values({{0, 0}}, blua.ones(1, 2):fill(nan):addbmm(0, 5, blua.zeros(2, 1, 0), blua.zeros(2, 0, 2)))
    assert.equal(0, blua.bmm(blua.zeros(0, 2, 3), blua.zeros(0, 3, 4)):size(1))
    refuses(function() blua.bmm(blua.zeros(1, 2^20, 0), blua.zeros(1, 0, 2^20)) end,
      "tensor too large in 'bmm': 1x1048576x1048576 (at most 2^34 elements)")
  end)

  it("refuse wrong shapes, ambiguous forms and extra arguments", function()
    local a, b = blua.zeros(2, 2, 3), blua.zeros(2, 3, 4)
    refuses(function() blua.bmm(a, a) end, "size mismatch in 'bmm': 2x2x3 * 2x2x3 (n x p x q * n x q x r expected)")
    refuses(function() blua.bmm(a, blua.zeros(3, 3, 4)) end, "size mismatch in 'bmm': 2x2x3 * 3x3x4")
    refuses(function() blua.bmm(blua.zeros(2, 3), blua.zeros(3, 2)) end, "size mismatch in 'bmm': 2x3 * 3x2")
    refuses(function() a:bmm(a) end, "size mismatch in 'bmm': 2x2x3 * 2x2x3")
    refuses(function() blua.zeros(2, 2, 3):bmm(a, b) end,
      "size mismatch in 'bmm': 2x2x3 * 2x3x4 -> 2x2x3 (n x p x q * n x q x r -> n x p x r)")
    refuses(function() blua.zeros(4, 2):addbmm(a, b) end,
      "size mismatch in 'addbmm': 2x2x3 * 2x3x4 -> 4x2 (n x p x q * n x q x r summed into p x r)")
    refuses(function() blua.zeros(2, 2, 4):addbmm(a, b) end, "size mismatch in 'addbmm': 2x2x3 * 2x3x4 -> 2x2x4")
    refuses(function() blua.zeros(2, 4):baddbmm(a, b) end, "size mismatch in 'baddbmm': 2x2x3 * 2x3x4 -> 2x4")
    refuses(function() blua.zeros(2, 2, 4):baddbmm(blua.zeros(2, 2, 4), 2, a, b) end,
      "got (tensor, number, tensor, tensor); Torch7's form with a source tensor")
    refuses(function() blua.zeros(2, 2, 4):baddbmm(1, 2, 3, a, b) end,
      "t:baddbmm: ([beta,] [alpha,] a, b) expected, got 1 more argument")
    refuses(function() blua.zeros(2, 4):addbmm(1, a) end, "t:addbmm: ([beta,] [alpha,] a, b) expected, got (number, tensor)")
    refuses(function() blua.zeros(2, 4):addbmm("1", a, b) end, "t:addbmm: ([beta,] [alpha,] a, b) expected, got (string, tensor, tensor)")
    refuses(function() blua.bmm(a, b, b) end, "blua.bmm: (a, b) expected, got 1 more argument")
    refuses(function() a:bmm(a, b, b) end, "t:bmm: (b | a, b) expected, got 1 more argument")
    refuses(function() blua.bmm(a, 2) end, "bad argument #2")
  end)
end)

describe("t:addr", function()
  local a0 = {{1, 2, 3}, {4, 5, 6}}
  local function ref(beta, alpha, x, y)
    local r = {}
    for i = 1, 2 do
      r[i] = {}
      for j = 1, 3 do r[i][j] = beta * a0[i][j] + alpha * x[i] * y[j] end
    end
    return r
  end

  it("adds the outer product with Torch7's forms", function()
    local x, y = blua.tensor{2, -1}, blua.tensor{1, 3, 5}
    local a = blua.tensor(a0)
    assert.equal(a, a:addr(x, y))
    same_values(ref(1, 1, {2, -1}, {1, 3, 5}), a)
    same_values(ref(1, 0.5, {2, -1}, {1, 3, 5}), blua.tensor(a0):addr(0.5, x, y))
    same_values(ref(-1, 2, {2, -1}, {1, 3, 5}), blua.tensor(a0):addr(-1, 2, x, y))
    same_values(ref(0, 1, {2, -1}, {1, 3, 5}), blua.tensor{{nan, nan, nan}, {nan, nan, nan}}:addr(0, 1, x, y))
  end)

  it("is the same on views and when a shares memory with x or y", function()
    local want = ref(2, 3, {2, -1}, {1, 3, 5})
    for _, a in ipairs(views(a0)) do
      a:addr(2, 3, (strided{2, -1}), (strided{1, 3, 5}))
      same_values(want, a)
    end
    local sq = blua.tensor{{1, 2}, {3, 4}}
    sq:addr(sq:select(2, 1), sq:select(1, 2)) -- x = column 1 = {1, 3}, y = row 2 = {3, 4}
    same_values({{1 + 3, 2 + 4}, {3 + 9, 4 + 12}}, sq)
  end)

  it("refuses wrong shapes and forms", function()
    refuses(function() blua.zeros(2, 3):addr(blua.zeros(3), blua.zeros(2)) end, "size mismatch in 'addr': 2x3 + 3 (x) 2")
    refuses(function() blua.zeros(6):addr(blua.zeros(2), blua.zeros(3)) end, "size mismatch in 'addr': 6 + 2 (x) 3")
    refuses(function() blua.zeros(2, 3):addr(1, 2, blua.zeros(2)) end, "t:addr: ([beta,] [alpha,] x, y) expected, got (number, number, tensor)")
  end)
end)

describe("blua.range, blua.linspace and blua.logspace", function()
  local function ref_range(a, b, step)
    local r, n = {}, math.floor((b - a) / step) + 1
    for k = 0, n - 1 do r[k + 1] = f32(a + k * step) end
    return r
  end

  it("range includes b and steps either way (Torch7)", function()
    same_values({1, 2, 3, 4, 5}, blua.range(1, 5))
    same_values({5, 3, 1}, blua.range(5, 1, -2))
    same_values({2}, blua.range(2, 2))
    same_values(ref_range(0, 1, 0.1), blua.range(0, 1, 0.1))
    same_values(ref_range(-3, 0.3, 0.7), blua.range(-3, 0.3, 0.7))
    same_values(ref_range(0, 0.3, 0.1), blua.range(0, 0.3, 0.1)) -- (0.3 - 0)/0.1 < 3: three entries
    assert.equal(1, blua.range(1, 5):dim())
  end)

  it("range refuses a step that leads away, NaN, infinities and absurd sizes", function()
    refuses(function() blua.range(1, 5, 0) end, "bad range in 'range': step 0 does not lead from 1 to 5")
    refuses(function() blua.range(1, 5, -1) end, "bad range in 'range': step -1 does not lead from 1 to 5")
    refuses(function() blua.range(0, nan) end, "bad range in 'range': from 0 to")
    refuses(function() blua.range(0, math.huge) end, "finite numbers expected")
    refuses(function() blua.range(0, 1e300, 1e-300) end, "tensor too large in 'range': from 0 to 1e+300 by 1e-300 makes inf entries")
    refuses(function() blua.range(-1.7e308, 1.7e308) end, "tensor too large in 'range'")
    refuses(function() blua.range(0, math.maxinteger) end, "tensor too large in 'range'")
    refuses(function() blua.range(0, 2 ^ 40) end, "tensor too large in 'range'")
    refuses(function() blua.range("1", 2) end, "bad start in 'range': number expected, got string")
    refuses(function() blua.range(1, 2, 1, 4) end, "blua.range: (a, b [, step]) expected, got 1 more argument")
  end)

  it("linspace spaces n points (default 100) with b last; logspace takes 10^ of them", function()
    local function ref(a, b, n, log)
      local r = {}
      for k = 0, n - 1 do
        local v = k == n - 1 and b or a + k * ((b - a) / (n - 1))
        r[k + 1] = f32(log and 10 ^ v or v)
      end
      return r
    end
    same_values(ref(0, 1, 5), blua.linspace(0, 1, 5))
    same_values(ref(-2, 3.3, 7), blua.linspace(-2, 3.3, 7))
    same_values(ref(1, -1, 4), blua.linspace(1, -1, 4))
    same_values(ref(0, 1, 100), blua.linspace(0, 1))
    assert.equal(100, blua.linspace(0, 1):size(1))
    same_values(ref(0, 2, 3, true), blua.logspace(0, 2, 3))
    same_values(ref(-1, 1.5, 6, true), blua.logspace(-1, 1.5, 6))
    same_values(ref(0, 1, 100, true), blua.logspace(0, 1))
    same_values({4}, blua.linspace(4, 4, 1))
    same_values({100}, blua.logspace(2, 2, 1))
    same_values({math.huge, math.huge}, blua.logspace(100, 200, 2)) -- past the float range
  end)

  it("linspace and logspace refuse n = 0, n = 1 between two ends, bad n and bad ends", function()
    refuses(function() blua.linspace(0, 1, 0) end, "bad number of points in 'linspace': 0 from 0 to 1 (2 or more, or 1 when both ends are equal)")
    refuses(function() blua.logspace(0, 1, 1) end, "bad number of points in 'logspace': 1 from 0 to 1")
    refuses(function() blua.linspace(0, 1, -3) end, "bad size in 'linspace': -3")
    refuses(function() blua.linspace(0, 1, 2.5) end, "bad size in 'linspace': 2.5 is not an integer")
    refuses(function() blua.linspace(0, 1, nan) end, "bad size in 'linspace'")
    refuses(function() blua.linspace(0, 1, math.maxinteger) end, "tensor too large in 'linspace'")
    refuses(function() blua.linspace(nan, 1) end, "bad bounds in 'linspace': ")
    refuses(function() blua.linspace(1, nan) end, "(finite numbers expected)")
    refuses(function() blua.logspace(0, -math.huge) end, "bad bounds in 'logspace'")
    refuses(function() blua.linspace(-1.7e308, 1.7e308, 3) end, "bad bounds in 'linspace'")
    refuses(function() blua.linspace(0, 1, 3, 4) end, "blua.linspace: (a, b [, n]) expected, got 1 more argument")
  end)
end)

describe("diag, trace, tril and triu", function()
  local m0 = {{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}}

  local function ref_diag(k)
    local r = {}
    for i = 1, 3 do
      local j = i + k
      if j >= 1 and j <= 4 then r[#r + 1] = m0[i][j] end
    end
    return r
  end

  it("diag of a matrix is its k-th diagonal as a new vector, on any view", function()
    for _, k in ipairs{0, 1, 3, 4, -1, -2, -3} do
      local want = ref_diag(k)
      local d = blua.tensor(m0):diag(k)
      assert.equal(#want, d:size(1))
      if #want > 0 then same_values(want, d) end
      for _, v in ipairs(views(m0)) do
        local dv = blua.diag(v, k)
        assert.is_true(dv:isContiguous())
        if #want > 0 then same_values(want, dv) end
      end
    end
    same_values({1, 6, 11}, blua.tensor(m0):diag())
    local m = blua.tensor(m0)
    m:diag():fill(0)
    same_values(m0, m) -- a new tensor, not a view
  end)

  it("diag of a vector is a square matrix with it on diagonal k", function()
    local function ref(v, k)
      local n = #v + math.abs(k)
      local r = {}
      for i = 1, n do
        r[i] = {}
        for j = 1, n do r[i][j] = 0 end
      end
      for i = 1, #v do
        if k >= 0 then r[i][i + k] = v[i] else r[i - k][i] = v[i] end
      end
      return r
    end
    for _, k in ipairs{0, 1, 2, -1, -3} do
      same_values(ref({3, -1, nan}, k), blua.tensor{3, -1, nan}:diag(k))
      same_values(ref({3, -1, nan}, k), blua.diag(strided{3, -1, nan}, k))
    end
    same_values({{0, 0}, {0, 0}}, blua.diag(blua.zeros(0), 2))
  end)

  it("diag refuses far diagonals, other dimensions, fractions and huge k", function()
    local m = blua.tensor(m0)
    refuses(function() m:diag(5) end, "bad diagonal in 'diag': 5 of a 3x4 matrix (-3..4)")
    refuses(function() m:diag(-4) end, "bad diagonal in 'diag': -4 of a 3x4 matrix")
    refuses(function() blua.zeros(2, 2, 2):diag() end, "a vector or a matrix expected in 'diag': 2x2x2")
    refuses(function() m:diag(0.5) end, "bad diagonal in 'diag': 0.5 is not an integer")
    refuses(function() m:diag(nan) end, "bad diagonal in 'diag'")
    refuses(function() blua.tensor{1}:diag(math.maxinteger) end, "bad diagonal in 'diag'")
    refuses(function() blua.tensor{1}:diag(math.mininteger) end, "bad diagonal in 'diag'")
    refuses(function() blua.tensor{1}:diag(2 ^ 31) end, "tensor too large in 'diag'")
    refuses(function() blua.zeros(3):diag(m) end, "t:diag: ([k]) expected, got a tensor")
    refuses(function() m:diag(1, 2) end, "t:diag: ([k]) expected, got 1 more argument")
    refuses(function() blua.diag(m, 1, 2) end, "blua.diag: (t [, k]) expected, got 1 more argument")
  end)

  it("trace sums the main diagonal of a matrix", function()
    assert.equal(1 + 6 + 11, blua.tensor(m0):trace())
    for _, v in ipairs(views(m0)) do assert.equal(18, v:trace()) end
    assert.equal(1 + 6 + 11, blua.tensor(m0):t():trace())
    assert.equal(0, blua.zeros(0, 3):trace())
    assert.is_true(blua.tensor{{nan}}:trace() ~= blua.tensor{{nan}}:trace())
    refuses(function() blua.zeros(3):trace() end, "a matrix expected in 'trace': 3")
    refuses(function() blua.zeros(2, 2):trace(1) end, "t:trace: () expected, got 1 more argument")
  end)

  it("tril and triu keep the entries on and below / above diagonal k in a new tensor", function()
    local function ref(k, upper)
      local r = {}
      for i = 1, 3 do
        r[i] = {}
        for j = 1, 4 do
          local keep = upper and j - i >= k or (not upper and j - i <= k)
          r[i][j] = keep and m0[i][j] or 0
        end
      end
      return r
    end
    for _, k in ipairs{0, 1, -1, 3, -2, 10, -10, math.maxinteger, math.mininteger} do
      same_values(ref(k, false), blua.tensor(m0):tril(k))
      same_values(ref(k, true), blua.tensor(m0):triu(k))
      for _, v in ipairs(views(m0)) do
        same_values(ref(k, false), v:tril(k))
        same_values(ref(k, true), v:triu(k))
      end
    end
    same_values(ref(0, false), blua.tensor(m0):tril())
    local m = blua.tensor(m0)
    m:triu():fill(0)
    same_values(m0, m)
    same_values({{nan, 0}, {nan, nan}}, blua.tensor{{nan, nan}, {nan, nan}}:tril())
  end)

  it("tril and triu refuse other dimensions and Torch7's y:tril(x)", function()
    refuses(function() blua.zeros(3):tril() end, "a matrix expected in 'tril': 3")
    refuses(function() blua.zeros(2, 2, 2):triu() end, "a matrix expected in 'triu': 2x2x2")
    refuses(function() blua.zeros(2, 2):tril(blua.zeros(2, 2)) end, "t:tril: ([k]) expected, got a tensor")
    refuses(function() blua.zeros(2, 2):triu(0.5) end, "bad diagonal in 'triu': 0.5 is not an integer")
    refuses(function() blua.zeros(2, 2):triu(1, 2) end, "t:triu: ([k]) expected, got 1 more argument")
  end)
end)

describe("t:repeatTensor", function()
  -- Plain Lua tiling of a matrix r x c into (r·n1) x (c·n2).
  local function ref(m, n1, n2)
    local r = {}
    for i = 1, #m * n1 do
      r[i] = {}
      for j = 1, #m[1] * n2 do r[i][j] = m[(i - 1) % #m + 1][(j - 1) % #m[1] + 1] end
    end
    return r
  end
  local m0 = {{1, 2, 3}, {4, 5, 6}}

  it("tiles a tensor, also from views and with leading new dimensions", function()
    same_values(ref(m0, 2, 3), blua.tensor(m0):repeatTensor(2, 3))
    same_values(ref(m0, 1, 1), blua.tensor(m0):repeatTensor{1, 1})
    for _, v in ipairs(views(m0)) do same_values(ref(m0, 3, 2), v:repeatTensor(3, 2)) end
    same_values({1, 2, 1, 2, 1, 2}, blua.tensor{1, 2}:repeatTensor(3))
    same_values({{1, 2, 1, 2}, {1, 2, 1, 2}}, strided{1, 2}:repeatTensor(2, 2))
    local t = blua.tensor(m0):repeatTensor(2, 1, 2)
    assert.same({2, 2, 6}, {t:size()})
    same_values({ref(m0, 1, 2), ref(m0, 1, 2)}, t)
    local cube = blua.tensor{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}:permute(3, 1, 2)
    same_values(cube:contiguous():repeatTensor(2, 1, 3):totable(), cube:repeatTensor(2, 1, 3))
  end)

  it("gives empty tensors for a count 0 or an empty tensor", function()
    assert.same({0, 3}, {blua.tensor(m0):repeatTensor(0, 1):size()})
    assert.same({4, 0}, {blua.zeros(2, 0):repeatTensor(2, 5):size()})
  end)

  it("refuses fewer counts than dimensions, bad counts and sizes that overflow", function()
    local m = blua.tensor(m0)
    refuses(function() m:repeatTensor(2) end, "bad repetitions in 'repeatTensor': 1 counts for a 2x3 tensor (2..8 expected)")
    refuses(function() m:repeatTensor(-1, 2) end, "bad size in 'repeatTensor': -1")
    refuses(function() m:repeatTensor(2, 1.5) end, "bad size in 'repeatTensor': 1.5 is not an integer")
    refuses(function() m:repeatTensor(2, nan) end, "bad size in 'repeatTensor'")
    refuses(function() m:repeatTensor(math.maxinteger, 1) end, "tensor too large in 'repeatTensor'")
    refuses(function() m:repeatTensor(2 ^ 33, 2 ^ 33) end, "tensor too large in 'repeatTensor'")
    refuses(function() m:repeatTensor(2 ^ 31, 2 ^ 31) end, "tensor too large in 'repeatTensor'")
    refuses(function() m:repeatTensor{} end, "bad repetitions in 'repeatTensor': 0 counts given")
    refuses(function() m:repeatTensor({1, 1}, 2) end, "got a table and 1 more argument")
    refuses(function() m:repeatTensor{1, "x"} end, "bad size in 'repeatTensor': integer expected, got string")
    refuses(function() m:repeatTensor(1, 1, 1, 1, 1, 1, 1, 1, 1) end, "t:repeatTensor: (n1, n2, ... | {n1, n2, ...}) expected, got 1 more argument")
  end)
end)

describe("t:split and t:chunk", function()
  local function sizes(list, d)
    local r = {}
    for i, p in ipairs(list) do r[i] = p:size(d) end
    return r
  end

  it("split cuts views of the given size along d (default 1), the last one shorter", function()
    local t = blua.range(1, 7)
    local parts = t:split(3)
    assert.same({3, 3, 1}, sizes(parts, 1))
    same_values({1, 2, 3}, parts[1])
    same_values({7}, parts[3])
    parts[2]:fill(0)
    same_values({1, 2, 3, 0, 0, 0, 7}, t) -- views
    local m = blua.range(1, 12):view(3, 4)
    local cols = m:split(3, 2)
    assert.same({3, 1}, sizes(cols, 2))
    same_values({{4}, {8}, {12}}, cols[2])
    assert.same({4}, sizes(m:split(10, 2), 2))
    assert.same({1, 1, 1}, sizes(m:split(1), 1))
    assert.same({}, blua.zeros(0, 3):split(2))
  end)

  it("chunk cuts ceil(size/n) long views, so it may give fewer than n (Torch7)", function()
    local t = blua.range(1, 10)
    assert.same({4, 4, 2}, sizes(t:chunk(3), 1))
    assert.same({2, 2, 2, 2, 2}, sizes(t:chunk(5), 1))
    assert.same({3, 3, 3, 1}, sizes(t:chunk(4), 1)) -- four pieces, the last shorter
    assert.same({2, 2, 2, 2, 2}, sizes(blua.range(1, 10):chunk(6), 1)) -- only five
    assert.same({1, 1, 1}, sizes(blua.range(1, 3):chunk(math.maxinteger), 1))
    local m = blua.range(1, 12):view(3, 4)
    local parts = m:t():chunk(2, 2) -- pieces of a transposed view
    assert.same({2, 1}, sizes(parts, 2))
    same_values({{1, 5}, {2, 6}, {3, 7}, {4, 8}}, parts[1])
    assert.same({}, blua.zeros(3, 0):chunk(2, 2))
  end)

  it("refuse bad sizes, counts and dimensions", function()
    local t = blua.zeros(4, 2)
    refuses(function() t:split(0) end, "bad piece size in 'split': 0 (1 or more)")
    refuses(function() t:split(-1) end, "bad piece size in 'split': -1")
    refuses(function() t:split(1.5) end, "bad piece size in 'split': 1.5 is not an integer")
    refuses(function() t:split(nan) end, "bad piece size in 'split'")
    refuses(function() t:split(1, 3) end, "bad dimension in 'split': 3 for a 2-D tensor")
    refuses(function() t:chunk(0) end, "bad chunk count in 'chunk': 0 (1 or more)")
    refuses(function() t:chunk(math.mininteger) end, "bad chunk count in 'chunk'")
    refuses(function() t:chunk(2, 0) end, "bad dimension in 'chunk': 0 for a 2-D tensor")
    refuses(function() blua.zeros(2 ^ 20 + 1, 0):split(1) end, "too many pieces in 'split': 1048577 of dimension 1 of 1048577x0 (at most 2^20)")
    refuses(function() blua.zeros(3, 2 ^ 21):chunk(2 ^ 21, 2) end, "too many pieces in 'chunk': 2097152 of dimension 2 of 3x2097152")
    refuses(function() t:split(1, 1, 1) end, "t:split: (size [, d]) expected, got 1 more argument")
    refuses(function() t:chunk(1, 1, 1) end, "t:chunk: (n [, d]) expected, got 1 more argument")
  end)
end)

describe("t:equal and t:isSameSizeAs", function()
  it("equal: same shape and every entry equal, on any layout; NaN is not equal to NaN", function()
    local m0 = {{1, 2, 3}, {4, 5, 6}}
    local m = blua.tensor(m0)
    for _, v in ipairs(views(m0)) do
      assert.is_true(m:equal(v))
      assert.is_true(v:equal(m))
    end
    assert.is_false(m:equal(m:t()))
    assert.is_false(m:equal(blua.tensor{1, 2, 3, 4, 5, 6}))
    assert.is_false(m:equal(blua.tensor{{1, 2, 3}, {4, 5, 7}}))
    assert.is_false(blua.tensor{nan}:equal(blua.tensor{nan}))
    assert.is_true(blua.tensor{0}:equal(blua.tensor{-0.0}))
    assert.is_true(blua.zeros(0, 2):equal(blua.zeros(0, 2)))
    assert.is_false(blua.zeros(0, 2):equal(blua.zeros(2, 0)))
  end)

  it("isSameSizeAs compares the sizes only", function()
    assert.is_true(blua.zeros(2, 3):isSameSizeAs(blua.ones(2, 3)))
    assert.is_true(blua.zeros(3, 2):t():isSameSizeAs(blua.ones(2, 3)))
    assert.is_false(blua.zeros(2, 3):isSameSizeAs(blua.ones(6)))
    assert.is_false(blua.zeros(2, 3, 1):isSameSizeAs(blua.ones(2, 3)))
  end)

  it("refuse a non-tensor and extra arguments", function()
    refuses(function() blua.zeros(2):equal({1, 2}) end, "blua.Tensor expected")
    refuses(function() blua.zeros(2):equal(blua.zeros(2), true) end, "t:equal: (u) expected, got 1 more argument")
    refuses(function() blua.zeros(2):isSameSizeAs(blua.zeros(2), 1) end, "t:isSameSizeAs: (u) expected, got 1 more argument")
  end)
end)

describe("the shape methods and finalizers", function()
  local function close(t) getmetatable(t).__close(t) end

  it("a finalizer that closes an argument during a call gives an error, not a crash", function()
    for round = 1, 180 do
      local t, a, b = blua.ones(8, 8), blua.ones(8, 8), blua.ones(8, 8)
      local x, y = blua.ones(8), blua.ones(8)
      local victims = {t, a, b, x, y}
      local victim = victims[round % #victims + 1]
      for _ = 1, 20 do setmetatable({}, {__gc = function() close(victim) end}) end
      local ops = {function() return t:addcmul(2, a, b) end, function() return t:addcdiv(a, b) end,
                   function() return blua.mv(a, x) end, function() return a:mv(x) end, function() return y:mv(a, x) end,
                   function() return y:addmv(2, 3, a, x) end, function() return t:addr(x, y) end,
                   function() return t:diag(1) end, function() return blua.diag(x, -1) end, function() return t:trace() end,
                   function() return t:tril(1) end, function() return t:triu() end, function() return a:repeatTensor(2, 1, 2) end,
                   function() return t:split(3, 2) end, function() return b:chunk(8) end, function() return t:equal(a) end,
                   function() return x:isSameSizeAs(y) end,
                   function() return t:narrow(1, 1, 4):view(2, 4, 4):bmm(a:view(2, 4, 8), b:view(2, 8, 4)) end,
                   function() return blua.bmm(a:view(2, 4, 8), b:view(2, 8, 4)) end,
                   function() return t:narrow(1, 1, 4):view(2, 4, 4):baddbmm(2, 3, a:view(2, 4, 8), b:view(2, 8, 4)) end,
                   function() return t:narrow(1, 1, 4):narrow(2, 1, 4):addbmm(a:view(2, 4, 8), b:view(2, 8, 4)) end}
      local ok, err = pcall(ops[round % #ops + 1])
      if not ok then assert.truthy(tostring(err):find("closed"), err) end
      collectgarbage()
    end
  end)

  it("a closed tensor as an argument is refused", function()
    local m, x = blua.ones(2, 2), blua.ones(2)
    close(x)
    refuses(function() return blua.mv(m, x) end, "tensor was closed")
    refuses(function() return m:addmv(1, 2, m, x) end, "tensor was closed")
    refuses(function() return x:split(1) end, "tensor was closed")
    refuses(function() return m:equal(x) end, "tensor was closed")
  end)
end)
