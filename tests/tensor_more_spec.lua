-- Torch7 tensor methods beyond the basics: the in-place random fills (uniform, normal,
-- bernoulli) and the rounding maps (round, ceil). Exact values, views against contiguous
-- copies, empty tensors, NaN, refused arguments, reproducibility and draw statistics.
local blua = require "blua"

local function nan() return 0 / 0 end

-- A 3x4 tensor's transpose, and a narrowed view of a wider tensor, both 4x3 / 3x2 views.
local function views(values)
  local base = blua.tensor(values)
  local wide = blua.zeros(base:size(1), base:size(2) + 3)
  local narrow = wide:narrow(2, 2, base:size(2))
  narrow:copy(base)
  local tr = base:t():contiguous():t() -- same values, transposed strides
  return base, narrow, tr, wide
end

describe("t:round and t:ceil", function()
  it("round halves away from zero, ceil up, in place, returning t", function()
    local t = blua.tensor{1.5, -1.5, 2.5, -2.5, 0.4, -0.6, 7}
    assert.equal(t, t:round())
    assert.same({2, -2, 3, -3, 0, -1, 7}, t:totable())
    local c = blua.tensor{1.5, -1.5, 0.1, -0.9, 3}
    assert.equal(c, c:ceil())
    assert.same({2, -1, 1, 0, 3}, c:totable())
  end)

  it("keeps NaN, infinities and large floats", function()
    local t = blua.tensor{nan(), math.huge, -math.huge, 2 ^ 24 + 2}
    for _, m in ipairs{"round", "ceil"} do
      local v = t:clone()[m](t:clone())
      local got = v:totable()
      assert.is_true(got[1] ~= got[1])
      assert.same({math.huge, -math.huge, 2 ^ 24 + 2}, {got[2], got[3], got[4]})
    end
  end)

  it("gives a view the values of its contiguous copy, the rest untouched", function()
    for _, m in ipairs{"round", "ceil"} do
      local base, narrow, tr, wide = views{{0.5, -0.5, 1.2}, {-2.7, 3.5, 4.49}}
      local want = base:clone()[m](base:clone()):totable()
      assert.same(want, narrow[m](narrow):totable())
      assert.same(want, tr[m](tr):totable())
      assert.same({0, 0}, {wide:get(1, 1), wide:get(2, 5)})
    end
  end)

  it("accepts empty tensors and refuses extra arguments", function()
    assert.equal(0, blua.zeros(0, 3):round():nElement())
    assert.equal(0, blua.zeros(0):ceil():nElement())
    assert.has_error(function() blua.zeros(2):round(1) end, "t:round: () expected, got 1 more argument")
    assert.has_error(function() blua.zeros(2):ceil(0) end, "t:ceil: () expected, got 1 more argument")
  end)
end)

