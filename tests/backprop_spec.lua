-- The C back-propagation kernel (blua._backprop): gradients and loss equal the chain rule
-- written with tensor operations, for any split of the rows into blocks; a given split gives
-- the same bits with 1 and 2 threads; bad arguments are errors.
local blua = require "blua"

-- Gradients of scale × the summed loss by tensor operations, and the loss.
local function reference(net, x, y, scale)
  local L = net:nLayers()
  local Z, X, D, grads = {}, {[0] = x}, {}, {}
  for l = 1, L do
    Z[l] = X[l - 1]:mm(net.W[l]):addRow(net.b[l])
    if l < L then X[l] = net:activation(l):forward(Z[l]) end
  end
  local out = net:activation(L)
  local loss = out:bregman(y, Z[L])
  D[L] = out:bregman_grad(y, Z[L])
  for l = L, 1, -1 do
    grads[2 * l - 1] = X[l - 1]:t():mm(D[l]):mul(scale)
    grads[2 * l] = D[l]:sumRows():mul(scale)
    if l > 1 then D[l - 1] = D[l]:mm(net.W[l]:t()):cmul(net:activation(l - 1):derivative(Z[l - 1])) end
  end
  return grads, loss
end

local function run(net, x, y, parts, scale)
  local L, n = net:nLayers(), x:size(1)
  local Z, X, D, G, acts, grads = {}, {}, {}, {}, {}, {}
  for l = 1, L do
    local w = net.sizes[l + 1]
    Z[l], D[l], G[l] = blua.zeros(n, w), blua.zeros(n, w), blua.zeros(n, w)
    if l < L then X[l] = blua.zeros(n, w) end
    acts[l] = net:activation(l)
    grads[2 * l - 1], grads[2 * l] = blua.zeros(net.W[l]:size()), blua.zeros(net.b[l]:size())
  end
  local loss = blua._backprop(acts, net.W, net.b, x, y, Z, X, D, G, scale, parts, grads)
  return grads, loss
end

local function setup(act)
  blua.manualSeed(4)
  local net = blua.nn.mlp{20, 16, 12, 5, activation = act}
  local x = blua.randn(70, 20)
  local y = blua.data.onehot(blua.rand(70, 1):mul(5):floor():add(1), 5)
  return net, x, y
end

