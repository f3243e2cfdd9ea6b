-- Back-propagation epochs with nothing to run in Lua between batches run in C
-- (blua._backpropEpoch, lua/blua/train/loop.lua): the same bits, losses, rates and errors as
-- the Lua loop, which a do-nothing on_batch hook forces; and the C object refuses bad input.
local blua = require "blua"

local function data(rows)
  blua.manualSeed(7)
  local x = blua.randn(rows, 12)
  local y = x:narrow(2, 1, 1):clone():gt(0):add(1)
  return {x = x, y = y}
end

local function train(opts, force_lua, rows, method)
  method = method or "backprop"
  blua.manualSeed(3)
  local net = blua.nn.mlp{12, 16, 8, 2}
  local o = {epochs = 2, batch = 32, verbose = false, eval_train = false}
  for k, v in pairs(opts) do o[k] = v end
  if opts.poison then -- (after the first epoch: NaN in that parameter, as from a broken update)
    o.poison = nil
    o.on_epoch = function(e) if e == 1 then net[opts.poison[1]][opts.poison[2]]:fill(0 / 0) end end
  end
  if force_lua then o.on_batch = function() end end
  local used = 0
  local name = method == "backprop" and "_backpropEpoch" or "_liftedEpoch"
  local orig = blua[name]
  blua[name] = function(spec) used = used + 1 return orig(spec) end
  local ok, h = pcall(blua.train[method], net, data(rows or 200), o)
  blua[name] = orig
  return ok, h, net, used
end

local function same_training(method, opts, epochs_in_c)
  local ok1, h1, net1, used1 = train(opts, false, nil, method)
  local ok2, h2, net2, used2 = train(opts, true, nil, method)
  assert.is_true(ok1, tostring(h1))
  assert.is_true(ok2, tostring(h2))
  assert.equal(epochs_in_c, used1)
  assert.equal(0, used2)
  for l = 1, 3 do
    assert.equal(0, (net1.W[l] - net2.W[l]):abs():max())
    assert.equal(0, (net1.b[l] - net2.b[l]):abs():max())
  end
  for e = 1, #h2 do
    assert.equal(h2[e].loss, h1[e].loss)
    assert.equal(h2[e].energy, h1[e].energy)
    assert.equal(h2[e].lr, h1[e].lr)
    for l = 1, 2 do assert.equal((h2[e].energies or {})[l], (h1[e].energies or {})[l]) end
  end
end

