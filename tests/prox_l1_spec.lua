-- The proximal maps with an L1 penalty folded in (docs/design.md, "L1 penalties on auxiliary
-- variables"): for every built-in activation (and a defined one), prox_l1(v, μ, α) is checked
-- against a golden-section minimiser of μ(½u² + Ψ(u) + α|u|) + ½(u − v)² over dom Ψ, and
-- project_l1(v, t) against the minimiser of t|u| + ½(u − v)² over the range; the closed forms
-- of the design notes (shifted ReLU, combined soft-threshold); refusals.
local blua = require "blua"
local A = blua.activation

-- Minimiser of a convex f on [a, b] by golden-section search.
local function golden(f, a, b)
  local g = (math.sqrt(5) - 1) / 2
  local c, d = b - g * (b - a), a + g * (b - a)
  local fc, fd = f(c), f(d)
  for _ = 1, 200 do
    if b - a < 1e-9 then break end
    if fc < fd then
      b, d, fd = d, c, fc
      c = b - g * (b - a)
      fc = f(c)
    else
      a, c, fc = c, d, fd
      d = a + g * (b - a)
      fd = f(d)
    end
  end
  return (a + b) / 2
end

-- Activations with the closed interval of dom Ψ (the range of σ, closed).
local cases = {
  {name = "identity", dom = {-20, 20}},
  {name = "relu", dom = {0, 20}},
  {name = "leaky_relu", params = {slope = 0.2}, dom = {-20, 20}},
  {name = "clip", params = {lo = -0.5, hi = 1.5}, dom = {-0.5, 1.5}},
  {name = "clip", params = {lo = 0.25, hi = 1}, dom = {0.25, 1}},
  {name = "clip", params = {lo = -1, hi = -0.25}, dom = {-1, -0.25}},
  {name = "soft_threshold", params = {lambda = 0.3}, dom = {-20, 20}},
  {name = "sigmoid", dom = {0, 1}},
  {name = "tanh", dom = {-1, 1}},
}

local points = {-3, -1.2, -0.45, -0.1, 0, 0.05, 0.3, 0.8, 1.7, 4}

local function scalar(a, fn, ...) return fn(a, blua.tensor{{...}}) end

describe("prox_l1", function()
  for _, c in ipairs(cases) do
    local a = A.get(c.name, c.params)
    local label = tostring(a)
    it("minimises mu (1/2 u^2 + psi(u) + alpha |u|) + 1/2 (u - v)^2 for " .. label, function()
      for _, mu in ipairs{0.3, 2} do
        for _, alpha in ipairs{0, 0.15, 1} do
          local v = blua.zeros(1, #points)
          for j, p in ipairs(points) do v:set(1, j, p) end
          local u = a:prox_l1(v, mu, alpha)
          for j, p in ipairs(points) do
            local function f(x)
              local psi = scalar(a, a.psi, x)
              return mu * (0.5 * x * x + psi + alpha * math.abs(x)) + 0.5 * (x - p) ^ 2
            end
            local want = golden(f, c.dom[1], c.dom[2])
            local got = u:get(1, j)
            -- Ψ is summed from float32 values, so the minimiser is found to about 1e-3 only
            assert(math.abs(got - want) < 2e-3,
              string.format("%s mu %g alpha %g v %g: prox_l1 %.6f, minimiser %.6f", label, mu, alpha, p, got, want))
            -- and the objective is no worse than at the numerical minimiser
            assert(f(got) <= f(want) + 1e-5)
          end
        end
      end
    end)
    it("project_l1 minimises t |u| + 1/2 (u - v)^2 over the range for " .. label, function()
      for _, t in ipairs{0, 0.2, 1.5} do
        for _, p in ipairs(points) do
          local got = a:project_l1(blua.tensor{{p}}, t):get(1, 1)
          local want = golden(function(x) return t * math.abs(x) + 0.5 * (x - p) ^ 2 end, c.dom[1], c.dom[2])
          assert(math.abs(got - want) < 2e-4, string.format("%s t %g v %g: %.6f vs %.6f", label, t, p, got, want))
        end
      end
    end)
  end

  it("is a shifted ReLU for relu and one combined threshold for soft_threshold", function()
    local v = blua.tensor{{-2, -0.2, 0.05, 0.3, 2.5}}
    local mu, alpha, lambda = 0.7, 0.4, 0.25
    local relu = A.get("relu"):prox_l1(v, mu, alpha)
    local soft = A.get("soft_threshold", {lambda = lambda}):prox_l1(v, mu, alpha)
    for j = 1, 5 do
      local x = v:get(1, j)
      assert.near(math.max(0, (x - mu * alpha) / (1 + mu)), relu:get(1, j), 1e-6)
      local s = x / (1 + mu)
      local th = mu * (lambda + alpha) / (1 + mu)
      local want = s > th and s - th or (s < -th and s + th or 0)
      assert.near(want, soft:get(1, j), 1e-6)
    end
  end)

  it("with alpha = 0 is the plain prox, on views and in place", function()
    local a = A.get("tanh")
    local big = blua.randn(6, 8)
    local v = big:narrow(2, 2, 5)
    local want = a:prox(v, 0.5)
    local got = a:prox_l1(v, 0.5, 0)
    assert.near(0, got:clone():add(-1, want):abs():max(), 1e-6)
    local w = v:clone()
    a:prox_l1(w, 0.5, 0.3, w)
    assert.near(0, w:add(-1, a:prox_l1(v, 0.5, 0.3)):abs():max(), 1e-7)
  end)

  it("agrees for an activation defined in Lua", function()
    local mine = A.define{
      name = "relu_by_hand",
      forward = function(z) return z:cmax(0) end,
      psi = function(u) return u:min() < 0 and math.huge or 0 end,
      conj = function(z) local p = z:cmax(0) return 0.5 * p:dot(p) end,
    }
    local v = blua.tensor{{-1, 0.1, 0.6, 3}}
    local diff = mine:prox_l1(v, 0.8, 0.5):add(-1, A.get("relu"):prox_l1(v, 0.8, 0.5)):abs():max()
    assert(diff < 1e-4, "defined relu differs by " .. diff)
  end)

  it("refuses softmax, negative weights and bad steps with messages", function()
    local v = blua.tensor{{0.1, 0.2}}
    assert.has_error(function() A.get("softmax"):prox_l1(v, 1, 0.1) end)
    local ok, err = pcall(A.get("relu").prox_l1, A.get("relu"), v, 1, -1)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("L1 weight must be non%-negative"))
    ok, err = pcall(A.get("relu").prox_l1, A.get("relu"), v, 0, 0.1)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("mu must be positive"))
    ok, err = pcall(A.get("relu").prox_l1, A.get("relu"), v, 1, 0 / 0)
    assert.is_false(ok)
  end)
end)