describe("random fills", function()
  after_each(function() blua.setNumThreads(1) end)

  it("fill in place and return t, with Torch's defaults", function()
    blua.manualSeed(5)
    local t = blua.zeros(1000)
    assert.equal(t, t:uniform())
    assert.is_true(t:min() >= 0 and t:max() < 1)
    t:uniform(-3, -2)
    assert.is_true(t:min() >= -3 and t:max() <= -2)
    t:uniform(4, 4)
    assert.same(4, t:min())
    assert.same(4, t:max())
    assert.equal(t, t:bernoulli())
    for _, v in ipairs(t:totable()) do assert.is_true(v == 0 or v == 1) end
    assert.equal(0, t:bernoulli(0):sum())
    assert.equal(1000, t:bernoulli(1):sum())
    assert.equal(t, t:normal(5, 0))
    assert.equal(5, t:min())
    assert.equal(5, t:max())
  end)

  it("are reproducible under blua.manualSeed at one and two threads", function()
    local function draw(threads)
      blua.setNumThreads(threads)
      blua.manualSeed(42)
      local a = blua.zeros(300, 300):uniform(-1, 2)
      local b = blua.zeros(300, 300):normal(1, 2)
      local c = blua.zeros(300, 300):bernoulli(0.25)
      return a, b, c
    end
    local a1, b1, c1 = draw(1)
    local a2, b2, c2 = draw(2)
    assert.equal(0, (a1 - a2):abs():max())
    assert.equal(0, (b1 - b2):abs():max())
    assert.equal(0, (c1 - c2):abs():max())
    blua.manualSeed(43)
    assert.is_true((blua.zeros(300, 300):uniform(-1, 2) - a1):abs():max() > 0)
  end)

  it("draw a view's entries in row-major order, as for a contiguous tensor", function()
    for _, fill in ipairs{{"uniform", 1, 3}, {"normal", 0, 1}, {"bernoulli", 0.5}} do
      local m, args = fill[1], {table.unpack(fill, 2)}
      blua.manualSeed(7)
      local want = blua.zeros(3, 4)
      want[m](want, table.unpack(args))
      blua.manualSeed(7)
      local wide = blua.zeros(3, 6)
      local narrow = wide:narrow(2, 2, 4)
      narrow[m](narrow, table.unpack(args))
      assert.same(want:totable(), narrow:totable())
      assert.same({0, 0, 0}, wide:select(2, 1):totable())
      assert.same({0, 0, 0}, wide:select(2, 6):totable())
      blua.manualSeed(7)
      local tr = blua.zeros(4, 3):t()
      tr[m](tr, table.unpack(args))
      assert.same(want:totable(), tr:totable())
    end
  end)

  it("have the mean and spread of their distribution (100 000 draws)", function()
    blua.manualSeed(11)
    local n = 100000
    local function moments(t)
      local mean = t:mean()
      local var = (t - mean):square():sum() / (n - 1)
      return mean, math.sqrt(var)
    end
    -- within 5 standard errors: the mean's is sd/sqrt(n), the sd's about sd/sqrt(2n)
    local u = blua.zeros(n):uniform(2, 5)
    local mu, su = moments(u)
    local sd = 3 / math.sqrt(12)
    assert.is_true(math.abs(mu - 3.5) < 5 * sd / math.sqrt(n))
    assert.is_true(math.abs(su - sd) < 5 * sd / math.sqrt(2 * n))
    local g = blua.zeros(n):normal(-1, 2)
    local mg, sg = moments(g)
    assert.is_true(math.abs(mg + 1) < 5 * 2 / math.sqrt(n))
    assert.is_true(math.abs(sg - 2) < 5 * 2 / math.sqrt(2 * n))
    local b = blua.zeros(n):bernoulli(0.3)
    assert.is_true(math.abs(b:mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n))
  end)

  it("accept empty tensors", function()
    assert.equal(0, blua.zeros(0, 4):uniform():nElement())
    assert.equal(0, blua.zeros(0):normal():nElement())
    assert.equal(0, blua.zeros(3, 0):bernoulli():nElement())
  end)

  it("refuse bad parameters and extra arguments", function()
    local t = blua.zeros(2)
    assert.has_error(function() t:uniform(2, 1) end, "t:uniform: bounds a > b (2.0 > 1.0)")
    assert.has_error(function() t:uniform(nan(), 1) end)
    assert.has_error(function() t:uniform(0, math.huge) end)
    assert.has_error(function() t:uniform(-1e308, 1e308) end, "t:uniform: b - a overflows (-1e+308, 1e+308)")
    assert.has_error(function() t:uniform(0, 1, 2) end, "t:uniform: ([a, b]) expected, got 1 more argument")
    assert.has_error(function() t:normal(0, -1) end, "t:normal: std must be >= 0, got -1.0")
    assert.has_error(function() t:normal(nan()) end)
    assert.has_error(function() t:normal(0, math.huge) end)
    assert.has_error(function() t:normal(0, 1, 2) end, "t:normal: ([mean, std]) expected, got 1 more argument")
    assert.has_error(function() t:bernoulli(1.5) end, "t:bernoulli: p must be in [0, 1], got 1.5")
    assert.has_error(function() t:bernoulli(-0.1) end)
    assert.has_error(function() t:bernoulli(nan()) end)
    assert.has_error(function() t:bernoulli(math.maxinteger) end)
    assert.has_error(function() t:bernoulli(0.5, 1) end, "t:bernoulli: ([p]) expected, got 1 more argument")
    assert.has_error(function() t:uniform("x") end)
    assert.same({0, 0}, t:totable())
  end)
end)

