-- Linear operators through the binding (blua.op): adjoint identity, finite-difference
-- parameter gradients, the norm against the explicit matrix, dense against the MLP kernels,
-- chains, and the errors that name the operator.
local blua = require "blua"

local function params_of(op, with_bias)
  local p = {}
  for i, s in ipairs(op:paramShapes()) do
    if s.bias and not with_bias then p[i] = false else p[i] = blua.randn(s[1], s[2]) end
  end
  return p
end

local function close(a, b, tol) return math.abs(a - b) <= tol * (1 + math.abs(a) + math.abs(b)) end

local function check_adjoint(op, n)
  local p = params_of(op, false)
  local x, r = blua.randn(n, op:inSize()), blua.randn(n, op:outSize())
  local lhs, rhs = op:forward(x, p):dot(r), x:dot(op:adjoint(r, p))
  assert.is_true(close(lhs, rhs, 1e-5), string.format("%s: %.9g vs %.9g", tostring(op), lhs, rhs))
end

local function check_wgrad(op, n)
  local p = params_of(op, true)
  local x, r = blua.randn(n, op:inSize()), blua.randn(n, op:outSize())
  local grads = {}
  for i, t in ipairs(p) do grads[i] = t:clone():fill(5) end
  op:wgrad(x, r, p, grads)
  local eps = 1e-2
  for i, t in ipairs(p) do
    local saved, E = t:clone(), blua.randn(t:size())
    t:copy(saved):add(eps, E)
    local fp = op:forward(x, p):dot(r)
    t:copy(saved):add(-eps, E)
    local fm = op:forward(x, p):dot(r)
    t:copy(saved)
    local fd, an = (fp - fm) / (2 * eps), grads[i]:dot(E)
    assert.is_true(close(fd, an, 2e-3), string.format("%s param %d: fd %.9g vs %.9g", tostring(op), i, fd, an))
  end
end

-- ‖A‖₂ from the explicit matrix (its rows are A e_j) by many steps of power iteration.
local function explicit_norm(op, p)
  local lin = {}
  for i, s in ipairs(op:paramShapes()) do lin[i] = not s.bias and p[i] or false end
  local M = op:forward(blua.eye(op:inSize()), lin)
  return blua.spectralNorm(M, 2000)
end

