-- Proximal activations through the Lua API: for every built-in and for activations defined in
-- Lua (one with psi and conj but no prox, one with forward only), the identities of
-- docs/design.md, "Activations as proximal maps": σ against its formula, B(σ(z), z) = 0, B(y, z) >= ½(y − σ(z))², the gradient
-- of Φ* is σ, the prox minimises μ(½u² + Ψ(u)) + ½(u − v)², the X-steps are the composition
-- of their parts; softmax cross-entropy; |z| = 50; refusals and error messages.
local blua = require "blua"
local A = blua.activation

local function sigmoid(z) return 1 / (1 + math.exp(-z)) end
local function tanh(z)
  local e = math.exp(-2 * math.abs(z))
  local t = (1 - e) / (1 + e)
  return z < 0 and -t or t
end

-- The built-ins with the formula of σ, a sampler of dom Ψ and the closed-form prox of μΦ.
local builtins = {
  {name = "identity", f = function(z) return z end,
   dom = function(r) return 6 * r - 3 end, prox = function(v, mu) return v / (1 + mu) end},
  {name = "relu", f = function(z) return math.max(z, 0) end,
   dom = function(r) return 3 * r end, prox = function(v, mu) return math.max(0, v / (1 + mu)) end},
  {name = "leaky_relu", params = {slope = 0.2}, f = function(z) return z >= 0 and z or 0.2 * z end,
   dom = function(r) return 6 * r - 3 end,
   prox = function(v, mu) return v >= 0 and v / (1 + mu) or 0.2 * v / (0.2 + mu) end},
  {name = "clip", params = {lo = -0.5, hi = 1.5}, f = function(z) return math.min(math.max(z, -0.5), 1.5) end,
   dom = function(r) return -0.5 + 2 * r end,
   prox = function(v, mu) return math.min(math.max(v / (1 + mu), -0.5), 1.5) end},
  {name = "soft_threshold", params = {lambda = 0.3},
   f = function(z) return z > 0.3 and z - 0.3 or (z < -0.3 and z + 0.3 or 0) end,
   dom = function(r) return 6 * r - 3 end,
   prox = function(v, mu)
     local c, t = v / (1 + mu), 0.3 * mu / (1 + mu)
     return c > t and c - t or (c < -t and c + t or 0)
   end},
  {name = "sigmoid", f = sigmoid, dom = function(r) return r end},
  {name = "tanh", f = tanh, dom = function(r) return 2 * r - 1 end},
}

-- softsign z/(1 + |z|) is proximal: Ψ(u) = −|u| − log(1 − |u|) − u²/2 on |u| < 1 and
-- Φ*(z) = |z| − log(1 + |z|). Defined with psi and conj but without prox.
local softsign = {
  name = "softsign",
  forward = function(z) return z:cdiv(z:clone():abs():add(1)) end,
  psi = function(u)
    local a = u:clone():abs()
    if a:max() >= 1 then return math.huge end
    return -a:sum() - a:clone():mul(-1):log1p():sum() - 0.5 * u:dot(u)
  end,
  conj = function(z)
    local a = z:clone():abs()
    return a:sum() - a:log1p():sum()
  end,
}
-- max(z − 1, 0): Ψ(u) = u on u >= 0, prox_{μΦ}(v) = max(0, (v − μ)/(1 + μ)). Forward only.
local shifted = {name = "shifted_relu", forward = function(z) return z:add(-1):cmax(0) end}

A.define(softsign)
A.define(shifted)

local function f_softsign(z) return z / (1 + math.abs(z)) end

local function scalar(x) return blua.tensor{{x}} end
local function float(x) return scalar(x):get(1, 1) end -- x rounded to float32

