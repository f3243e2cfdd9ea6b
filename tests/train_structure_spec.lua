-- The trainer's structure: the on_gradients hook between gradients and step, the optimiser
-- state kept per block (and the flat layout of older checkpoints), and determinism of runs.
local blua = require "blua"

local function data(n, seed)
  blua.manualSeed(seed)
  local x = blua.randn(n, 6)
  local y = blua.zeros(n, 1)
  for i = 1, n do y:set(i, 1, (x:get(i, 1) + x:get(i, 2) > 0) and 2 or 1) end
  return {x = x, y = y, n = n}
end

local function net(seed)
  blua.manualSeed(seed)
  return blua.nn.mlp{6, 8, 8, 2}
end

local function same_params(a, b)
  local pa, pb = a:parameters(), b:parameters()
  for i = 1, #pa do
    if pa[i]:clone():add(-1, pb[i]):abs():max() ~= 0 then return false end
  end
  return true
end

describe("trainer structure", function()
  local d = data(64, 4)

  for _, method in ipairs{"bregman", "lifted", "backprop"} do
    it(method .. ": the same seed gives bit-identical weights and history", function()
      local a, b = net(1), net(1)
      local ha = blua.train[method](a, d, {epochs = 2, batch = 16, verbose = false})
      local hb = blua.train[method](b, d, {epochs = 2, batch = 16, verbose = false})
      assert.is_true(same_params(a, b))
      for e = 1, 2 do
        assert.equal(ha[e].loss, hb[e].loss)
        assert.equal(ha[e].train_acc, hb[e].train_acc)
      end
    end)

    it(method .. ": on_gradients sees every step's gradients before the optimiser", function()
      local a, b = net(2), net(2)
      local calls = 0
      blua.train[method](a, d, {epochs = 1, batch = 16, verbose = false, optimizer = "sgd", momentum = 0,
        on_gradients = function(grads, params)
          calls = calls + 1
          assert.equal(#a:parameters(), #grads)
          assert.equal(a:parameters()[1], params[1])
          for _, g in ipairs(grads) do g:zero() end -- a zero gradient: SGD must leave W alone
        end})
      assert.equal(4, calls)
      assert.is_true(same_params(a, b))
      -- a hook that only reads changes nothing
      local c, e = net(3), net(3)
      blua.train[method](c, d, {epochs = 1, batch = 16, verbose = false, on_gradients = function() end})
      blua.train[method](e, d, {epochs = 1, batch = 16, verbose = false})
      assert.is_true(same_params(c, e))
    end)
  end

  it("keeps Adam's state per block, and resumes from the flat state of older checkpoints", function()
    local a = net(5)
    local state = {}
    blua.train.bregman(a, d, {epochs = 1, batch = 16, verbose = false, optim_state = state})
    assert.equal(3, #state)
    assert.equal(4, state[1].t)
    assert.equal(2, #state[1].m)
    -- the layout before per-block state: one table over W1, b1, W2, ...
    local flat = {t = state[1].t, m = {}, v = {}}
    for k = 1, 3 do
      for j = 1, 2 do
        flat.m[#flat.m + 1] = state[k].m[j]:clone()
        flat.v[#flat.v + 1] = state[k].v[j]:clone()
      end
    end
    -- the power-iteration warm starts travel in optim_state too (same in both runs)
    flat.power = {}
    for l, v in pairs(state.power) do flat.power[l] = v:clone() end
    local b = a:clone()
    blua.train.bregman(a, d, {epochs = 2, start_epoch = 2, batch = 16, verbose = false, optim_state = state})
    blua.train.bregman(b, d, {epochs = 2, start_epoch = 2, batch = 16, verbose = false, optim_state = flat})
    assert.is_nil(flat.m)
    assert.equal(8, flat[1].t)
    assert.is_true(same_params(a, b))
  end)

  it("a user-defined activation takes the Lua path for its own layer only", function()
    blua.activation.define{name = "ramp_structure", forward = function(z) return z:clone():map(function(v) return math.max(v, 0) end) end,
      psi = function(u) return u:min() < 0 and math.huge or 0 end,
      conj = function(z) local p = z:clone():map(function(v) return math.max(v, 0) end) return 0.5 * p:dot(p) end}
    blua.manualSeed(3)
    local m = blua.nn.mlp{6, 8, 8, 2, activation = {"ramp_structure", "relu"}}
    local calls = {}
    local saved = {}
    for _, k in ipairs{"_xstep", "_wgrad"} do
      saved[k] = blua[k]
      blua[k] = function(...) calls[k] = (calls[k] or 0) + 1 return saved[k](...) end
    end
    local ok, err = pcall(function()
      local h = blua.train.bregman(m, d, {epochs = 1, batch = 64, verbose = false, batch_shards = 1})
      assert.is_true(h[1].loss == h[1].loss)
    end)
    for k, f in pairs(saved) do blua[k] = f end
    assert(ok, err)
    -- one batch of one share: layer 2's X-step is fused (relu next to softmax); layer 1's is composed in
    -- Lua; the W-gradients of layers 2 and 3 run in C
    assert.equal(1, calls._xstep)
    assert.equal(2, calls._wgrad)
  end)

  it("rejects an on_gradients that is not a function", function()
    assert.has_error(function() blua.train.bregman(net(1), d, {on_gradients = 3, verbose = false}) end,
      "blua.train.bregman: on_gradients must be a function")
  end)
end)