describe("t:var, t:std and t:prod", function()
  local function close(a, b) return math.abs(a - b) <= 1e-5 * math.max(1, math.abs(b)) end

  it("give exact values over all entries and along a dimension", function()
    local t = blua.tensor{{1, 2, 3, 4}, {2, 4, 6, 8}}
    assert.is_true(close(t:var(), 37.5 / 7)) -- mean 3.75, squared deviations sum to 37.5
    assert.is_true(close(t:std(), math.sqrt(37.5 / 7)))
    assert.equal(9216, t:prod())
    local v = t:var(2)
    assert.same({2, 1}, {v:size(1), v:size(2)})
    assert.is_true(close(v:get(1, 1), 5 / 3) and close(v:get(2, 1), 20 / 3))
    assert.same({{0.5, 2, 4.5, 8}}, t:var(1):totable())
    local sd = t:std(1):totable()[1]
    for j, w in ipairs{0.5, 2, 4.5, 8} do assert.is_true(close(sd[j], math.sqrt(w))) end
    assert.same({{24}, {384}}, t:prod(2):totable())
    assert.same({{2, 8, 18, 32}}, t:prod(1):totable())
  end)

  it("give a view the values of its contiguous copy", function()
    for _, m in ipairs{"var", "std", "prod"} do
      local base, narrow, tr = views{{0.5, -1.5, 1.25}, {-2.75, 3.5, 4}}
      for _, d in ipairs{1, 2} do
        local want = base[m](base, d):totable()
        assert.same(want, narrow[m](narrow, d):totable())
        assert.same(want, tr[m](tr, d):totable())
      end
      assert.equal(base[m](base), narrow[m](narrow))
      assert.equal(base[m](base), tr[m](tr))
      local bt = base:t()
      assert.same(bt:contiguous()[m](bt:contiguous(), 1):totable(), bt[m](bt, 1):totable())
    end
  end)

  it("give NaN for one entry (n - 1 = 0) and for none, prod 1 for none", function()
    local one = blua.tensor{3}
    assert.is_true(one:var() ~= one:var())
    assert.is_true(one:std() ~= one:std())
    local col = blua.tensor{{1, 2, 3}}:var(1):totable()[1]
    for _, x in ipairs(col) do assert.is_true(x ~= x) end
    local e = blua.zeros(0, 3)
    assert.is_true(e:var() ~= e:var())
    assert.equal(1, e:prod())
    assert.same({{1, 1, 1}}, e:prod(1):totable())
    local ev = e:std(1):totable()[1]
    for _, x in ipairs(ev) do assert.is_true(x ~= x) end
    assert.same({0, 1}, {e:var(2):size(1), e:var(2):size(2)})
    local n = blua.tensor{1, nan(), 3}
    assert.is_true(n:var() ~= n:var())
    assert.is_true(n:prod() ~= n:prod())
  end)

  it("refuse a bad dimension and extra arguments", function()
    local t = blua.zeros(2, 3)
    for _, m in ipairs{"var", "std", "prod"} do
      assert.has_error(function() t[m](t, 3) end)
      assert.has_error(function() t[m](t, 0) end)
      assert.has_error(function() t[m](t, math.maxinteger) end)
      assert.has_error(function() t[m](t, nan()) end)
    end
    assert.has_error(function() t:prod(1, true) end, "t:prod: ([dim]) expected, got 1 more argument")
    assert.has_error(function() t:var(1, true, 1) end, "t:var: ([dim [, biased]]) expected, got 1 more argument")
    assert.has_error(function() t:std(nil, false, 1) end, "t:std: ([dim [, biased]]) expected, got 1 more argument")
  end)

  it("divide by n with Torch7's biased flag, by n - 1 without it", function()
    local t = blua.tensor{{1, 2, 3, 4}, {2, 4, 6, 8}}
    assert.is_true(close(t:var(nil, true), 37.5 / 8))
    assert.is_true(close(t:std(nil, true), math.sqrt(37.5 / 8)))
    assert.is_true(close(t:var(nil, false), 37.5 / 7))
    local v = t:var(2, true)
    assert.is_true(close(v:get(1, 1), 5 / 4) and close(v:get(2, 1), 20 / 4))
    assert.same({{0.25, 1, 2.25, 4}}, t:var(1, true):totable())
    assert.same({{0.5, 1, 1.5, 2}}, t:std(1, true):totable())
    assert.same(t:var(2):totable(), t:var(2, false):totable())
    -- one entry: 0 biased (0/1), NaN unbiased (0/0); none: NaN either way
    assert.equal(0, blua.tensor{3}:var(nil, true))
    assert.same({{0, 0, 0}}, blua.tensor{{1, 2, 3}}:std(1, true):totable())
    local e = blua.zeros(0, 3)
    assert.is_true(e:var(nil, true) ~= e:var(nil, true))
    -- a transposed view gives its contiguous copy's values
    local tr = t:t()
    assert.same(tr:contiguous():var(1, true):totable(), tr:var(1, true):totable())
  end)
end)