describe("back-prop epochs in C", function()
  for _, threads in ipairs{1, 2} do
    for _, shards in ipairs{1, 2, 3} do
      it(("give the Lua loop's bits (%d thread%s, batch_shards %d, a shorter last batch)"):format(threads,
        threads > 1 and "s" or "", shards), function()
        local opts = {threads = threads, batch_shards = shards}
        local ok1, h1, net1, used1 = train(opts, false)
        local ok2, h2, net2, used2 = train(opts, true)
        assert.is_true(ok1, tostring(h1))
        assert.is_true(ok2, tostring(h2))
        assert.equal(2, used1) -- (one C epoch object per epoch)
        assert.equal(0, used2)
        for l = 1, 3 do
          assert.equal(0, (net1.W[l] - net2.W[l]):abs():max())
          assert.equal(0, (net1.b[l] - net2.b[l]):abs():max())
        end
        for e = 1, 2 do
          assert.equal(h2[e].loss, h1[e].loss)
          assert.equal(h2[e].lr, h1[e].lr)
        end
      end)
    end
  end

  it("give the Lua loop's bits with an L1 term on hidden layers", function()
    local opts = {threads = 2, l1 = {[1] = 0.01, [2] = 0.003}}
    local ok1, h1, net1, used1 = train(opts, false)
    local ok2, h2, net2 = train(opts, true)
    assert.is_true(ok1 and ok2, tostring(h1) .. tostring(h2))
    assert.equal(2, used1)
    for l = 1, 3 do assert.equal(0, (net1.W[l] - net2.W[l]):abs():max()) end
    assert.equal(h2[2].loss, h1[2].loss)
  end)

  -- The lifted trainers' epochs run in C once the X-step warm starts exist: from the second.
  for _, method in ipairs{"bregman", "lifted"} do
    for _, threads in ipairs{1, 2} do
      it(method .. (": epochs in C give the Lua loop's bits, energies and losses (%d thread%s)"):format(threads,
        threads > 1 and "s" or ""), function()
        same_training(method, {threads = threads, epochs = 3}, 2)
        same_training(method, {threads = threads, epochs = 3, batch_shards = 3}, 2)
      end)
    end
    it(method .. ": epochs in C with two inner steps, two sweeps, the odd-even order and L1", function()
      same_training(method, {epochs = 3, inner = 2, xsteps = 2, order = "oddeven", l1 = {[1] = 0.01}}, 2)
      same_training(method, {epochs = 3, track_energy = false, order = "forward", gamma = method == "lifted" and 2 or nil}, 2)
      if method == "bregman" then same_training(method, {epochs = 3, mu_last = 3, loss_weight = 0.3}, 2) end
    end)
    it(method .. ": an anchor term keeps the Lua loop", function()
      same_training(method, {epochs = 2, inner = 2, tau = 10}, 0)
    end)
    it(method .. ": a diverging epoch in C stops with the Lua loop's message", function()
      for _, case in ipairs{{{"W", 3}, "layer 3 weights have no finite norm"}, {{"b", 3}, "the loss is"}} do
        local opts = {epochs = 3, poison = case[1]}
        local ok1, err1, _, used = train(opts, false, nil, method)
        local ok2, err2 = train(opts, true, nil, method)
        assert.is_false(ok1)
        assert.is_false(ok2)
        assert.equal(1, used)
        assert.equal(tostring(err2), tostring(err1))
        assert.truthy(tostring(err1):find("training diverged in epoch 2, batch 1: " .. case[2], 1, true), tostring(err1))
      end
    end)
  end

  it("keep Adam's step count and a resumed run's order", function()
    local state1, state2 = {}, {}
    local ok1, _, net1 = train({optim_state = state1, epochs = 3}, false)
    local ok2, _, net2 = train({optim_state = state2, epochs = 3}, true)
    assert.is_true(ok1 and ok2)
    assert.equal(state2[1].t, state1[1].t)
    assert.equal(0, (net1.W[1] - net2.W[1]):abs():max())
  end)

  it("stop a diverging run with the Lua loop's message", function()
    local ok1, err1 = train({lr = 1e30, epochs = 1}, false)
    local ok2, err2 = train({lr = 1e30, epochs = 1}, true)
    assert.is_false(ok1)
    assert.is_false(ok2)
    assert.equal(tostring(err2), tostring(err1))
    assert.truthy(tostring(err1):find("training diverged in epoch 1, batch", 1, true), tostring(err1))
  end)

  it("move the progress bar to the end, a chunk of batches at a time", function()
    local seen = {}
    local new = blua.progress.new
    blua.progress.new = function(opts)
      local bar = new(opts)
      local update = bar.update
      bar.update = function(self, b, text) seen[#seen + 1] = b return update(self, b, text) end
      return bar
    end
    local ok, err = pcall(train, {verbose = true, epochs = 1}, false, 2000)
    blua.progress.new = new
    assert.is_true(ok, tostring(err))
    assert.equal(63, seen[#seen]) -- (2000 rows in batches of 32)
    assert.is_true(#seen >= 3)
  end)

  it("refuse bad input with errors, and hold its tensors", function()
    local function spec()
      blua.manualSeed(1)
      local net = blua.nn.mlp{4, 3, 2}
      local x, y = blua.randn(10, 4), blua.zeros(10, 2)
      y:narrow(2, 1, 1):fill(1) -- (one-hot targets of class 1)
      local ws = {xb = blua.zeros(4, 4), yb = blua.zeros(4, 2), Z = {blua.zeros(4, 3), blua.zeros(4, 2)},
        X = {blua.zeros(4, 3)}, D = {blua.zeros(4, 3), blua.zeros(4, 2)}}
      local short = {xb = blua.zeros(2, 4), yb = blua.zeros(2, 2), Z = {blua.zeros(2, 3), blua.zeros(2, 2)},
        X = {blua.zeros(2, 3)}, D = {blua.zeros(2, 3), blua.zeros(2, 2)}}
      local grads, params, m, v = {}, {}, {}, {}
      for l = 1, 2 do
        for _, p in ipairs{net.W[l], net.b[l]} do
          params[#params + 1], grads[#grads + 1] = p, blua.zeros(p:size())
          m[#m + 1], v[#v + 1] = blua.zeros(p:size()), blua.zeros(p:size())
        end
      end
      return {acts = {net:activation(1), net:activation(2)}, W = net.W, b = net.b, x = x, y = y, batch = 4, parts = 1,
        ws = {ws, short}, grads = grads, params = params, m = m, v = v, lr = {1e-3, 1e-3, 1e-3}, beta1 = 0.9,
        beta2 = 0.999, eps = 1e-8, weight_decay = 0, t0 = 0}
    end
    local s = spec()
    local e = blua._backpropEpoch(s)
    -- closing tensors of the spec from Lua leaves the object's own references
    for _, t in ipairs{s.W[1], s.W[2], s.x} do
      local closed <close> = t
    end
    assert.truthy(tostring(s.x):find("closed", 1, true), tostring(s.x))
    local sum = e:run(1, 3, 0)
    assert.is_true(sum == sum and sum > 0)
    e:close()
    assert.truthy(select(2, pcall(e.run, e, 1, 1, 0)):find("closed epoch", 1, true))
    local function refused(change, pattern)
      local bad = spec()
      change(bad)
      local ok, err = pcall(function() return blua._backpropEpoch(bad):run(1, 3, 0) end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(pattern, 1, true), tostring(err))
    end
    refused(function(b) b.lr = {1e-3} end, "one rate per batch")
    refused(function(b) b.parts = 0 end, "'parts' must be an integer")
    refused(function(b) b.batch = math.maxinteger end, "'batch' must be an integer")
    refused(function(b) b.ws[1].xb = blua.zeros(5, 4) end, "gathering 4 rows")
    refused(function(b) b.W = {b.W[1]} end, "'W' has 1 tensors, 2 needed")
    refused(function(b) b.m[1] = blua.zeros(1) end, "parameter 4x3 and state 1")
    refused(function(b) b.acts = {{name = "relu"}, b.acts[2]} end, "not a built-in activation")
    refused(function(b) b.t0 = -1 end, "'t0' must be an integer")
    refused(function(b) b.l1 = {[1] = -1} end, "bad L1 weight")
    local ok, err = pcall(function() return blua._backpropEpoch(spec()):run(2, 9, 0) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bad batch range", 1, true))
  end)
end)
