-- Trainer behaviour a user steers: on_epoch returning false stops early, option type errors
-- say what type was expected, labels outside 1..C are refused with a hint, and the run's
-- power-iteration state rides along in optim_state.
local blua = require "blua"

local function tiny()
  blua.manualSeed(3)
  local x = blua.rand(64, 4)
  local y = x:narrow(2, 1, 1):clone():gt(0.5):add(1) -- labels 1, 2
  return {x = x, y = y}, blua.nn.mlp{4, 6, 2}
end

local function message(f)
  local ok, err = pcall(f)
  assert.is_false(ok)
  return tostring(err)
end

describe("blua.train", function()
  for _, method in ipairs{"bregman", "lifted", "backprop"} do
    it(method .. ": on_epoch returning false stops after that epoch; nil carries on", function()
      local data, net = tiny()
      local seen = {}
      local h = blua.train[method](net, data, {epochs = 5, verbose = false, on_epoch = function(e)
        seen[#seen + 1] = e
        if e == 2 then return false end
      end})
      assert.equal(2, #h)
      assert.same({1, 2}, seen)
      local h2 = blua.train[method](net, data, {epochs = 3, verbose = false, on_epoch = function() end})
      assert.equal(3, #h2)
    end)
  end

  it("names the expected type of an option", function()
    local data, net = tiny()
    assert.truthy(message(function() blua.train.bregman(net, data, {epochs = "2"}) end)
      :find("option 'epochs' must be an integer, got string \"2\"", 1, true))
    assert.truthy(message(function() blua.train.bregman(net, data, {epochs = 2.5}) end)
      :find("option 'epochs' must be an integer, got 2.5", 1, true))
    assert.truthy(message(function() blua.train.bregman(net, data, {epochs = 0}) end)
      :find("option 'epochs' must be a positive integer, got 0", 1, true))
    assert.truthy(message(function() blua.train.bregman(net, data, {lr = "1e-3"}) end)
      :find("option 'lr' must be a number, got string \"1e-3\"", 1, true))
    assert.truthy(message(function() blua.train.lifted(net, data, {gamma = -1}) end)
      :find("option 'gamma' must be positive, got -1", 1, true))
    assert.truthy(message(function() blua.train.lifted(net, data, {on_epoch = 3}) end)
      :find("option 'on_epoch' must be a function, got 3", 1, true))
  end)

  it("refuses 0-based labels with a hint, at the caller's line", function()
    local data, net = tiny()
    data.y = data.y:clone():add(-1)
    local err = message(function() blua.train.backprop(net, data, {epochs = 1, verbose = false}) end)
    assert.truthy(err:find("labels are the integers 1..2 (1-based: class 1 is the first; add 1 to 0-based labels", 1, true), err)
    assert.truthy(err:find("train_control_spec.lua:", 1, true), err)
    assert.truthy(message(function() blua.data.onehot(blua.tensor{{0}, {1}}, 2) end)
      :find("labels are 1-based", 1, true))
  end)

  it("keeps the X-step power iterations in optim_state, so a resumed run matches", function()
    local data, net = tiny()
    local straight = net:clone()
    blua.train.bregman(straight, data, {epochs = 4, verbose = false, optim_state = {}})
    local state = {}
    blua.train.bregman(net, data, {epochs = 4, verbose = false, optim_state = state,
      on_epoch = function(e) return e < 2 end})
    assert.truthy(state.power and state.power[1])
    local path = os.tmpname()
    blua.save(path, {net = net, state = state})
    local restored = blua.load(path)
    os.remove(path)
    blua.train.bregman(restored.net, data, {epochs = 4, start_epoch = 3, verbose = false, optim_state = restored.state})
    for l = 1, 2 do assert.equal(0, (restored.net.W[l] - straight.W[l]):abs():max()) end
  end)

  -- The loop works out each batch's C path once and keeps it while no user code runs between
  -- batches; a hook that changes the network must be seen from the next batch on.
  for _, method in ipairs{"bregman", "backprop"} do
    for _, hook in ipairs{"on_batch", "on_gradients"} do
      it(method .. ": an activation changed in " .. hook .. " is used from the next batch on", function()
        local calls = 0 -- (define calls forward too, to check it: counted from the switch on)
        blua.activation.define{name = "counted_relu", forward = function(z) calls = calls + 1 return z:cmax(0) end,
          derivative = function(z) return z:gt(0) end}
        local data, net = tiny()
        local switched = false
        local function switch()
          if not switched then net.activations[1], switched, calls = "counted_relu", true, 0 end
        end
        local opts = {epochs = 1, batch = 16, verbose = false, eval_train = false}
        opts[hook] = switch
        blua.train[method](net, data, opts)
        assert.is_true(switched)
        assert.is_true(calls > 0, "the new activation was never called")
      end)
    end
  end
end)