describe("blua.op", function()
  before_each(function() blua.manualSeed(7) end)

  it("describes its operators and their shapes", function()
    local c = blua.op.conv2d{cin = 1, h = 28, w = 28, cout = 8, k = 5, padding = 2}
    assert.equal("conv2d 1x28x28 -> 8x28x28 (5x5, stride 1, padding 2)", tostring(c))
    assert.same({8, 28, 28}, {c:outShape()})
    assert.equal(784, c:inSize())
    assert.same({{8, 25}, {1, 8, bias = true}}, c:paramShapes())
    local pool = blua.op.avgpool2d{c = 8, h = 28, w = 28, k = 2}
    assert.same({8, 14, 14}, {pool:outShape()})
    assert.equal(0, pool:nparams())
    assert.equal("reshape", blua.op.reshape(784, {1, 28, 28}):kind())
    assert.is_true(blua.op.isOp(c))
    assert.is_false(blua.op.isOp(blua.zeros(2)))
  end)

  it("satisfies the adjoint identity on odd shapes, strides and paddings", function()
    local specs = {
      {cin = 1, h = 7, w = 6, cout = 3, k = 3, stride = 2, padding = 1},
      {cin = 3, h = 9, w = 7, cout = 4, kh = 5, kw = 3, stride = 2, padding = 2},
      {cin = 2, h = 5, w = 5, cout = 2, k = 3},
      {cin = 4, h = 6, w = 11, cout = 2, kh = 3, kw = 5, stride = 3, padding = 2},
    }
    for _, s in ipairs(specs) do check_adjoint(blua.op.conv2d(s), 3) end
    check_adjoint(blua.op.avgpool2d{c = 2, h = 7, w = 9, k = 3, stride = 2}, 3)
    check_adjoint(blua.op.dense(13, 5), 4)
    check_adjoint(blua.op.reshape({4, 3, 3}, 36), 2)
  end)

  it("gives parameter gradients that match finite differences", function()
    check_wgrad(blua.op.conv2d{cin = 3, h = 9, w = 7, cout = 4, kh = 5, kw = 3, stride = 2, padding = 2}, 3)
    check_wgrad(blua.op.conv2d{cin = 1, h = 8, w = 8, cout = 2, k = 3, padding = 1}, 2)
    check_wgrad(blua.op.dense(9, 4), 5)
  end)

  it("accumulates gradients with alpha and beta", function()
    local op = blua.op.conv2d{cin = 2, h = 6, w = 6, cout = 3, k = 3}
    local p = params_of(op, true)
    local x, r = blua.randn(4, op:inSize()), blua.randn(4, op:outSize())
    local g1 = {blua.zeros(3, 18), blua.zeros(1, 3)}
    op:wgrad(x, r, p, g1)
    local g2 = {g1[1]:clone(), g1[2]:clone()}
    op:wgrad(x, r, p, g2, 0.5, 1)
    for i = 1, 2 do assert.is_true((g2[i] - g1[i] * 1.5):norm() < 1e-5 * g1[i]:norm()) end
  end)

  it("leaves the thread count as it was (wgrad runs its product on one BLAS thread)", function()
    local before = blua.getNumThreads()
    blua.setNumThreads(2)
    local op = blua.op.conv2d{cin = 2, h = 9, w = 9, cout = 3, k = 3, padding = 1}
    check_wgrad(op, 5)
    assert.equal(2, blua.getNumThreads())
    blua.setNumThreads(before)
  end)

  it("estimates the norm against the explicit matrix, warm-started", function()
    local ops = {
      blua.op.conv2d{cin = 2, h = 6, w = 5, cout = 3, k = 3, stride = 2, padding = 1},
      blua.op.avgpool2d{c = 2, h = 6, w = 6, k = 3, stride = 1},
    }
    for _, op in ipairs(ops) do
      local p = params_of(op, true)
      local v = blua.zeros(1, op:outSize())
      local est, ref = op:norm(p, 300, v), explicit_norm(op, p)
      assert.is_true(close(est, ref, 2e-3), string.format("%s: %.7g vs %.7g", tostring(op), est, ref))
      assert.is_true(close(op:norm(p, 2, v), est, 1e-3))
    end
    local pool = blua.op.avgpool2d{c = 3, h = 8, w = 8, k = 2}
    assert.is_true(math.abs(pool:norm(nil, 10) - 0.5) < 1e-6)
  end)

  it("matches the MLP kernels bit for bit as dense", function()
    local op = blua.op.dense(20, 7)
    local W, b = blua.randn(20, 7), blua.randn(1, 7)
    local x, r = blua.randn(33, 20), blua.randn(33, 7)
    assert.same(blua._affine(blua.zeros(33, 7), x, W, b):totable(), op:forward(x, {W, b}):totable())
    assert.same(blua.zeros(33, 20):addmm(0, 0.3, r, W:t()):totable(), op:adjoint(r, {W, b}, nil, 0.3):totable())
    local gW, gb = blua.zeros(20, 7), blua.zeros(1, 7)
    op:wgrad(x, r, {W, b}, {gW, gb}, 0.1)
    assert.same(blua.zeros(20, 7):addmm(0, 0.1, x:t(), r):totable(), gW:totable())
    local v1, v2 = blua.zeros(7), blua.zeros(7)
    assert.equal(blua.spectralNorm(W, 8, v2), op:norm({W, b}, 8, v1))
    assert.same(v2:totable(), v1:totable())
  end)

  it("composes operators into one block", function()
    local conv1 = blua.op.conv2d{cin = 1, h = 8, w = 8, cout = 3, k = 3, padding = 1}
    local pool = blua.op.avgpool2d{c = 3, h = 8, w = 8, k = 2}
    local conv2 = blua.op.conv2d{cin = 3, h = 4, w = 4, cout = 2, k = 3, padding = 1}
    local flat = blua.op.reshape({2, 4, 4}, 32)
    local block = blua.op.chain{blua.op.reshape(64, {1, 8, 8}), conv1, pool, conv2, flat, blua.op.dense(32, 5)}
    assert.equal(6, block:nparams())
    assert.same({5, 1, 1}, {block:outShape()})
    check_adjoint(block, 3)
    check_wgrad(block, 3)
    -- forward is the members' in turn
    local p = params_of(block, true)
    local x = blua.randn(2, 64)
    local y = conv2:forward(pool:forward(conv1:forward(x, {p[1], p[2]}), nil), {p[3], p[4]})
    local y2 = blua.op.chain{conv1, pool, conv2}:forward(x, {p[1], p[2], p[3], p[4]})
    assert.same(y:totable(), y2:totable())
    -- the members may be collected; the chain holds them
    local c = blua.op.chain{blua.op.avgpool2d{c = 1, h = 4, w = 4, k = 2}, blua.op.reshape({1, 2, 2}, 4),
      blua.op.dense(4, 2)}
    collectgarbage()
    check_adjoint(c, 2)
  end)

  it("takes N-d batches whose first dimension is the sample", function()
    local op = blua.op.conv2d{cin = 2, h = 5, w = 4, cout = 3, k = 3, padding = 1}
    local p = params_of(op, true)
    local x = blua.randn(6, 2, 5, 4)
    local y4 = blua.zeros(6, 3, 5, 4)
    op:forward(x, p, y4)
    local y2 = op:forward(x:view(6, 40), p)
    assert.same(y2:totable(), y4:view(6, 60):totable())
    -- a sample-narrowed view of an N-d batch is fine; a permuted one is refused
    local xs = x:narrow(1, 2, 3)
    assert.same(op:forward(xs:contiguous():view(3, 40), p):totable(), op:forward(xs, p):totable())
    local ok, msg = pcall(op.forward, op, x:transpose(3, 4), p)
    assert.is_false(ok)
    assert.truthy(msg:find("contiguous rows", 1, true), msg)
  end)

  it("refuses bad shapes with errors naming the operator", function()
    local function fails(pattern, f, ...)
      local ok, msg = pcall(f, ...)
      assert.is_false(ok)
      assert.truthy(tostring(msg):find(pattern, 1, true), tostring(msg))
    end
    fails("kernel larger than padded input in 'conv2d'", blua.op.conv2d, {cin = 1, h = 3, w = 3, cout = 2, k = 5})
    fails("bad stride in 'conv2d': must be a positive integer, got 1.5", blua.op.conv2d,
      {cin = 1, h = 8, w = 8, cout = 2, k = 3, stride = 1.5})
    fails("bad stride in 'conv2d'", blua.op.conv2d, {cin = 1, h = 8, w = 8, cout = 2, k = 3, stride = 0})
    fails("bad padding in 'conv2d'", blua.op.conv2d, {cin = 1, h = 8, w = 8, cout = 2, k = 3, padding = -1})
    fails("missing field in 'conv2d': cin", blua.op.conv2d, {h = 8, w = 8, cout = 2, k = 3})
    fails("bad stride in 'conv2d'", blua.op.conv2d, {cin = 1, h = 8, w = 8, cout = 2, k = 3, stride = 0 / 0})
    fails("bad h in 'conv2d'", blua.op.conv2d, {cin = 1, h = math.maxinteger, w = 8, cout = 2, k = 3})
    fails("bad shape in 'conv2d'", blua.op.conv2d, {cin = 2 ^ 20, h = 2 ^ 20, w = 2 ^ 20, cout = 2, k = 1})
    fails("bad shape in 'conv2d'", blua.op.conv2d, {cin = 2 ^ 14, h = 2 ^ 8, w = 2 ^ 8, cout = 2 ^ 20, k = 1})
    fails("too large in 'conv2d'", blua.op.conv2d, {cin = 2 ^ 20, h = 1, w = 1, cout = 1, k = 64, padding = 32})
    fails("bad shape in 'dense'", blua.op.dense, 0, 3)
    fails("too large", blua.op.dense, 2 ^ 30, 2 ^ 30)
    fails("bad shape in 'reshape'", blua.op.reshape, {2, -1}, 2)
    fails("kernel larger than input in 'avgpool2d'", blua.op.avgpool2d, {c = 1, h = 3, w = 3, k = 4})
    fails("size mismatch in 'reshape'", blua.op.reshape, {4, 3, 3}, 35)
    local a = blua.op.conv2d{cin = 1, h = 8, w = 8, cout = 4, k = 3, padding = 1}
    local b = blua.op.conv2d{cin = 3, h = 8, w = 8, cout = 2, k = 3, padding = 1}
    fails("shape mismatch in 'chain'", blua.op.chain, {a, b})
    fails("4x8x8", blua.op.chain, {a, b})
    local p = params_of(a, true)
    fails("size mismatch in 'forward': conv2d 1x8x8 -> 4x8x8", a.forward, a, blua.randn(2, 65), p)
    fails("3x9", a.forward, a, blua.randn(2, 64), {blua.randn(3, 9), p[2]})
    fails("bad parameters in 'forward'", a.forward, a, blua.randn(2, 64), {p[1], p[2], p[1]})
    fails("not a live blua.Tensor", a.forward, a, blua.randn(2, 64), {p[1], 3})
    fails("size mismatch in 'adjoint'", a.adjoint, a, blua.randn(2, 64), p)
    fails("size mismatch in 'wgrad'", a.wgrad, a, blua.randn(2, 64), blua.randn(3, 256), p, {blua.zeros(4, 9)})
    fails("start vector", a.norm, a, p, 3, blua.zeros(5))
    local closed = blua.randn(2, 64)
    getmetatable(closed).__close(closed)
    fails("closed", a.forward, a, closed, p)
  end)
end)
