-- Torch7's indexing and masking methods: indexFill, indexCopy, indexAdd, maskedFill,
-- maskedSelect, maskedCopy, gather, scatter. Exact values against a plain-Lua reference on
-- row-major value lists, views (transposed, narrowed, permuted) against their contiguous
-- copies, sources that share memory with the tensor written, empty tensors, NaN, and every bad
-- dimension, position, size and mask value refused with its message.
local blua = require "blua"

local nan = 0 / 0

-- ---- a plain-Lua reference: a tensor as {shape, values in row-major order} ----

local function flatten(x, out)
  if type(x) ~= "table" then
    out[#out + 1] = x
  else
    for _, v in ipairs(x) do flatten(v, out) end
  end
  return out
end

local function plain(t)
  local shape = {}
  for d = 1, t:dim() do shape[d] = t:size(d) end
  return {shape = shape, v = flatten(t:totable(), {})}
end

local function count(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

-- 1-based coordinates of row-major position p (1-based) in shape, and back.
local function coords(shape, p)
  local c, r = {}, p - 1
  for d = #shape, 1, -1 do
    c[d] = r % shape[d] + 1
    r = r // shape[d]
  end
  return c
end

local function position(shape, c)
  local p = 0
  for d = 1, #shape do p = p * shape[d] + c[d] - 1 end
  return p + 1
end

local function with(c, d, i)
  local r = {table.unpack(c)}
  r[d] = i
  return r
end

local ref = {}

function ref.indexFill(t, d, idx, v)
  for p = 1, count(t.shape) do
    local c = coords(t.shape, p)
    for _, i in ipairs(idx) do
      if c[d] == i then t.v[p] = v end
    end
  end
  return t
end

function ref.indexPut(t, d, idx, src, add)
  for p = 1, count(src.shape) do
    local c = coords(src.shape, p)
    local q = position(t.shape, with(c, d, idx[c[d]]))
    t.v[q] = add and t.v[q] + src.v[p] or src.v[p]
  end
  return t
end

function ref.maskedFill(t, m, v)
  for p = 1, #t.v do
    if m.v[p] == 1 then t.v[p] = v end
  end
  return t
end

function ref.maskedSelect(t, m)
  local out = {}
  for p = 1, #t.v do
    if m.v[p] == 1 then out[#out + 1] = t.v[p] end
  end
  return out
end

function ref.maskedCopy(t, m, src)
  local k = 0
  for p = 1, #t.v do
    if m.v[p] == 1 then
      k = k + 1
      t.v[p] = src.v[k]
    end
  end
  return t
end

function ref.gather(t, d, index)
  local out = {}
  for p = 1, count(index.shape) do
    local c = coords(index.shape, p)
    out[p] = t.v[position(t.shape, with(c, d, index.v[p]))]
  end
  return out
end

function ref.scatter(t, d, index, src)
  for p = 1, count(index.shape) do
    local c = coords(index.shape, p)
    local v = type(src) == "number" and src or src.v[position(src.shape, c)]
    t.v[position(t.shape, with(c, d, index.v[p]))] = v
  end
  return t
end

-- Deterministic integer-valued data: sums stay exact in float32.
local function data(shape, seed)
  local n = count(shape)
  local t = blua.zeros(table.unpack(shape)):view(n)
  local x = seed or 1
  for k = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[k] = x % 19 - 9
  end
  return t:view(table.unpack(shape))
end

local function values(t) return flatten(t:totable(), {}) end

-- Views of base: a transposed one (other strides, same values), one narrowed out of a wider
-- tensor (the wider tensor returned to check that the rest stays untouched), and a permuted one
-- (3-D bases only).
local function views(base)
  local out = {}
  local dims = base:dim()
  local last = dims
  local tr = base:transpose(1, last):contiguous():transpose(1, last)
  out[#out + 1] = {name = "transposed", t = tr}
  local size = {}
  for d = 1, dims do size[d] = base:size(d) end
  size[last] = size[last] + 3
  local wide = blua.zeros(table.unpack(size)):fill(77)
  local narrow = wide:narrow(last, 2, base:size(last))
  narrow:copy(base)
  out[#out + 1] = {name = "narrowed", t = narrow, wide = wide}
  if dims == 3 then
    local p = base:permute(3, 1, 2):contiguous():permute(2, 3, 1)
    out[#out + 1] = {name = "permuted", t = p}
  end
  return out
end

-- The wide tensor's entries outside the narrowed block are still 77.
local function rest_untouched(v)
  if not v.wide then return end
  local w = v.wide
  local last = w:dim()
  local n = w:size(last)
  local left = values(w:narrow(last, 1, 1))
  local right = values(w:narrow(last, n - 1, 2))
  for _, x in ipairs(left) do assert.equal(77, x) end
  for _, x in ipairs(right) do assert.equal(77, x) end
end

local function mask(shape, seed)
  local m = data(shape, seed)
  local n = count(shape)
  local flat = m:view(n)
  for k = 1, n do flat[k] = flat:get(k) > 0 and 1 or 0 end
  return m
end

describe("t:indexFill, t:indexCopy, t:indexAdd", function()
  it("match the reference along every dimension of 1-D, 2-D and 3-D tensors", function()
    for _, shape in ipairs{{5}, {4, 3}, {2, 3, 4}} do
      for d = 1, #shape do
        local n = shape[d]
        local idx = {n, 1, n}
        local t = data(shape, 3)
        local want = ref.indexFill(plain(t), d, idx, -50).v
        assert.equal(t, t:indexFill(d, idx, -50))
        assert.same(want, values(t))

        local ssize = {table.unpack(shape)}
        ssize[d] = #idx
        local src = data(ssize, 5)
        t = data(shape, 3)
        want = ref.indexPut(plain(t), d, idx, plain(src), false).v
        assert.equal(t, t:indexCopy(d, idx, src))
        assert.same(want, values(t))

        t = data(shape, 3)
        want = ref.indexPut(plain(t), d, idx, plain(src), true).v
        assert.equal(t, t:indexAdd(d, blua.tensor(idx), src))
        assert.same(want, values(t))
      end
    end
  end)

  it("repeated indices: indexAdd accumulates, indexCopy keeps the last", function()
    local t = blua.zeros(3, 2)
    t:indexAdd(1, {2, 2, 2}, blua.tensor{{1, 2}, {10, 20}, {100, 200}})
    assert.same({{0, 0}, {111, 222}, {0, 0}}, t:totable())
    t:indexCopy(1, {1, 1}, blua.tensor{{1, 2}, {3, 4}})
    assert.same({{3, 4}, {111, 222}, {0, 0}}, t:totable())
    t:indexFill(2, {2, 2}, 9)
    assert.same({{3, 9}, {111, 9}, {0, 9}}, t:totable())
  end)

  it("give views the values of their contiguous copies", function()
    for _, shape in ipairs{{4, 3}, {2, 3, 4}} do
      for d = 1, #shape do
        local base = data(shape, 7)
        local ssize = {table.unpack(shape)}
        ssize[d] = 2
        local src = data(ssize, 9)
        local src_tr = src:transpose(1, #shape):contiguous():transpose(1, #shape)
        local ops = {
          function(t) return t:indexFill(d, {2, 1}, 0.5) end,
          function(t) return t:indexCopy(d, {2, 1}, src_tr) end,
          function(t) return t:indexAdd(d, blua.tensor{2, 2}, src_tr) end,
        }
        for k, op in ipairs(ops) do
          local want = values(op(base:clone()))
          for _, v in ipairs(views(base)) do
            assert.same(want, values(op(v.t)), v.name .. " " .. k)
            rest_untouched(v)
          end
        end
      end
    end
  end)

  it("read a source that shares memory with t as it was before the call", function()
    local t = blua.tensor{{1, 2}, {3, 4}}
    t:indexCopy(1, {2, 1}, t)
    assert.same({{3, 4}, {1, 2}}, t:totable())
    t = blua.tensor{{1, 2}, {3, 4}}
    t:indexAdd(2, {2, 1}, t)
    assert.same({{3, 3}, {7, 7}}, t:totable())
    -- rows 1..2 of t added into rows 2..3: row 2 is read before it changes
    t = blua.tensor{{1, 2}, {3, 4}, {5, 6}}
    t:indexAdd(1, {2, 3}, t:narrow(1, 1, 2))
    assert.same({{1, 2}, {4, 6}, {8, 10}}, t:totable())
    -- an index tensor that is t itself
    t = blua.tensor{2, 1, 2}
    t:indexFill(1, t, 5)
    assert.same({5, 5, 2}, t:totable())
  end)

  it("NaN values flow through", function()
    local t = blua.zeros(2, 2):indexFill(1, {2}, nan)
    local v = values(t)
    assert.same({0, 0}, {v[1], v[2]})
    assert.is_true(v[3] ~= v[3] and v[4] ~= v[4])
    t = blua.ones(2):indexAdd(1, {1}, blua.tensor{nan})
    assert.is_true(t:get(1) ~= t:get(1))
    assert.equal(1, t:get(2))
  end)

  it("accept empty index lists and empty tensors", function()
    local t = blua.tensor{{1, 2}, {3, 4}}
    assert.equal(t, t:indexFill(1, {}, 9))
    t:indexCopy(1, {}, blua.zeros(0, 2))
    t:indexAdd(2, blua.zeros(0), blua.zeros(2, 0))
    assert.same({{1, 2}, {3, 4}}, t:totable())
    local e = blua.zeros(0, 3)
    e:indexFill(2, {1, 3}, 1)
    e:indexCopy(2, {3}, blua.zeros(0, 1))
    assert.equal(0, e:nElement())
  end)

  it("refuse bad dimensions, positions, sources and extra arguments", function()
    local t = blua.tensor{{1, 2}, {3, 4}}
    local cases = {
      {function() t:indexFill(0, {1}, 1) end, "bad dimension in 'indexFill': 0 for a 2-D tensor"},
      {function() t:indexFill(3, {1}, 1) end, "bad dimension in 'indexFill': 3 for a 2-D tensor"},
      {function() t:indexCopy(math.maxinteger, {1}, t) end,
        "bad dimension in 'indexCopy': 9223372036854775807 for a 2-D tensor"},
      {function() t:indexAdd(2 ^ 31, {1}, t) end, "bad dimension in 'indexAdd': 2147483648 for a 2-D tensor"},
      {function() t:indexFill(1.5, {1}, 1) end, "bad dimension in 'indexFill': 1.5 is not an integer"},
      {function() t:indexFill(1, {1, 0}, 1) end,
        "index out of range in 'indexFill': entry 2 is 0, not in 1..2 (dimension 1 of 2x2)"},
      {function() t:indexFill(2, {3}, 1) end,
        "index out of range in 'indexFill': entry 1 is 3, not in 1..2 (dimension 2 of 2x2)"},
      {function() t:indexFill(1, {-1}, 1) end,
        "index out of range in 'indexFill': entry 1 is -1, not in 1..2 (dimension 1 of 2x2)"},
      {function() t:indexCopy(1, {math.maxinteger}, blua.zeros(1, 2)) end,
        "index out of range in 'indexCopy': entry 1 is 9223372036854775807, not in 1..2 (dimension 1 of 2x2)"},
      {function() t:indexAdd(1, {2 ^ 31}, blua.zeros(1, 2)) end,
        "index out of range in 'indexAdd': entry 1 is 2147483648, not in 1..2 (dimension 1 of 2x2)"},
      {function() t:indexFill(1, {1.5}, 1) end, "bad index in 'indexFill': entry 1 is 1.5, not an integer"},
      {function() t:indexFill(1, blua.tensor{1, 2.5}, 1) end, "bad index in 'indexFill': entry 2 is 2.5, not an integer"},
      {function() t:indexFill(1, {"x"}, 1) end, "bad index in 'indexFill': entry 1 is a string, integer expected"},
      {function() t:indexFill(1, 2, 1) end, "bad argument in 'indexFill': indices must be a table or a tensor, got number"},
      {function() t:indexFill(1, {1}, "x") end, "bad argument in 'indexFill': the value must be a number, got string"},
      {function() t:indexCopy(1, {1}, 3) end, "bad argument in 'indexCopy': src must be a tensor, got number"},
      {function() t:indexCopy(1, {1}, t) end,
        "size mismatch in 'indexCopy': src is 2x2, expected 1x2 (1 index along dimension 1 of 2x2)"},
      {function() t:indexAdd(2, {1, 2, 1}, blua.zeros(3, 2)) end,
        "size mismatch in 'indexAdd': src is 3x2, expected 2x3 (3 indices along dimension 2 of 2x2)"},
      {function() t:indexCopy(1, {1}, blua.zeros(2)) end,
        "size mismatch in 'indexCopy': src is 2, expected 1x2 (1 index along dimension 1 of 2x2)"},
      {function() t:indexFill(1, {1}, 1, 2) end, "t:indexFill: (d, indices, v) expected, got 1 more argument"},
      {function() t:indexCopy(1, {1}, t, 2) end, "t:indexCopy: (d, indices, src) expected, got 1 more argument"},
      {function() t:indexAdd(1, {1}, t, 2, 3) end, "t:indexAdd: (d, indices, src) expected, got 2 more arguments"},
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
    -- NaN as a dimension or a position: the message names it
    for _, f in ipairs{function() t:indexFill(nan, {1}, 1) end, function() t:indexFill(1, {nan}, 1) end,
                       function() t:indexFill(1, blua.tensor{nan}, 1) end} do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("nan, not an integer", 1, true) or tostring(err):find("nan is not an integer", 1, true), err)
    end
    assert.same({{1, 2}, {3, 4}}, t:totable()) -- every failed call left t as it was
  end)
end)

describe("t:maskedFill, t:maskedSelect, t:maskedCopy", function()
  it("match the reference on 1-D, 2-D and 3-D tensors", function()
    for _, shape in ipairs{{7}, {4, 3}, {2, 3, 4}} do
      local t, m = data(shape, 11), mask(shape, 13)
      local src = data({count(shape)}, 17)
      assert.same(ref.maskedSelect(plain(t), plain(m)), values(t:maskedSelect(m)))
      assert.equal(1, t:maskedSelect(m):dim())
      local want = ref.maskedCopy(plain(t), plain(m), plain(src)).v
      local c = t:clone()
      assert.equal(c, c:maskedCopy(m, src))
      assert.same(want, values(c))
      want = ref.maskedFill(plain(t), plain(m), -3).v
      assert.equal(t, t:maskedFill(m, -3))
      assert.same(want, values(t))
    end
  end)

  it("exact small cases, Torch's examples", function()
    local t = blua.tensor{{1, 2, 3}, {4, 5, 6}}
    local m = blua.tensor{{1, 0, 1}, {0, 1, 0}}
    assert.same({1, 3, 5}, t:maskedSelect(m):totable())
    assert.same({{10, 2, 20}, {4, 30, 6}}, t:clone():maskedCopy(m, blua.tensor{10, 20, 30, 40}):totable())
    assert.same({{0, 2, 0}, {4, 0, 6}}, t:clone():maskedFill(m, 0):totable())
    -- the mask needs t's element count, not its shape: it is read in its own row-major order
    assert.same({1, 3, 5}, t:maskedSelect(m:view(6)):totable())
    assert.same({1, 3, 4}, t:maskedSelect(blua.tensor{{1, 0}, {1, 1}, {0, 0}}):totable())
  end)

  it("give views (t, mask and src) the values of their contiguous copies", function()
    for _, shape in ipairs{{4, 3}, {2, 3, 4}} do
      local base, m = data(shape, 19), mask(shape, 23)
      local n = count(shape)
      local src = data({2, n}, 29):t() -- a transposed n x 2 source: its first entries are in its row-major order
      local m_views = views(m)
      local ops = {
        function(t, mm) return t:maskedFill(mm, 8) end,
        function(t, mm) return t:maskedCopy(mm, src) end,
        function(t, mm) return t:maskedSelect(mm) end,
      }
      for k, op in ipairs(ops) do
        local want = values(op(base:clone(), m))
        for _, v in ipairs(views(base)) do
          assert.same(want, values(op(v.t, m_views[1].t)), v.name .. " " .. k)
          rest_untouched(v)
        end
        for _, mv in ipairs(m_views) do
          assert.same(want, values(op(base:clone(), mv.t)), "mask " .. mv.name .. " " .. k)
        end
      end
    end
  end)

  it("read a mask or source that shares memory with t as it was before the call", function()
    local t = blua.tensor{1, 0, 1, 1}
    assert.same({5, 0, 5, 5}, t:maskedFill(t, 5):totable())
    t = blua.tensor{1, 0, 1, 0}
    assert.same({1, 0, 0, 0}, t:maskedCopy(t, t):totable()) -- entries 1 and 3 take t's first two, 1 and 0
    t = blua.tensor{7, 8, 9, 10}
    local m = blua.tensor{0, 1, 1, 0}
    t:maskedCopy(m, t:narrow(1, 2, 3)) -- entries 2 and 3 take 8 and 9 as they were
    assert.same({7, 8, 9, 10}, t:totable())
    t = blua.tensor{7, 8, 9, 10}
    t:maskedCopy(m, t) -- entries 2 and 3 take 7 and 8
    assert.same({7, 7, 8, 10}, t:totable())
  end)

  it("NaN values flow through; empty tensors and empty masks give empty results", function()
    local t = blua.tensor{nan, 1, nan}
    local s = t:maskedSelect(blua.tensor{1, 1, 0})
    assert.equal(2, s:nElement())
    assert.is_true(s:get(1) ~= s:get(1))
    assert.equal(1, s:get(2))
    local f = blua.zeros(2):maskedFill(blua.tensor{0, 1}, nan)
    assert.equal(0, f:get(1))
    assert.is_true(f:get(2) ~= f:get(2))
    local none = t:maskedSelect(blua.zeros(3))
    assert.same({1, 0}, {none:dim(), none:nElement()})
    local e = blua.zeros(0, 3)
    assert.equal(0, e:maskedSelect(blua.zeros(0)):nElement())
    assert.equal(e, e:maskedFill(blua.zeros(3, 0), 1))
    assert.equal(e, e:maskedCopy(blua.zeros(0), blua.zeros(0)))
    -- a mask without ones takes nothing from an empty source
    local u = blua.tensor{1, 2}
    assert.same({1, 2}, u:maskedCopy(blua.zeros(2), blua.zeros(0)):totable())
  end)

  it("refuse masks of another size or with values other than 0 and 1, short sources, extra arguments", function()
    local t = blua.tensor{{1, 2}, {3, 4}}
    local closed
    do
      local c <close> = blua.zeros(4)
      closed = c
    end
    local cases = {
      {function() t:maskedFill(blua.tensor{1, 0, 1}, 1) end,
        "size mismatch in 'maskedFill': mask 3 has 3 elements, tensor 2x2 has 4"},
      {function() t:maskedSelect(blua.zeros(2, 3)) end,
        "size mismatch in 'maskedSelect': mask 2x3 has 6 elements, tensor 2x2 has 4"},
      {function() t:maskedCopy(blua.zeros(5), t) end,
        "size mismatch in 'maskedCopy': mask 5 has 5 elements, tensor 2x2 has 4"},
      {function() t:maskedFill(blua.tensor{1, 0, 0.5, 1}, 1) end, "bad mask in 'maskedFill': entry 3 is 0.5, not 0 or 1"},
      {function() t:maskedSelect(blua.tensor{1, 2, 0, 1}) end, "bad mask in 'maskedSelect': entry 2 is 2, not 0 or 1"},
      {function() t:maskedCopy(blua.tensor{-1, 0, 0, 1}, t) end, "bad mask in 'maskedCopy': entry 1 is -1, not 0 or 1"},
      {function() t:maskedFill(blua.tensor{0, 1, 0, math.huge}, 1) end, "bad mask in 'maskedFill': entry 4 is inf, not 0 or 1"},
      {function() t:maskedCopy(blua.tensor{1, 1, 1, 0}, blua.tensor{5, 6}) end,
        "size mismatch in 'maskedCopy': src 2 has 2 elements, the mask selects 3"},
      {function() t:maskedFill(1, 1) end, "bad argument in 'maskedFill': mask must be a tensor, got number"},
      {function() t:maskedFill(closed, 1) end, "bad argument in 'maskedFill': mask must be a tensor, got a closed tensor"},
      {function() t:maskedFill(blua.zeros(4), "a") end, "bad argument in 'maskedFill': the value must be a number, got string"},
      {function() t:maskedSelect({1, 0, 1, 0}) end, "bad argument in 'maskedSelect': mask must be a tensor, got table"},
      {function() t:maskedCopy(blua.zeros(4), 3) end, "bad argument in 'maskedCopy': src must be a tensor, got number"},
      {function() t:maskedFill(blua.zeros(4), 1, 2) end, "t:maskedFill: (mask, v) expected, got 1 more argument"},
      {function() t:maskedSelect(blua.zeros(4), 1) end, "t:maskedSelect: (mask) expected, got 1 more argument"},
      {function() t:maskedCopy(blua.zeros(4), t, 1) end, "t:maskedCopy: (mask, src) expected, got 1 more argument"},
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
    local ok, err = pcall(t.maskedFill, t, blua.tensor{0, nan, 1, 1}, 1)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("bad mask in 'maskedFill': entry 2 is %-?nan, not 0 or 1"), err)
    assert.same({{1, 2}, {3, 4}}, t:totable())
  end)
end)

describe("t:gather and t:scatter", function()
  -- A valid index for t along d with `len` entries along d (the same sizes elsewhere).
  local function index_for(shape, d, len, seed)
    local ishape = {table.unpack(shape)}
    ishape[d] = len
    local n = count(ishape)
    local idx = blua.zeros(n)
    local x = seed
    for k = 1, n do
      x = (x * 1103515245 + 12345) % 2147483648
      idx[k] = x % shape[d] + 1
    end
    return idx:view(table.unpack(ishape))
  end

  it("match the reference along every dimension", function()
    for _, shape in ipairs{{5}, {4, 3}, {2, 3, 4}} do
      for d = 1, #shape do
        local t = data(shape, 31)
        for _, len in ipairs{1, shape[d], shape[d] + 2} do
          local index = index_for(shape, d, len, 37 + len)
          local g = t:gather(d, index)
          assert.same(plain(index).shape, plain(g).shape)
          assert.same(ref.gather(plain(t), d, plain(index)), values(g))
          -- scatter with a source longer than the index along d: only the index's part is read
          local ssize = {table.unpack(plain(index).shape)}
          ssize[d] = ssize[d] + 1
          local src = data(ssize, 41)
          local want = ref.scatter(plain(t), d, plain(index), plain(src)).v
          local c = t:clone()
          assert.equal(c, c:scatter(d, index, src))
          assert.same(want, values(c))
          want = ref.scatter(plain(t), d, plain(index), -7).v
          c = t:clone()
          assert.equal(c, c:scatter(d, index, -7))
          assert.same(want, values(c))
        end
      end
    end
  end)

  it("exact small cases, Torch's examples", function()
    local x = blua.tensor{{1, 2}, {3, 4}}
    assert.same({{1, 1}, {4, 3}}, x:gather(2, blua.tensor{{1, 1}, {2, 1}}):totable())
    assert.same({{3, 2}, {1, 4}}, x:gather(1, blua.tensor{{2, 1}, {1, 2}}):totable())
    local z = blua.zeros(2, 5)
    z:scatter(2, blua.tensor{{1, 2}, {4, 5}}, x)
    assert.same({{1, 2, 0, 0, 0}, {0, 0, 0, 3, 4}}, z:totable())
    local r = blua.zeros(3, 5)
    r:scatter(1, blua.tensor{{1, 2, 3, 1, 1}, {3, 1, 1, 2, 3}}, blua.tensor{{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}})
    assert.same({{1, 7, 8, 4, 5}, {0, 2, 0, 9, 0}, {6, 0, 3, 0, 10}}, r:totable())
    -- a position repeated along one line: the last in that line wins
    local w = blua.zeros(1, 3):scatter(2, blua.tensor{{2, 2}}, blua.tensor{{5, 6}})
    assert.same({{0, 6, 0}}, w:totable())
  end)

  it("give views (t, index and src) the values of their contiguous copies", function()
    for _, shape in ipairs{{4, 3}, {2, 3, 4}} do
      for d = 1, #shape do
        local base = data(shape, 43)
        local index = index_for(shape, d, shape[d], 47)
        local src = data(shape, 53)
        local index_views, src_views = views(index), views(src)
        local ops = {
          function(t, i, s) return t:gather(d, i), s end,
          function(t, i, s) return t:scatter(d, i, s) end,
          function(t, i) return t:scatter(d, i, 0.25) end,
        }
        for k, op in ipairs(ops) do
          local want = values(op(base:clone(), index, src))
          for _, v in ipairs(views(base)) do
            assert.same(want, values(op(v.t, index_views[1].t, src_views[2].t)), v.name .. " " .. k)
            rest_untouched(v)
          end
          for j = 1, #index_views do
            assert.same(want, values(op(base:clone(), index_views[j].t, src_views[j].t)), index_views[j].name .. " " .. k)
          end
        end
      end
    end
  end)

  it("read an index or source that shares memory with t as it was before the call", function()
    local t = blua.tensor{{2, 1}, {1, 2}}
    t:scatter(1, t, t) -- column 1: t[2][1] = 2, t[1][1] = 1; column 2: t[1][2] = 1, t[2][2] = 2
    assert.same({{1, 1}, {2, 2}}, t:totable())
    t = blua.tensor{{2, 1}, {1, 2}}
    t:scatter(2, t, 9)
    assert.same({{9, 9}, {9, 9}}, t:totable())
    t = blua.tensor{{2, 2}, {1, 1}}
    t:scatter(2, t, 5) -- row 1 writes column 2, row 2 column 1, reading the index as it was
    assert.same({{2, 5}, {5, 1}}, t:totable())
    t = blua.tensor{{2, 1}, {1, 2}}
    assert.same({{1, 1}, {2, 2}}, t:gather(1, t):totable())
  end)

  it("NaN values flow through; empty index gives an empty result", function()
    local t = blua.tensor{{nan, 1}, {2, 3}}
    local g = t:gather(1, blua.tensor{{1, 2}})
    assert.is_true(g:get(1, 1) ~= g:get(1, 1))
    assert.equal(3, g:get(1, 2))
    local s = blua.zeros(2, 2):scatter(1, blua.tensor{{2, 1}}, nan)
    assert.is_true(s:get(2, 1) ~= s:get(2, 1) and s:get(1, 2) ~= s:get(1, 2))
    assert.same({0, 0}, {s:get(1, 1), s:get(2, 2)})
    local e = t:gather(1, blua.zeros(0, 2))
    assert.same({0, 2}, {e:size(1), e:size(2)})
    assert.same({{nan ~= nan, 1}}, {{true, t:get(1, 2)}})
    t:scatter(2, blua.zeros(2, 0), blua.zeros(2, 0))
    t:scatter(2, blua.zeros(2, 0), 4)
    assert.same({1, 2, 3}, {t:get(1, 2), t:get(2, 1), t:get(2, 2)})
    local empty = blua.zeros(0, 3)
    assert.equal(0, empty:gather(2, blua.zeros(0, 5)):nElement())
    assert.equal(empty, empty:scatter(1, blua.zeros(0, 3), 1))
  end)

  it("refuse bad dimensions, index shapes and values, sources and extra arguments", function()
    local t = blua.tensor{{1, 2}, {3, 4}}
    local cases = {
      {function() t:gather(0, t) end, "bad dimension in 'gather': 0 for a 2-D tensor"},
      {function() t:scatter(3, t, 1) end, "bad dimension in 'scatter': 3 for a 2-D tensor"},
      {function() t:gather(math.maxinteger, t) end, "bad dimension in 'gather': 9223372036854775807 for a 2-D tensor"},
      {function() t:scatter(2 ^ 31, t, t) end, "bad dimension in 'scatter': 2147483648 for a 2-D tensor"},
      {function() t:gather(1, blua.tensor{1, 2}) end,
        "size mismatch in 'gather': index 2 for tensor 2x2 (the index needs the tensor's dimensions and its sizes outside dimension 1)"},
      {function() t:gather(1, blua.ones(2, 3)) end,
        "size mismatch in 'gather': index 2x3 for tensor 2x2 (the index needs the tensor's dimensions and its sizes outside dimension 1)"},
      {function() t:scatter(2, blua.ones(3, 1), 0) end,
        "size mismatch in 'scatter': index 3x1 for tensor 2x2 (the index needs the tensor's dimensions and its sizes outside dimension 2)"},
      {function() t:gather(1, blua.tensor{{1, 3}}) end,
        "index out of range in 'gather': entry 2 of the index is 3, not in 1..2 (dimension 1 of 2x2)"},
      {function() t:gather(2, blua.tensor{{1}, {0}}) end,
        "index out of range in 'gather': entry 2 of the index is 0, not in 1..2 (dimension 2 of 2x2)"},
      {function() t:scatter(1, blua.tensor{{-1, 1}}, 0) end,
        "index out of range in 'scatter': entry 1 of the index is -1, not in 1..2 (dimension 1 of 2x2)"},
      {function() t:scatter(1, blua.tensor{{1, 2 ^ 31}}, t) end,
        "index out of range in 'scatter': entry 2 of the index is 2147483648, not in 1..2 (dimension 1 of 2x2)"},
      {function() t:gather(1, blua.tensor{{1, math.huge}}) end,
        "index out of range in 'gather': entry 2 of the index is inf, not in 1..2 (dimension 1 of 2x2)"},
      {function() t:gather(1, blua.tensor{{1.5, 1}}) end, "bad index in 'gather': entry 1 of the index is 1.5, not an integer"},
      {function() t:scatter(1, blua.tensor{{1, 1}}, blua.zeros(1, 3)) end,
        "size mismatch in 'scatter': src 1x3 for index 1x2 (src needs the index's sizes, or more along dimension 1)"},
      {function() t:scatter(1, blua.tensor{{1, 1}, {2, 2}}, blua.zeros(1, 2)) end,
        "size mismatch in 'scatter': src 1x2 for index 2x2 (src needs the index's sizes, or more along dimension 1)"},
      {function() t:scatter(1, blua.tensor{{1, 1}}, blua.zeros(2)) end,
        "size mismatch in 'scatter': src 2 for index 1x2 (src needs the index's sizes, or more along dimension 1)"},
      {function() t:gather(1, {{1, 2}}) end, "bad argument in 'gather': index must be a tensor, got table"},
      {function() t:scatter(1, t, "x") end, "bad argument in 'scatter': src must be a tensor or a number, got string"},
      {function() t:scatter(1, t) end, "bad argument in 'scatter': src must be a tensor or a number, got no value"},
      {function() t:gather(1, t, 1) end, "t:gather: (d, index) expected, got 1 more argument"},
      {function() t:scatter(1, t, 1, 1) end, "t:scatter: (d, index, src | v) expected, got 1 more argument"},
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
    local ok, err = pcall(t.gather, t, 1, blua.tensor{{nan, 1}})
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("bad index in 'gather': entry 1 of the index is %-?nan, not an integer"), err)
    assert.same({{1, 2}, {3, 4}}, t:totable())
  end)
end)

describe("indexing and masking under the collector", function()
  local function close(t) getmetatable(t).__close(t) end

  it("an index list is read raw: no __len or __index of the caller's runs", function()
    local t = blua.zeros(3, 2)
    local ran = false
    local idx = setmetatable({2}, {__len = function() ran = true return math.maxinteger end,
                                   __index = function() ran = true close(t) return 1 end})
    t:indexFill(1, idx, 4)
    assert.same({{0, 0}, {4, 4}, {0, 0}}, t:totable())
    assert.is_false(ran)
  end)

  it("finalizers that close arguments during a call give errors, not crashes", function()
    for round = 1, 160 do
      local t, src, m = blua.ones(16, 16), blua.ones(2, 16), blua.ones(16, 16)
      local index = blua.ones(16, 16)
      local victims = {t, src, m, index}
      local victim = victims[round % #victims + 1]
      for _ = 1, 20 do setmetatable({}, {__gc = function() close(victim) end}) end
      local ops = {function() return t:indexCopy(1, {1, 2}, src) end, function() return t:indexAdd(1, {3, 3}, src) end,
                   function() return t:indexFill(2, {1, 16}, 2) end, function() return t:maskedSelect(m) end,
                   function() return t:maskedFill(m, 1) end, function() return t:maskedCopy(m, index) end,
                   function() return t:gather(1, index) end, function() return t:scatter(2, index, m) end}
      local ok, err = pcall(ops[round % #ops + 1])
      if not ok then assert.truthy(tostring(err):find("closed"), err) end
      collectgarbage()
    end
  end)
end)