local function samples(n, scale)
  local zs = {50, -50, 0}
  blua.manualSeed(11)
  local r = blua.randn(n, 1)
  for i = 1, n do zs[#zs + 1] = scale * r:get(i, 1) end
  return zs
end

local function column(values)
  local t = blua.zeros(#values, 1)
  for i, x in ipairs(values) do t:set(i, 1, x) end
  return t
end

local function psi_at(a, u) return a:psi(scalar(u)) end

-- The identities shared by built-ins and defined activations; f is σ written out here.
local function check_identities(a, f, dom, tol)
  tol = tol or 1e-5
  local zs = samples(150, 4)

  -- σ(z) against the formula, including |z| = 50
  local z = column(zs)
  local s = a:forward(z)
  for i, x in ipairs(zs) do
    local xf = z:get(i, 1)
    assert.is_true(math.abs(s:get(i, 1) - f(xf)) <= 1e-6 * (1 + math.abs(f(xf))),
      string.format("%s forward(%g) = %g, expected %g", a.name, xf, s:get(i, 1), f(xf)))
  end

  -- B(σ(z), z) = 0 in total; every term is >= 0, so each one is small
  assert.is_true(math.abs(a:bregman(s, z)) <= tol * #zs, a.name .. " B(s, z) = " .. a:bregman(s, z))

  -- B(y, z) >= ½(y − σ(z))² for y in dom Ψ, per entry
  blua.manualSeed(12)
  local rs = blua.rand(#zs, 1)
  for i = 1, #zs do
    local y = float(dom(rs:get(i, 1)))
    local zi = z:get(i, 1)
    local b = a:bregman(scalar(y), scalar(zi))
    local q = 0.5 * (y - s:get(i, 1)) ^ 2
    assert.is_true(b >= q - tol * (1 + q) and b < math.huge,
      string.format("%s B(%g, %g) = %g < %g", a.name, y, zi, b, q))
  end

  -- the gradient of Φ* is σ, by central differences away from kinks
  for i = 4, 60 do
    local x = zs[i]
    local zp, zm = float(x + 1e-3), float(x - 1e-3)
    local slope = (a:conj(scalar(zp)) - a:conj(scalar(zm))) / (zp - zm)
    local fx = f(x)
    local smooth = math.abs(f(x + 2e-3) - f(x) - (f(x) - f(x - 2e-3))) < 1e-6
    if smooth then
      assert.is_true(math.abs(slope - fx) <= 100 * tol * (1 + math.abs(x)),
        string.format("%s dconj(%g) = %g, sigma = %g", a.name, x, slope, fx))
    end
  end

  -- stability at |z| = 50: finite energies
  assert.is_true(math.abs(a:conj(scalar(50))) < math.huge and math.abs(a:conj(scalar(-50))) < math.huge)
end

-- The prox of μΦ minimises J(w) = μ(½w² + Ψ(w)) + ½(w − v)²: neighbours are no better.
local function check_prox_minimises(a, h, slack)
  for _, mu in ipairs{0.1, 1, 8} do
    local vs = samples(40, 3)
    local v = column(vs)
    local u = a:prox(v, mu)
    for i = 1, #vs do
      local vi, ui = v:get(i, 1), u:get(i, 1)
      local function J(w) return mu * (0.5 * w * w + psi_at(a, w)) + 0.5 * (w - vi) ^ 2 end
      local j0 = J(ui)
      assert.is_true(j0 < math.huge, string.format("%s prox(%g, %g) = %g off the domain", a.name, vi, mu, ui))
      for _, w in ipairs{float(ui + h), float(ui - h)} do
        assert.is_true(J(w) >= j0 - slack * (1 + math.abs(j0)),
          string.format("%s prox(%g, %g) = %g, but J(%g) = %.10g < J(u) = %.10g", a.name, vi, mu, ui, w, J(w), j0))
      end
    end
  end
end

local function max_diff(a, b) return (a - b):abs():max() end

-- bregman_grad and the X-steps against the composition of forward, prox and project.
local function check_steps(a)
  blua.manualSeed(5)
  local x, z, g = blua.randn(9, 7), blua.randn(9, 7):mul(2), blua.randn(9, 7):mul(0.3)
  local mu, gamma = 0.6, 1.5
  local grad = a:bregman_grad(x, z)
  assert.is_true(max_diff(grad, a:forward(z) - x) <= 1e-6)
  local out = blua.zeros(9, 7)
  assert.equal(out, a:bregman_grad(x, z, out))
  assert.is_true(max_diff(out, grad) == 0)

  local expect = a:prox(x + (z - g) * mu, mu)
  local xb = x:clone()
  assert.equal(xb, a:xstep_bregman(xb, z, g, mu))
  assert.is_true(max_diff(xb, expect) <= 1e-5)

  local expect_l = a:project(x - ((x - z) * gamma + g) * mu)
  local xl = x:clone()
  assert.equal(xl, a:xstep_lifted(xl, z, g, mu, gamma))
  assert.is_true(max_diff(xl, expect_l) <= 1e-5)
end

describe("built-in activations", function()
  for _, b in ipairs(builtins) do
    local a = A.get(b.name, b.params)

    it(b.name .. ": forward, Bregman identities, conjugate gradient, |z| = 50", function()
      assert.equal(b.name, a.name)
      assert.is_true(a.builtin and a.has_energy and a.has_prox)
      check_identities(a, b.f, b.dom)
    end)

    it(b.name .. ": prox minimises the prox objective and matches the closed form", function()
      check_prox_minimises(a, 1e-3, 1e-9)
      if b.prox then
        for _, mu in ipairs{0.05, 1, 20} do
          local vs = samples(60, 3)
          local u = a:prox(column(vs), mu)
          for i, v in ipairs(vs) do
            assert.is_true(math.abs(u:get(i, 1) - b.prox(float(v), mu)) <= 1e-6 * (1 + math.abs(v)))
          end
        end
      end
      -- far out stays finite and in the range
      local u = a:prox(blua.tensor{{50, -50}}, 1e-3)
      assert.is_true(u:allFinite())
    end)

    it(b.name .. ": bregman_grad and the X-steps are compositions of their parts", function()
      check_steps(a)
    end)

    it(b.name .. ": linear_mask, derivative and project", function()
      local zs = samples(100, 3)
      local z = column(zs)
      local m, d, p = a:linear_mask(z), a:derivative(z), a:project(z)
      for i = 1, #zs do
        local x = z:get(i, 1)
        local slope = (b.f(x + 1e-4) - b.f(x - 1e-4)) / 2e-4
        if math.abs(b.f(x + 2e-4) - 2 * b.f(x) + b.f(x - 2e-4)) < 1e-9 then -- away from kinks
          assert.is_true(math.abs(d:get(i, 1) - slope) <= 1e-3)
          local linear = (b.name ~= "sigmoid" and b.name ~= "tanh") and math.abs(slope - 1) < 1e-6
          assert.equal(linear and 1 or 0, m:get(i, 1))
        end
        -- project lands in the closure of the range and fixes points already there
        local px = p:get(i, 1)
        assert.is_true(math.abs(psi_at(a, px)) < math.huge)
        if math.abs(psi_at(a, x)) < math.huge then assert.equal(x, px) end
      end
    end)
  end

  it("stable forms at |z| = 50", function()
    local sg, th, re = A.get("sigmoid"), A.get("tanh"), A.get("relu")
    assert.near(50, sg:conj(scalar(50)), 1e-12)
    assert.near(50 - math.log(2), th:conj(scalar(-50)), 1e-12)
    assert.near(50, sg:bregman(scalar(0), scalar(50)), 1e-9)
    assert.near(0, sg:bregman(sg:forward(scalar(50)), scalar(50)), 1e-12)
    assert.near(100, th:bregman(scalar(-1), scalar(50)), 1e-9)
    assert.equal(1250, re:conj(scalar(50)))
    assert.equal(1, sg:forward(scalar(50)):get(1, 1))
    assert.equal(-1, th:forward(scalar(-50)):get(1, 1))
  end)

  it("write into an output tensor when given one", function()
    local a = A.get("relu")
    local z, out = blua.tensor{{-1, 2}}, blua.zeros(1, 2)
    assert.equal(out, a:forward(z, out))
    assert.same({{0, 2}}, out:totable())
    assert.equal(out, a:prox(z, 1, out))
    assert.same({{0, 1}}, out:totable())
    assert.equal(z, a:forward(z, z)) -- in place
    assert.same({{0, 2}}, z:totable())
  end)
end)

describe("softmax output", function()
  local a = A.get("softmax")
  blua.manualSeed(3)
  local n, c = 40, 10
  local z = blua.randn(n, c):mul(3)
  z:set(1, 1, 50)
  z:set(2, 2, -50)
  local y = blua.zeros(n, c)
  local labels = {}
  for i = 1, n do
    labels[i] = (i * 7) % c + 1
    y:set(i, labels[i], 1)
  end

  local function lse(i)
    local m = -math.huge
    for j = 1, c do m = math.max(m, z:get(i, j)) end
    local s = 0
    for j = 1, c do s = s + math.exp(z:get(i, j) - m) end
    return m + math.log(s)
  end

  it("forward is the softmax of each row", function()
    local s = a:forward(z)
    for i = 1, n do
      local l = lse(i)
      for j = 1, c do assert.near(math.exp(z:get(i, j) - l), s:get(i, j), 1e-6) end
    end
    assert.is_false(a.elementwise)
  end)

  it("the output penalty is the softmax cross-entropy for one-hot targets", function()
    local ce, sum_lse = 0, 0
    for i = 1, n do
      ce = ce + lse(i) - z:get(i, labels[i])
      sum_lse = sum_lse + lse(i)
    end
    assert.near(ce, a:bregman(y, z), 1e-9 * ce)
    assert.near(sum_lse, a:conj(z), 1e-9 * math.abs(sum_lse))
    assert.is_true(max_diff(a:bregman_grad(y, z), a:forward(z) - y) <= 1e-7)
    assert.near(0, a:bregman(a:forward(z), z), 1e-4)
    assert.equal(math.huge, a:psi(z)) -- rows of z are not on the simplex
  end)

  it("prox and project land on the simplex with their optimality conditions", function()
    for _, mu in ipairs{0.1, 1, 10} do
      local u = a:prox(z, mu)
      for i = 1, n do
        local s, lo, hi = 0, math.huge, -math.huge
        for j = 1, c do
          local uj = u:get(i, j)
          s = s + uj
          if uj > 1e-4 then
            local k = uj + mu * math.log(uj) - z:get(i, j)
            lo, hi = math.min(lo, k), math.max(hi, k)
          end
        end
        assert.near(1, s, 1e-5)
        assert.is_true(hi - lo <= 1e-4 * (1 + mu))
      end
    end
    local p = a:project(z)
    for i = 1, n do
      local s = 0
      for j = 1, c do
        assert.is_true(p:get(i, j) >= 0)
        s = s + p:get(i, j)
      end
      assert.near(1, s, 1e-5)
    end
    check_steps(a)
  end)

  it("has no elementwise derivative", function()
    assert.has_error(function() a:derivative(z) end)
    local ok, msg = pcall(a.derivative, a, z)
    assert.is_false(ok)
    assert.matches("not elementwise", msg)
    assert.equal(0, a:linear_mask(z):sum())
  end)
end)

describe("activation names and parameters", function()
  it("lists built-in and defined names, sorted", function()
    local names = A.list()
    local sorted = {table.unpack(names)}
    table.sort(sorted)
    assert.same(sorted, names)
    local set = {}
    for _, k in ipairs(names) do set[k] = true end
    for _, k in ipairs{"identity", "relu", "leaky_relu", "clip", "soft_threshold", "sigmoid", "tanh", "softmax",
                        "softsign", "shifted_relu"} do
      assert.is_true(set[k], k)
    end
  end)

  it("fills in default parameters", function()
    assert.same({slope = 0.01}, {slope = tonumber(string.format("%.6g", A.get("leaky_relu").params.slope))})
    assert.same({lo = -1, hi = 1}, A.get("clip").params)
    assert.near(0.1, A.get("soft_threshold").params.lambda, 1e-12)
    assert.same({}, A.get("relu").params)
    assert.same({lo = -1, hi = 3}, A.get("clip", {hi = 3}).params)
  end)

  it("refuses unknown names, listing the accepted ones", function()
    local ok, msg = pcall(A.get, "swish")
    assert.is_false(ok)
    assert.matches("unknown activation in 'activation.get': 'swish'", msg, 1, true)
    assert.matches("clip, identity, leaky_relu, relu, shifted_relu, sigmoid, soft_threshold, softmax, softsign, tanh",
      msg, 1, true)
  end)

  it("refuses unknown and out-of-range parameters", function()
    local cases = {
      {"leaky_relu", {alpha = 0.1}, "unknown parameter in 'activation.get': 'alpha' for leaky_relu (accepted: slope)"},
      {"relu", {slope = 0.1}, "unknown parameter in 'activation.get': 'slope' for relu (accepted: none)"},
      {"leaky_relu", {slope = 2}, "bad parameter in 'activation.get': leaky_relu slope must be in (0, 1], got 2"},
      {"leaky_relu", {slope = 0}, "leaky_relu slope must be in (0, 1], got 0"},
      {"leaky_relu", {slope = "x"}, "leaky_relu slope must be a number, got string"},
      {"clip", {lo = 1, hi = 1}, "clip needs finite lo < hi, got lo = 1, hi = 1"},
      {"soft_threshold", {lambda = -1}, "soft_threshold lambda must be positive and finite, got -1"},
      {"softsign", {k = 1}, "activation 'softsign' takes no parameters"},
    }
    for _, case in ipairs(cases) do
      local ok, msg = pcall(A.get, case[1], case[2])
      assert.is_false(ok)
      assert.matches(case[3], msg, 1, true)
    end
    assert.has_no_error(function() A.get("leaky_relu", {slope = 1}) end)
  end)

  it("names the function and the shapes on size mismatches", function()
    local a = A.get("sigmoid")
    local x, y = blua.zeros(2, 3), blua.zeros(3, 2)
    local function message(f, ...)
      local ok, msg = pcall(f, ...)
      assert.is_false(ok)
      return msg
    end
    assert.matches("size mismatch in 'bregman': y 2x3, z 3x2", message(a.bregman, a, x, y), 1, true)
    assert.matches("size mismatch in 'forward': out 3x2, z 2x3", message(a.forward, a, x, y), 1, true)
    assert.matches("size mismatch in 'xstep_bregman'", message(a.xstep_bregman, a, x, x, y, 0.5), 1, true)
    assert.matches("bad step in 'prox': mu must be positive and finite, got 0", message(a.prox, a, x, 0), 1, true)
    local s = A.get("softsign")
    assert.matches("size mismatch in 'bregman': y 2x3, z 3x2", message(s.bregman, s, x, y), 1, true)
    assert.matches("bad step in 'prox'", message(s.prox, s, x, -1), 1, true)
    assert.matches("size mismatch in 'quadratic_penalty'", message(A.quadratic_penalty, x, y, 1), 1, true)
  end)

  it("computes the quadratic penalty", function()
    local y, z = blua.tensor{{1, 2}, {3, 4}}, blua.tensor{{0, 2}, {1, 4}}
    assert.equal(0.5 * 3 * 5, A.quadratic_penalty(y, z, 3))
  end)

  it("passes activation objects through get", function()
    local a = A.get("clip", {lo = 0, hi = 2})
    assert.equal(a, A.get(a))
    assert.is_true(A.is_activation(a))
    assert.is_false(A.is_activation({}))
  end)
end)

describe("activations defined in Lua", function()
  local ss, sh = A.get("softsign"), A.get("shifted_relu")

  it("are returned by get and marked", function()
    assert.is_false(ss.builtin)
    assert.is_true(ss.has_energy)
    assert.is_false(ss.has_prox)
    assert.is_false(sh.has_energy)
    assert.equal("shifted_relu", sh.name)
  end)

  it("softsign (no prox given): forward, Bregman identities, conjugate gradient", function()
    check_identities(ss, f_softsign, function(r) return 1.9 * r - 0.95 end, 1e-4)
  end)

  it("softsign: the derived prox minimises the prox objective", function()
    check_prox_minimises(ss, 1e-2, 1e-6)
    -- and solves μ z + σ(z) = v: u = σ((v − u)/μ)
    local v = column(samples(80, 5))
    for _, mu in ipairs{0.01, 0.5, 5} do
      local u = ss:prox(v, mu)
      local back = ss:forward((v - u) / mu)
      assert.is_true(max_diff(back, u) <= 1e-5 * (1 + v:clone():abs():max()))
    end
  end)

  it("shifted_relu (forward only): the derived prox is the closed form", function()
    local vs = samples(100, 3)
    for _, mu in ipairs{0.05, 1, 10} do
      local u = sh:prox(column(vs), mu)
      for i, v in ipairs(vs) do
        local expect = math.max(0, (float(v) - mu) / (1 + mu))
        assert.is_true(math.abs(u:get(i, 1) - expect) <= 2e-6 * (1 + math.abs(v)),
          string.format("prox(%g, %g) = %g, expected %g", v, mu, u:get(i, 1), expect))
      end
    end
  end)

  it("derive gradients, X-steps, derivative and mask from forward", function()
    check_steps(ss)
    check_steps(sh)
    local z = blua.tensor{{-2, 0.5, 1.5, 3, 50}}
    local d = sh:derivative(z)
    assert.same({{0, 0, 1, 1, 1}}, d:totable())
    assert.same({{0, 0, 1, 1, 1}}, sh:linear_mask(z):totable())
    local ds = ss:derivative(z)
    for j = 1, 5 do assert.near(1 / (1 + math.abs(z:get(1, j))) ^ 2, ds:get(1, j), 1e-4) end
    assert.equal(0, ss:linear_mask(z):sum())
    assert.is_true(max_diff(sh:project(z), z) == 0) -- identity unless project is given
  end)

  it("report energies as unavailable without psi and conj", function()
    local ok, msg = pcall(sh.bregman, sh, blua.zeros(1, 2), blua.zeros(1, 2))
    assert.is_false(ok)
    assert.matches("bregman not available for activation 'shifted_relu' (define psi and conj)", msg, 1, true)
    ok, msg = pcall(sh.psi, sh, blua.zeros(1, 2))
    assert.matches("psi not available for activation 'shifted_relu'", msg, 1, true)
    assert.has_error(function() sh:conj(blua.zeros(1, 2)) end)
  end)

  it("refuse swish, GELU and hard-shrink, saying which property fails and where", function()
    local function refusal(spec)
      local ok, msg = pcall(A.define, spec)
      assert.is_false(ok)
      assert.matches("not proximal in 'activation.define'", msg, 1, true)
      return msg
    end
    local swish = refusal{name = "swish", forward = function(z) return z:cmul(z:clone():sigmoid()) end}
    assert.matches("'swish' is not non%-decreasing: forward%(%-?[%d.]+%) = ", swish)
    local gelu = refusal{name = "gelu", forward = function(z)
      -- x Φ(x) with the tanh approximation of the normal CDF
      local inner = z:clone():pow(3):mul(0.044715):add(z):mul(math.sqrt(2 / math.pi)):tanh():add(1):mul(0.5)
      return z:cmul(inner)
    end}
    assert.matches("'gelu' is not non%-decreasing", gelu)
    local hs = refusal{name = "hardshrink", forward = function(z) return z:cmul(z:clone():abs():gt(0.5)) end}
    assert.matches("'hardshrink' is not 1%-Lipschitz: slope [%d.]+ between z = ", hs)
    local steep = refusal{name = "steep", forward = function(z) return z:mul(1.5) end}
    assert.matches("not 1%-Lipschitz", steep)
    for _, name in ipairs{"swish", "gelu", "hardshrink", "steep"} do
      assert.has_error(function() A.get(name) end)
    end
  end)

  it("check a given prox and given energies against forward", function()
    local ok, msg = pcall(A.define, {name = "badprox", forward = function(z) return z:cmax(0) end,
      prox = function(v, mu) return v:cmax(0) end}) -- the prox of μΨ, not of μΦ
    assert.is_false(ok)
    assert.matches("bad prox in 'activation.define': prox of 'badprox' does not match forward", msg, 1, true)
    ok, msg = pcall(A.define, {name = "badenergy", forward = function(z) return z:cmax(0) end,
      psi = function() return 0 end, conj = function(z) return 0.5 * z:dot(z) end})
    assert.is_false(ok)
    assert.matches("bad energy in 'activation.define'", msg, 1, true)
    local good = A.define{name = "relu2", forward = function(z) return z:cmax(0) end,
      prox = function(v, mu) return v:div(1 + mu):cmax(0) end,
      psi = function(u) return u:min() < 0 and math.huge or 0 end,
      conj = function(z) local p = z:clone():cmax(0); return 0.5 * p:dot(p) end}
    assert.is_true(good.has_prox and good.has_energy)
    assert.near(0, good:bregman(blua.tensor{{0, 2}}, blua.tensor{{-1, 2}}), 1e-12)
  end)

  it("check the definition's shape and fields", function()
    local cases = {
      {{name = "relu", forward = function(z) return z end}, "'relu' is a built-in activation and cannot be redefined"},
      {{name = "nofwd"}, "missing field in 'activation.define': forward"},
      {{name = "x", forward = 3}, "forward must be a function, got number"},
      {{name = "x", forward = function(z) return z end, slope = 1}, "unknown field in 'activation.define': 'slope'"},
      {{name = "bad name", forward = function(z) return z end}, "bad name in 'activation.define'"},
      {{name = "shrinks", forward = function(z) return z:narrow(1, 1, 1) end}, "bad result in 'forward'"},
    }
    for _, case in ipairs(cases) do
      local ok, msg = pcall(A.define, case[1])
      assert.is_false(ok)
      assert.matches(case[2], msg, 1, true)
    end
  end)

  it("work where a built-in name works: blua.nn.mlp", function()
    blua.manualSeed(2)
    local net = blua.nn.mlp{5, 4, 3, activation = "softsign", output = "softmax"}
    local x = blua.randn(6, 5)
    local out = net:forward(x)
    assert.same({6, 3}, {out:size()})
    assert.equal("softsign", net:activation(1).name)
  end)
end)
