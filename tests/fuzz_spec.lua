-- Bad arguments of every kind to every tensor method, module function and activation method:
-- each call returns or raises a Lua error; none may crash the process (the suite runs under
-- AddressSanitizer and UndefinedBehaviorSanitizer, which turn memory errors into failures).
local blua = require "blua"

local function values()
  return {nil, 0, -1, 1, 2, 3, 2.5, -1e10, 0 / 0, math.huge, -math.huge, "x", "2", {}, {{1, 2}, {3}},
    {{1, 2}, {3, 4}}, true, blua.zeros(2, 3), blua.zeros(3, 2), blua.zeros(0, 0), blua.zeros(0, 4),
    blua.zeros(5), blua.randn(2, 3):t(), blua.randn(6, 6):narrow(2, 2, 3), function() end}
end

local function hammer(f, self, rounds)
  local vals = values()
  local raised = 0
  for _ = 1, rounds do
    local args = {}
    for i = 1, 4 do args[i] = vals[math.random(#vals)] end
    local ok = pcall(f, self, args[1], args[2], args[3], args[4])
    if not ok then raised = raised + 1 end
  end
  return raised
end

describe("bad arguments never crash", function()
  before_each(function() math.randomseed(12345) end)

  it("in tensor methods", function()
    local raised = 0
    for name, method in pairs(blua.Tensor) do
      if name ~= "map" then
        for _, t in ipairs{blua.zeros(2, 3), blua.ones(3, 3), blua.zeros(0, 4), blua.randn(4), blua.randn(3, 2):t()} do
          raised = raised + hammer(method, t, 40)
        end
      end
    end
    assert.is_true(raised > 1000) -- most random calls are wrong and say so
  end)

  it("in module functions", function()
    for _, name in ipairs{"tensor", "zeros", "ones", "rand", "randn", "eye", "spectralNorm", "isTensor", "manualSeed"} do
      hammer(function(_, ...) return blua[name](...) end, nil, 200)
    end
    blua.manualSeed(1)
  end)

  it("in activation methods", function()
    for _, name in ipairs(blua.activation.list()) do
      local a = blua.activation.get(name)
      for _, m in ipairs{"forward", "prox", "psi", "conj", "bregman", "bregman_grad", "project", "linear_mask",
                         "derivative", "xstep_bregman", "xstep_lifted"} do
        hammer(a[m], a, 30)
      end
    end
  end)

  it("in networks, metrics and trainers", function()
    local net = blua.nn.mlp{3, 4, 2}
    for _, f in ipairs{net.forward, net.scores, net.predict, net.layer, net.activation} do hammer(f, net, 50) end
    for _, f in ipairs{blua.metrics.accuracy, blua.metrics.linear_fraction, blua.metrics.confusion} do
      hammer(function(_, a) return f(net, a) end, nil, 50)
    end
    for _, m in ipairs{"bregman", "lifted", "backprop"} do
      hammer(function(_, a, b) return blua.train[m](net, a, b) end, nil, 50)
    end
  end)
end)