describe("t:cumsum", function()
  it("gives running sums along d as a new tensor", function()
    local t = blua.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.same({{1, 3, 6}, {4, 9, 15}}, t:cumsum(2):totable())
    assert.same({{1, 2, 3}, {5, 7, 9}}, t:cumsum(1):totable())
    assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
    -- the running sum stays in double: 1 + 2^24 rounds to 2^24 in float, the next + 1 does not
    assert.same({1, 2 ^ 24, 2 + 2 ^ 24}, blua.tensor{1, 2 ^ 24, 1}:cumsum(1):totable())
  end)

  it("gives a view the values of its contiguous copy", function()
    local base, narrow, tr = views{{0.5, -1.5, 1.25}, {-2.75, 3.5, 4}}
    for _, d in ipairs{1, 2} do
      local want = base:cumsum(d):totable()
      assert.same(want, narrow:cumsum(d):totable())
      assert.same(want, tr:cumsum(d):totable())
    end
  end)

  it("accepts empty tensors, carries NaN, refuses bad dimensions and extra arguments", function()
    assert.same({0, 3}, {blua.zeros(0, 3):cumsum(1):size(1), blua.zeros(0, 3):cumsum(2):size(2)})
    local n = blua.tensor{1, nan(), 3}:cumsum(1):totable()
    assert.equal(1, n[1])
    assert.is_true(n[2] ~= n[2] and n[3] ~= n[3])
    local t = blua.zeros(2, 3)
    assert.has_error(function() t:cumsum() end)
    assert.has_error(function() t:cumsum(3) end)
    assert.has_error(function() t:cumsum(math.maxinteger) end)
    assert.has_error(function() t:cumsum(nan()) end)
    assert.has_error(function() t:cumsum(1, 2) end, "t:cumsum: (dim) expected, got 1 more argument")
  end)
end)

