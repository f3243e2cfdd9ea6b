-- Torch7's functional forms (lua/blua/functional.lua): every blua.<name> of the list returns
-- what the method returns (on a clone for in-place methods, copied for views), leaves its
-- arguments unchanged, shares no memory with them, refuses a non-tensor first argument and an
-- argument past its last, and is the list docs/api.md documents; the sums with products take
-- Torch7's numbers around the summand.
local blua = require "blua"

local function fails_with(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function refuses(f, text)
  local err = fails_with(f)
  assert.is_truthy(err:find(text, 1, true), err)
end

-- Entries in (0, 1) so every map (log, asin, acos, sqrt, ...) is finite.
local A0 = {{0.25, 0.5, 0.75}, {0.125, 0.625, 0.375}}
local B0 = {{0.5, 0.25, 0.125}, {0.875, 0.5, 0.25}}

-- For each name: the arguments after the first tensor (a function of the tensor, for those
-- that need a tensor of its shape), and how the method gives the result: "inplace" (the
-- method changes its tensor: the result is the method on a clone), "new" (the method's own
-- result), "view" (the method's view, which the functional form copies).
local B = function() return blua.tensor(B0) end
local cases = {
  {"add", "inplace", function() return B() end}, {"add", "inplace", function() return 2 end},
  {"add", "inplace", function() return 3, B() end},
  {"sub", "inplace", function() return B() end}, {"sub", "inplace", function() return 0.5 end},
  {"mul", "inplace", function() return 3 end}, {"div", "inplace", function() return 4 end},
  {"cmul", "inplace", B}, {"cdiv", "inplace", B}, {"cmax", "inplace", B}, {"cmin", "inplace", function() return 0.3 end},
  {"pow", "inplace", function() return 3 end}, {"clamp", "inplace", function() return 0.2, 0.6 end},
  {"abs", "inplace"}, {"exp", "inplace"}, {"log", "inplace"}, {"log1p", "inplace"}, {"sqrt", "inplace"},
  {"square", "inplace"}, {"neg", "inplace"}, {"sign", "inplace"}, {"floor", "inplace"}, {"ceil", "inplace"},
  {"round", "inplace"}, {"tanh", "inplace"}, {"sigmoid", "inplace"}, {"sin", "inplace"}, {"cos", "inplace"},
  {"tan", "inplace"}, {"asin", "inplace"}, {"acos", "inplace"}, {"atan", "inplace"}, {"sinh", "inplace"},
  {"cosh", "inplace"}, {"frac", "inplace"}, {"cinv", "inplace"}, {"reciprocal", "inplace"},
  {"fmod", "inplace", function() return 0.3 end}, {"remainder", "inplace", function() return 0.3 end},
  {"atan2", "inplace", B}, {"lerp", "inplace", function() return B(), 0.25 end},
  {"csub", "inplace", B}, {"renorm", "inplace", function() return 2, 1, 0.5 end},
  {"gt", "inplace", function() return 0.4 end}, {"ge", "inplace", function() return 0.5 end},
  {"lt", "inplace", function() return 0.4 end}, {"le", "inplace", function() return 0.5 end},
  {"eq", "inplace", function() return 0.5 end}, {"ne", "inplace", function() return 0.5 end},
  {"mm", "new", function() return B():t() end}, {"dot", "new", B}, {"clone", "new"},
  {"sum", "new"}, {"sum", "new", function() return 2 end}, {"mean", "new", function() return 1 end},
  {"prod", "new", function() return 2 end}, {"max", "new"}, {"max", "new", function() return 2 end},
  {"min", "new", function() return 1 end}, {"var", "new", function() return 2, true end},
  {"std", "new", function() return 1 end}, {"norm", "new"}, {"cumsum", "new", function() return 2 end},
  {"cumprod", "new", function() return 1 end}, {"sort", "new", function() return 2, true end},
  {"topk", "new", function() return 2, 2, true end}, {"median", "new", function() return 2 end},
  {"mode", "new", function() return 1 end}, {"kthvalue", "new", function() return 2, 2 end},
  {"index", "new", function() return 2, {3, 1} end},
  {"gather", "new", function() return 2, blua.tensor{{3, 1}, {2, 2}} end},
  {"maskedSelect", "new", function() return blua.tensor{{1, 0, 1}, {0, 1, 1}} end},
  {"tril", "new"}, {"triu", "new", function() return 1 end}, {"trace", "new"},
  {"repeatTensor", "new", function() return 2, 1, 2 end}, {"repeatTensor", "new", function() return {1, 2} end},
  {"equal", "new", B},
  {"addcmul", "inplace", function() return 2, B(), B() end}, {"addcdiv", "inplace", function() return B(), B() end},
  {"addmm", "inplace", function() return 3, blua.tensor{{1, 2}, {0, -1}}, B() end, scaled = true},
  {"addr", "inplace", function() return blua.tensor{1, -2}, blua.tensor{3, 0.5, 2} end, scaled = true},
  {"addbmm", "inplace", function() return -1, blua.ones(2, 2, 4), blua.ones(2, 4, 3) end, scaled = true},
  {"addmv", "inplace", function() return 2, blua.tensor(A0), blua.tensor{1, 2, 3} end, scaled = true,
   first = function() return {blua.tensor{1, 2}, blua.tensor{1, 0, 2, 0}:view(2, 2):select(2, 1)} end},
  {"baddbmm", "inplace", function() return blua.tensor{{{1, 2}}, {{3, 4}}}, blua.tensor{{{1}, {1}}, {{2}, {0}}} end,
   scaled = true, first = function() return {blua.ones(2, 1, 1), blua.ones(1, 2, 1):permute(2, 1, 3)} end},
  {"t", "view"}, {"transpose", "view", function() return 1, 2 end}, {"squeeze", "view"},
  {"reshape", "view", function() return 3, 2 end}, {"reshape", "view", function() return {1, 6} end},
}

-- The documented names: every `blua.name(...)` or bare `name` in the first column of the table
-- under "### Functional forms".
local function documented()
  local names, inside = {}, false
  for line in io.lines("docs/api.md") do
    if line:match("^### ") then inside = line == "### Functional forms" end
    local cell = inside and line:match("^| (`blua%..-) | ")
    if cell then
      for token in cell:gmatch("`([^`]*)`") do
        names[#names + 1] = token:match("^blua%.([%w_]+)") or token:match("^([%w_]+)$")
      end
    end
  end
  return names
end

local function snapshot(args)
  local s = {}
  for i, v in ipairs(args) do s[i] = blua.isTensor(v) and v:clone() or v end
  return s
end

local function assert_unchanged(before, args, name)
  for i, v in ipairs(args) do
    if blua.isTensor(v) then assert.is_true(before[i]:equal(v), name .. ": argument " .. i .. " changed") end
  end
end

-- Results alike: tensors of one shape and entries, or equal Lua values.
local function assert_same(want, got, name)
  assert.equal(want.n, got.n, name .. ": number of results")
  for i = 1, want.n do
    if blua.isTensor(want[i]) then
      assert.is_true(blua.isTensor(got[i]) and want[i]:equal(got[i]), name .. ": result " .. i)
    else
      assert.equal(want[i], got[i], name .. ": result " .. i)
    end
  end
end

-- A transposed (non-contiguous) tensor with A0's values.
local function strided_A()
  local t = blua.tensor(A0):t():contiguous():t()
  assert.is_false(t:isContiguous())
  return t
end

describe("functional forms", function()
  it("every listed case is a documented blua function, and every documented one has a case", function()
    local listed = {}
    for _, c in ipairs(cases) do
      listed[c[1]] = true
      assert.equal("function", type(rawget(blua, c[1])), "blua." .. c[1] .. " is missing")
    end
    local docs = documented()
    assert.is_true(#docs > 60, "the docs table was not found")
    local in_docs = {}
    for _, name in ipairs(docs) do
      in_docs[name] = true
      assert.is_true(listed[name], "no case for the documented blua." .. name)
    end
    for name in pairs(listed) do assert.is_true(in_docs[name], "blua." .. name .. " is not in docs/api.md") end
  end)

  it("return the method's result as new tensors and leave the arguments unchanged", function()
    for _, c in ipairs(cases) do
      local name, how, more = c[1], c[2], c[3] or function() end
      for _, a in ipairs(c.first and c.first() or {blua.tensor(A0), strided_A()}) do
        local args = {a, more()}
        local before = snapshot(args)
        local got = table.pack(blua[name](table.unpack(args)))
        assert_unchanged(before, args, name)
        local own = before[1]:clone()
        local want
        if how == "inplace" then
          want = table.pack(own[name](own, table.unpack(snapshot(args), 2)))
          assert.equal(own, want[1], name .. ": the method does not return its tensor")
        else
          want = table.pack(own[name](own, table.unpack(snapshot(args), 2)))
        end
        assert_same(want, got, name)
        for i = 1, got.n do
          if blua.isTensor(got[i]) then
            for _, arg in ipairs(args) do assert.are_not.equal(arg, got[i], name .. ": an argument came back") end
            got[i]:fill(99) -- shares no memory with an argument
          end
        end
        assert_unchanged(before, args, name)
      end
    end
  end)

  it("refuse a first argument that is not a tensor, and arguments past their last", function()
    for _, c in ipairs(cases) do
      local name, more = c[1], c[3] or function() end
      if c.scaled then -- a number may come first: the form is named instead
        refuses(function() return blua[name](2) end, "blua." .. name .. ": ([beta,] ")
        refuses(function() return blua[name](2) end, "expected, got (number)")
      else
        refuses(function() return blua[name](2) end,
          "bad argument #1 to 'blua." .. name .. "' (blua.Tensor expected, got number)")
        refuses(function() return blua[name]() end, "bad argument #1 to 'blua." .. name .. "' (blua.Tensor expected, got nil)")
      end
      local args = {blua.tensor(A0), more()}
      while #args < 10 do args[#args + 1] = 1 end
      refuses(function() return blua[name](table.unpack(args)) end, "blua." .. name .. ": (")
      refuses(function() return blua[name](table.unpack(args)) end, " more argument")
    end
  end)

  it("name blua.<name>, the shapes and the caller's line in the method's errors", function()
    local a = blua.zeros(2, 3)
    local err = fails_with(function() local r = blua.cmul(a, blua.zeros(3, 2)) return r end)
    assert.is_truthy(err:find("functional_spec.lua:%d+: size mismatch in 'blua.cmul': 2x3 and 3x2"), err)
    refuses(function() return blua.mm(a, a) end, "size mismatch in 'blua.mm': 2x3 * 2x3")
    refuses(function() return blua.sum(a, 3) end, "bad dimension in 'blua.sum': 3 for a 2-D tensor")
    refuses(function() return blua.reshape(a, 4) end, "size mismatch in 'blua.reshape': cannot view 2x3 as 4")
    refuses(function() return blua.transpose(blua.zeros(2), 1, 2) end, "'blua.transpose'")
    refuses(function() return blua.exp(a, 1) end, "blua.exp: (t) expected, got 1 more argument")
    refuses(function() return blua.add(a, 1, a, 2) end, "blua.add: (t, u | t, a | t, a, u) expected, got 1 more argument")
    local closed = blua.zeros(2)
    getmetatable(closed).__close(closed)
    refuses(function() return blua.exp(closed) end, "tensor was closed")
    refuses(function() return blua.sum(closed) end, "tensor was closed")
    refuses(function() return blua.t(closed) end, "tensor was closed")
  end)

  it("take Torch7's numbers around the summand for the sums with products", function()
    local m, a = blua.ones(2, 2), blua.tensor{{1, 2}, {3, 4}}
    local sq = {{7, 10}, {15, 22}}
    local function values(beta, alpha)
      return blua.tensor{{beta + alpha * sq[1][1], beta + alpha * sq[1][2]}, {beta + alpha * sq[2][1], beta + alpha * sq[2][2]}}
    end
    assert.is_true(blua.addmm(m, a, a):equal(values(1, 1)))
    assert.is_true(blua.addmm(2, m, a, a):equal(values(2, 1)))     -- a number before M is beta
    assert.is_true(blua.addmm(m, 3, a, a):equal(values(1, 3)))     -- one after it is alpha
    assert.is_true(blua.addmm(2, m, 3, a, a):equal(values(2, 3)))
    assert.is_true(m:equal(blua.ones(2, 2)))
    local y = blua.tensor{1, 1}
    assert.is_true(blua.addmv(0.5, y, 2, a, blua.tensor{1, 1}):equal(blua.tensor{0.5 + 6, 0.5 + 14}))
    assert.is_true(blua.addr(0, blua.zeros(2, 2):fill(0 / 0), blua.tensor{1, 2}, blua.tensor{3, 4}):equal(blua.tensor{{3, 4}, {6, 8}}))
    local c = blua.ones(2, 1, 1)
    local ba, bb = blua.tensor{{{1, 2}}, {{3, 4}}}, blua.tensor{{{1}, {1}}, {{2}, {0}}}
    assert.is_true(blua.baddbmm(-1, c, 2, ba, bb):equal(blua.tensor{{{-1 + 6}}, {{-1 + 12}}}))
    assert.is_true(blua.addbmm(10, blua.ones(1, 1), ba, bb):equal(blua.tensor{{10 + 3 + 6}}))
    refuses(function() return blua.addmm(m, m, a, a) end,
      "blua.addmm: ([beta,] M, [alpha,] a, b) expected, got (tensor, tensor, tensor, tensor); Torch7's form with a result tensor first is not taken")
    refuses(function() return blua.addmm(1, 2, m, a, a) end, "blua.addmm: ([beta,] M, [alpha,] a, b) expected, got (number, number, tensor, tensor, tensor)")
    refuses(function() return blua.addmv(y, a, y, y) end, "blua.addmv: ([beta,] y, [alpha,] m, x) expected, got (tensor, tensor, tensor, tensor)")
    refuses(function() return blua.addmm(m, blua.zeros(3, 3), a) end, "size mismatch in 'blua.addmm': 3x3 * 2x2")
    refuses(function() return blua.addcmul(m, 2, a, blua.zeros(3)) end, "size mismatch in 'blua.addcmul'")
  end)

  it("keep blua's own meaning where a Torch7 name is taken", function()
    assert.equal("table", type(blua.dist)) -- the distributed-runs module, not torch.dist
    assert.equal("function", type(blua.load))
    -- already module functions with Torch7's meaning
    for _, name in ipairs{"mv", "bmm", "diag", "cat", "range", "linspace", "logspace", "eye"} do
      assert.equal("function", type(blua[name]))
    end
  end)

  it("give views' values as copies: writing the result leaves the argument", function()
    local m = blua.tensor{{1, 2}, {3, 4}}
    local t = blua.t(m)
    t:fill(0)
    assert.equal(2, m:get(1, 2))
    local s = blua.squeeze(blua.tensor{{5, 6}})
    assert.equal(1, s:dim())
    assert.equal(6, s:get(2))
  end)
end)