describe("blua._backprop", function()
  for _, act in ipairs{"relu", "tanh", "sigmoid"} do
    it(act .. ": matches the chain rule for 1, 2 and 3 blocks of rows", function()
      local net, x, y = setup(act)
      local want, want_loss = reference(net, x, y, 1 / 70)
      for _, parts in ipairs{1, 2, 3} do
        local got, loss = run(net, x, y, parts, 1 / 70)
        assert.is_true(math.abs(loss - want_loss) <= 1e-5 * math.abs(want_loss))
        for i = 1, #want do
          assert.is_true((got[i] - want[i]):abs():max() <= 1e-5, string.format("parts %d, gradient %d", parts, i))
        end
      end
    end)
  end

  it("gives the same bits with 1 and 2 threads", function()
    local net, x, y = setup("relu")
    local before = blua.getNumThreads()
    blua.setNumThreads(1)
    local a, la = run(net, x, y, 2, 1 / 70)
    blua.setNumThreads(2)
    local b, lb = run(net, x, y, 2, 1 / 70)
    blua.setNumThreads(before)
    assert.are.equal(la, lb)
    for i = 1, #a do assert.are.equal(0, (a[i] - b[i]):abs():max()) end
  end)

  -- rows 1..count of x as their own batch (copies, as a rank of a data-parallel run holds them)
  local function rows_of(t, first, count) return t:narrow(1, first, count):clone() end

  for _, shape in ipairs{{20, 16, 12, 5, rows = 71}, {40, 600, 600, 5, rows = 200}} do
    it(string.format("sums the shares' gradients in share order, bit for bit (%d wide)", shape[2]), function()
      -- Each share's products run on one BLAS thread, side by side or one after another, so
      -- two shares give the bits of each share run alone on one thread (a rank of a
      -- data-parallel run with one thread), with any thread count. (The wide network's
      -- products are big enough that a lone share on two threads would split them.)
      blua.manualSeed(8)
      local net = blua.nn.mlp{activation = "relu", table.unpack(shape)}
      local n = shape.rows
      local x = blua.randn(n, shape[1])
      local y = blua.data.onehot(blua.rand(n, 1):mul(shape[#shape]):floor():add(1), shape[#shape])
      local before = blua.getNumThreads()
      blua.setNumThreads(1)
      local half = (n + 1) // 2  -- the first share takes the extra row
      local a, la = run(net, rows_of(x, 1, half), rows_of(y, 1, half), 1, 1 / n)
      local b, lb = run(net, rows_of(x, half + 1, n - half), rows_of(y, half + 1, n - half), 1, 1 / n)
      for _, threads in ipairs{1, 2} do
        blua.setNumThreads(threads)
        local both, loss = run(net, x, y, 2, 1 / n)
        assert.is_true(math.abs(loss - (la + lb)) <= 1e-6 * math.abs(loss))
        for i = 1, #a do assert.are.equal(0, (a[i] + b[i] - both[i]):abs():max()) end
      end
      blua.setNumThreads(before)
    end)
  end

  it("refuses activations defined in Lua and lists of the wrong things", function()
    local net, x, y = setup("relu")
    local custom = blua.activation.define{name = "ramp_bp", forward = function(z) return z:clamp(0, 1) end}
    local acts = {custom, net:activation(2), net:activation(3)}
    local n = x:size(1)
    local function zeros(w) return blua.zeros(n, w) end
    local Z, X, D, G = {zeros(16), zeros(12), zeros(5)}, {zeros(16), zeros(12)}, {zeros(16), zeros(12), zeros(5)},
      {zeros(16), zeros(12), zeros(5)}
    local grads = {}
    for l = 1, 3 do grads[2 * l - 1], grads[2 * l] = blua.zeros(net.W[l]:size()), blua.zeros(net.b[l]:size()) end
    assert.has_error(function() blua._backprop(acts, net.W, net.b, x, y, Z, X, D, G, 1, 2, grads) end)
    acts[1] = net:activation(1)
    local bad = {Z[1], "no", Z[3]}
    assert.has_error(function() blua._backprop(acts, net.W, net.b, x, y, bad, X, D, G, 1, 2, grads) end,
      "bad argument #6 to 'backprop' (Z[2] must be a live tensor)")
    assert.has_error(function() blua._backprop(acts, net.W, net.b, x, y, Z, X, D, G, 1, 0, grads) end)
    -- scratch that overlaps other scratch or the inputs: an error, not wrong numbers
    assert.has_error(function() blua._backprop(acts, net.W, net.b, x, y, {Z[1], Z[2], Z[3]}, X, {D[1], Z[2], D[3]}, G, 1, 2, grads) end,
      "aliasing in 'backprop': Z[2] and D[2] share memory")
    local both = zeros(32) -- (Z[1] and X[1] as two halves of one tensor: apart, accepted)
    blua._backprop(acts, net.W, net.b, x, y, {both:narrow(2, 1, 16), Z[2], Z[3]}, {both:narrow(2, 17, 16), X[2]}, D, G, 1, 2, grads)
    assert.has_error(function()
      blua._backprop(acts, net.W, net.b, x, y, {both:narrow(2, 1, 16), Z[2], Z[3]}, {both:narrow(2, 16, 16), X[2]}, D, G, 1, 2, grads)
    end, "aliasing in 'backprop': Z[1] and X[1] share memory")
    assert.has_error(function()
      blua._backprop(acts, net.W, net.b, x, y, Z, X, {D[1], D[2], y}, G, 1, 2, grads)
    end, "aliasing in 'backprop': y and D[3] share memory")
  end)
end)