describe("t:sort and t:topk", function()
  it("sort along the last dimension by default, stable, NaN last", function()
    local t = blua.tensor{{3, 1, 2, 1}, {0, -1, 5, 4}}
    local v, i = t:sort()
    assert.same({{1, 1, 2, 3}, {-1, 0, 4, 5}}, v:totable())
    assert.same({{2, 4, 3, 1}, {2, 1, 4, 3}}, i:totable())
    v, i = t:sort(2, true)
    assert.same({{3, 2, 1, 1}, {5, 4, 0, -1}}, v:totable())
    assert.same({{1, 3, 2, 4}, {3, 4, 1, 2}}, i:totable())
    v, i = t:sort(1)
    assert.same({{0, -1, 2, 1}, {3, 1, 5, 4}}, v:totable())
    assert.same({{2, 2, 1, 1}, {1, 1, 2, 2}}, i:totable())
    for _, desc in ipairs{false, true} do
      local nv, ni = blua.tensor{2, nan(), 1}:sort(1, desc)
      local got = nv:totable()
      assert.is_true(got[3] ~= got[3])
      assert.equal(2, ni:get(3))
    end
  end)

  it("topk gives the k smallest by default, the k largest on request", function()
    local t = blua.tensor{{4, 1, 3, 2}, {8, 6, 7, 5}}
    local v, i = t:topk(2)
    assert.same({{1, 2}, {5, 6}}, v:totable())
    assert.same({{2, 4}, {4, 2}}, i:totable())
    v, i = t:topk(1, 2, true)
    assert.same({{4}, {8}}, v:totable())
    assert.same({{1}, {1}}, i:totable())
    v, i = t:topk(1, 1, true)
    assert.same({{8, 6, 7, 5}}, v:totable())
    assert.same({{2, 2, 2, 2}}, i:totable())
    assert.same({2, 0}, {t:topk(0):size(1), t:topk(0):size(2)})
  end)

  it("give a view the values of its contiguous copy", function()
    local base, narrow, tr = views{{0.5, -1.5, 1.25}, {-2.75, 3.5, 4}}
    for _, d in ipairs{1, 2} do
      for _, desc in ipairs{false, true} do
        local wv, wi = base:sort(d, desc)
        for _, view in ipairs{narrow, tr} do
          local v, i = view:sort(d, desc)
          assert.same(wv:totable(), v:totable())
          assert.same(wi:totable(), i:totable())
          local tv, ti = view:topk(1, d, desc)
          local bv, bi = base:topk(1, d, desc)
          assert.same(bv:totable(), tv:totable())
          assert.same(bi:totable(), ti:totable())
        end
      end
    end
  end)

  it("accept empty tensors and refuse bad arguments", function()
    local v, i = blua.zeros(0, 3):sort(1)
    assert.same({0, 3}, {v:size(1), i:size(2)})
    v = blua.zeros(2, 0):topk(0)
    assert.same({2, 0}, {v:size(1), v:size(2)})
    local t = blua.zeros(2, 3)
    assert.has_error(function() t:sort(3) end)
    assert.has_error(function() t:sort(math.maxinteger) end)
    assert.has_error(function() t:sort(nan()) end)
    assert.has_error(function() t:topk(4) end)
    assert.has_error(function() t:topk(-1) end)
    assert.has_error(function() t:topk(math.maxinteger) end)
    assert.has_error(function() t:topk(nan()) end)
    assert.has_error(function() t:topk(1.5) end)
    assert.has_error(function() t:topk() end)
    assert.has_error(function() t:topk(1, 3) end)
    assert.has_error(function() t:sort(1, true, 1) end, "t:sort: ([d [, descending]]) expected, got 1 more argument")
    assert.has_error(function() t:topk(1, 1, true, true) end,
      "t:topk: (k [, d [, largest]]) expected, got 1 more argument")
  end)

  it("permutes dimensions as a view (t:permute)", function()
    local t = blua.zeros(2, 3, 4)
    for i = 1, 2 do for j = 1, 3 do for k = 1, 4 do t:set(i, j, k, 100 * i + 10 * j + k) end end end
    local p = t:permute(2, 3, 1)
    assert.are.same({3, 4, 2}, {p:size()})
    for i = 1, 2 do for j = 1, 3 do for k = 1, 4 do assert.are.equal(t:get(i, j, k), p:get(j, k, i)) end end end
    -- a view: writes go through, and kernels walk its strides (sum along a dimension, a copy)
    p:set(1, 1, 2, -5)
    assert.are.equal(-5, t:get(2, 1, 1))
    assert.are.same(p:contiguous():sum(3):totable(), p:sum(3):totable())
    assert.are.equal(t:sum(), p:sum())
    -- the identity and a transpose are permutations too; 2-D permute(2, 1) is t()
    assert.are.same(t:totable(), t:permute(1, 2, 3):totable())
    local m = blua.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.are.same(m:t():totable(), m:permute(2, 1):totable())
    -- one dimension per dimension, each once
    assert.has_error(function() t:permute(1, 1, 2) end,
      "bad permutation in 'permute': dimension 1 given twice for a 3-D tensor of size 2x3x4")
    assert.has_error(function() t:permute(1, 2) end)
    assert.has_error(function() t:permute(1, 2, 4) end)
    assert.has_error(function() t:permute(1, 2, 0 / 0) end)
    assert.has_error(function() t:permute(1, 2, math.maxinteger) end)
    assert.has_error(function() t:permute(1, 2, 3, 1) end, "t:permute: (one dimension per dimension of t) expected, got 1 more argument")
  end)
end)
