-- Proximal activations (docs/design.md, "Activations as proximal maps"): every activation σ is the proximal map of a convex Ψ,
-- so it comes with Φ = ½‖·‖² + Ψ, its conjugate Φ* (∇Φ* = σ), the prox of μΦ and the
-- Bregman penalty B_Ψ(y, z) = Φ(y) + Φ*(z) − ⟨y, z⟩ of lifted Bregman training.
--
--   local a = blua.activation.get("leaky_relu", {slope = 0.1})
--   a:forward(z [, out])            σ(z)
--   a:prox(v, mu [, out])           prox of mu·Φ (not of mu·Ψ)
--   a:psi(u)  a:conj(z)             Σ Ψ(u) (math.huge off the domain), Σ Φ*(z)
--   a:bregman(y, z)                 Σ B_Ψ(y, z)
--   a:bregman_grad(y, z [, out])    σ(z) − y, the z-gradient of the Bregman penalty
--   a:project(v [, out])            projection onto the closure of the range of σ
--   a:linear_mask(z [, out])        1 where σ acts as the identity (slope 1), else 0
--   a:derivative(z [, out])         σ'(z) (back-propagation)
--   a:xstep_bregman(x, z, g, mu)    x ← prox_{μΦ}(x + μ (z − g)), in place, returns x
--   a:xstep_lifted(x, z, g, mu, gamma)   x ← Π(x − μ (γ (x − z) + g)), in place, returns x
--   a:prox_l1(v, mu, alpha [, out])      prox of mu·(Φ + alpha‖·‖₁) (an L1 penalty on top)
--   a:project_l1(v, t [, out])           argmin over the range of t‖u‖₁ + ½‖u − v‖²
--
-- Methods that return tensors write into `out` when it is given (and return it) and
-- allocate a new tensor otherwise. Fields: name, params (with defaults filled in), builtin,
-- has_energy (psi, conj and bregman available), has_prox (false when the prox of a defined
-- activation is derived numerically), elementwise (false for softmax) and, for built-ins,
-- kernel: the blua.Act userdata of the C kernels (its methods take the same arguments).
local blua = require "blua"
local C = require("blua.core")._act

local M = {}

local kinds = C.kinds() -- name -> {params = {names}, defaults = {values}}
local defined = {}      -- name -> activation object of blua.activation.define

local function sorted_keys(...)
  local names = {}
  for _, t in ipairs{...} do
    for k in pairs(t) do names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

--- Sorted names of every activation, built-in and defined.
function M.list() return sorted_keys(kinds, defined) end

local function shape(t)
  if t:dim() == 1 then return tostring(t:size(1)) end
  local r, c = t:size()
  return r .. "x" .. c
end

local function same_shape(a, b)
  if a:dim() ~= b:dim() then return false end
  local ra, ca = a:size()
  local rb, cb = b:size()
  return ra == rb and ca == cb
end

local function check_tensor(x, fname, argname)
  if not blua.isTensor(x) then
    error(string.format("bad argument in '%s': %s must be a tensor, got %s", fname, argname, type(x)), 3)
  end
end

local function check_pair(fname, y, z)
  check_tensor(y, fname, "y")
  check_tensor(z, fname, "z")
  if not same_shape(y, z) then
    error(string.format("size mismatch in '%s': y %s, z %s", fname, shape(y), shape(z)), 3)
  end
end

local function check_mu(fname, mu)
  if type(mu) ~= "number" or not (mu > 0 and mu < math.huge) then
    error(string.format("bad step in '%s': mu must be positive and finite, got %s", fname, tostring(mu)), 3)
  end
end

local function describe(self)
  local ps = {}
  for _, k in ipairs(sorted_keys(self.params)) do ps[#ps + 1] = k .. " = " .. tostring(self.params[k]) end
  if #ps == 0 then return "activation(" .. self.name .. ")" end
  return "activation(" .. self.name .. ", " .. table.concat(ps, ", ") .. ")"
end

-- ---------------------------------------------------------------------------------------
-- built-in activations: thin wrappers over the C kernels

local Builtin = {}
local BuiltinMT = {__index = Builtin, __name = "blua.activation", __tostring = describe}

for _, m in ipairs{"forward", "prox", "psi", "conj", "bregman", "bregman_grad", "project", "linear_mask",
                   "derivative", "xstep_bregman", "xstep_lifted", "prox_l1", "project_l1"} do
  Builtin[m] = function(self, ...)
    local k = self.kernel
    return k[m](k, ...)
  end
end

local function make_builtin(name, params, level)
  local spec = kinds[name]
  if params ~= nil and type(params) ~= "table" then
    error(string.format("bad parameters in 'activation.get': a table expected for '%s', got %s", name, type(params)), level)
  end
  params = params or {}
  local accepted = {}
  for _, p in ipairs(spec.params) do accepted[p] = true end
  for k, v in pairs(params) do
    if not accepted[k] then
      local list = #spec.params > 0 and table.concat(spec.params, ", ") or "none"
      error(string.format("unknown parameter in 'activation.get': '%s' for %s (accepted: %s)", tostring(k), name, list), level)
    end
    if type(v) ~= "number" or v ~= v then -- NaN would pass the kernel's range checks
      error(string.format("bad parameter in 'activation.get': %s %s must be a number, got %s", name, k,
        type(v) == "number" and "NaN" or type(v)), level)
    end
  end
  local values, filled = {}, {}
  for i, p in ipairs(spec.params) do
    values[i] = params[p] or spec.defaults[i]
    filled[p] = values[i]
  end
  local ok, kernel = pcall(C.new, name, values[1], values[2])
  if not ok then error(kernel, level) end
  return setmetatable({
    name = name, params = filled, builtin = true, kernel = kernel,
    has_energy = true, has_prox = true, elementwise = name ~= "softmax",
  }, BuiltinMT)
end

-- ---------------------------------------------------------------------------------------
-- activations defined in Lua

local User = {}
local UserMT = {__index = User, __name = "blua.activation", __tostring = describe}

-- σ(z) through the user's function, on a private copy unless the caller owns z (the function
-- may work in place), checking that a tensor of the same shape comes back.
local function fwd(self, z, owned)
  local s = self._forward(owned and z or z:clone())
  if not blua.isTensor(s) or not same_shape(s, z) then
    error(string.format("bad result in 'forward': activation '%s' returned %s for an input of size %s", self.name,
      blua.isTensor(s) and "a tensor of size " .. shape(s) or "a " .. type(s), shape(z)), 3)
  end
  return s
end

local function deliver(result, out)
  if out then return out:copy(result) end
  return result
end

function User:forward(z, out)
  check_tensor(z, "forward", "z")
  return deliver(fwd(self, z), out)
end

-- prox of μΦ from σ alone: u = σ(z*) where μ z* + σ(z*) = v, by the bracketing solver of the
-- C core (blua/prox.h), which asks for σ on whole tensors of trial points.
local PROX_ITERATIONS = 300

local function derived_prox(self, v, mu)
  local s0 = fwd(self, v:clone():zero(), true)
  local solver <close> = C.prox_solver(v, s0, mu)
  for _ = 1, PROX_ITERATIONS do
    local z = solver:trial()
    if solver:update(fwd(self, z, true)) == 0 then break end
  end
  return solver:result()
end

function User:prox(v, mu, out)
  check_tensor(v, "prox", "v")
  check_mu("prox", mu)
  local u
  if self._prox then
    u = self._prox(v:clone(), mu)
    if not blua.isTensor(u) or not same_shape(u, v) then
      error(string.format("bad result in 'prox': activation '%s' returned %s for an input of size %s", self.name,
        blua.isTensor(u) and "a tensor of size " .. shape(u) or "a " .. type(u), shape(v)), 2)
    end
  else
    u = derived_prox(self, v, mu)
  end
  return deliver(u, out)
end

local function no_energy(self, what)
  error(string.format("%s not available for activation '%s' (define psi and conj)", what, self.name), 3)
end

local function number_result(self, what, x)
  if type(x) ~= "number" then
    error(string.format("bad result in '%s': activation '%s' returned a %s, number expected", what, self.name, type(x)), 3)
  end
  return x
end

function User:psi(u)
  if not self._psi then no_energy(self, "psi") end
  check_tensor(u, "psi", "u")
  return number_result(self, "psi", self._psi(u:clone()))
end

function User:conj(z)
  if not self._conj then no_energy(self, "conj") end
  check_tensor(z, "conj", "z")
  return number_result(self, "conj", self._conj(z:clone()))
end

-- Φ(y) + Φ*(z) − ⟨y, z⟩ composed from the user's psi and conj (no stable form is known here).
function User:bregman(y, z)
  if not self.has_energy then no_energy(self, "bregman") end
  check_pair("bregman", y, z)
  local p = number_result(self, "psi", self._psi(y:clone()))
  if p == math.huge then return p end
  return p + 0.5 * y:dot(y) + number_result(self, "conj", self._conj(z:clone())) - y:dot(z)
end

function User:bregman_grad(y, z, out)
  check_pair("bregman_grad", y, z)
  local s = fwd(self, z)
  if out then return out:copy(s):sub(y) end
  return s:sub(y)
end

function User:project(v, out)
  check_tensor(v, "project", "v")
  if self._project then return deliver(self._project(v:clone()), out) end
  return deliver(out and v or v:clone(), out)
end

-- σ' by central differences with steps 1e-3 max(1, |z|), divided by the step actually taken
-- after rounding (exact slope 1 where σ is the identity).
local function numeric_derivative(self, z)
  local h = z:clone():abs():cmax(1):mul(1e-3)
  local zp, zm = z + h, z - h
  local d = fwd(self, zp):sub(fwd(self, zm))
  return d:cdiv(zp:sub(zm))
end

function User:derivative(z, out)
  check_tensor(z, "derivative", "z")
  if self._derivative then return deliver(self._derivative(z:clone()), out) end
  return deliver(numeric_derivative(self, z), out)
end

-- 1 where the slope is 1 (to 1e-3), from derivative, unless the definition gives linear_mask.
function User:linear_mask(z, out)
  check_tensor(z, "linear_mask", "z")
  if self._linear_mask then return deliver(self._linear_mask(z:clone()), out) end
  local d = self._derivative and self._derivative(z:clone()) or numeric_derivative(self, z)
  return deliver(d:ge(1 - 1e-3), out)
end

function User:xstep_bregman(x, z, g, mu)
  check_mu("xstep_bregman", mu)
  local v = C.xstep_bregman_point(x:clone(), x, z, g, mu)
  return x:copy(self:prox(v, mu))
end

function User:xstep_lifted(x, z, g, mu, gamma)
  local v = C.xstep_lifted_point(x:clone(), x, z, g, mu, gamma)
  return x:copy(self:project(v))
end

-- The L1 term as a transformation of the point (docs/design.md): a shift by t when the range
-- of σ is one-signed, else a soft-threshold by t (then σ(0) = 0, so the prox keeps signs).
local function l1_transform(self, v, t)
  local probe = fwd(self, blua.tensor{{0}, {-1e6}, {1e6}}, true)
  local at0, low, high = probe:get(1, 1), probe:get(2, 1), probe:get(3, 1)
  if low >= 0 then return v:clone():add(-t) end
  if high <= 0 then return v:clone():add(t) end
  if at0 ~= 0 then
    error(string.format("bad penalty in 'prox_l1': activation '%s' has forward(0) = %g and a range of both signs; "
      .. "an L1 penalty needs forward(0) = 0 or a one-signed range", self.name, at0), 3)
  end
  local magnitude = v:clone():abs():add(-t):cmax(0)
  return v:clone():sign():cmul(magnitude)
end

function User:prox_l1(v, mu, alpha, out)
  check_tensor(v, "prox_l1", "v")
  check_mu("prox_l1", mu)
  if type(alpha) ~= "number" or not (alpha >= 0 and alpha < math.huge) then
    error(string.format("bad penalty in 'prox_l1': alpha must be non-negative and finite, got %s", tostring(alpha)), 2)
  end
  return self:prox(l1_transform(self, v, mu * alpha), mu, out)
end

function User:project_l1(v, t, out)
  check_tensor(v, "project_l1", "v")
  return self:project(l1_transform(self, v, t), out)
end

-- ---------------------------------------------------------------------------------------
-- checks of a definition

-- Sample points: a grid of step 0.01 on [-6, 6], quasi-random points (Weyl sequence, so the
-- check does not draw from the seeded generator), and a few large magnitudes.
local function sample_points()
  local pts = {}
  for i = -600, 600 do pts[#pts + 1] = i / 100 end
  local phi = (math.sqrt(5) - 1) / 2
  for k = 1, 500 do
    local u = (k * phi) % 1
    pts[#pts + 1] = 16 * u - 8
    pts[#pts + 1] = math.tan((u - 0.5) * 3.1) -- heavy tails, up to about ±48
  end
  for _, x in ipairs{10, 20, 50, 100, 1000} do
    pts[#pts + 1] = x
    pts[#pts + 1] = -x
  end
  table.sort(pts)
  local z = blua.zeros(#pts, 1)
  for i, x in ipairs(pts) do z:set(i, 1, x) end
  return z
end

local function refuse(name, fmt, ...)
  error(string.format("not proximal in 'activation.define': activation '%s' %s (a proximal activation is "
    .. "non-decreasing and 1-Lipschitz, e.g. relu, sigmoid, tanh; swish, GELU and hard-shrink are not)",
    name, string.format(fmt, ...)), 4)
end

-- σ must be non-decreasing and 1-Lipschitz between neighbouring sample points, up to float
-- rounding of its values.
local function check_proximal(obj)
  local z = sample_points()
  local s = fwd(obj, z)
  local n = z:size(1)
  local zs, ss = {}, {}
  for i = 1, n do
    zs[i], ss[i] = z:get(i, 1), s:get(i, 1)
    if ss[i] ~= ss[i] or math.abs(ss[i]) == math.huge then
      refuse(obj.name, "has a non-finite value: forward(%.6g) = %s", zs[i], tostring(ss[i]))
    end
  end
  for i = 1, n - 1 do
    local dz, ds = zs[i + 1] - zs[i], ss[i + 1] - ss[i]
    local tol = 4e-6 * (1 + math.max(math.abs(ss[i]), math.abs(ss[i + 1])))
    if dz > 0 then
      if ds < -tol then
        refuse(obj.name, "is not non-decreasing: forward(%.6g) = %.6g > forward(%.6g) = %.6g",
          zs[i], ss[i], zs[i + 1], ss[i + 1])
      end
      if ds > dz * (1 + 1e-4) + tol then
        refuse(obj.name, "is not 1-Lipschitz: slope %.6g between z = %.6g and z = %.6g", ds / dz, zs[i], zs[i + 1])
      end
    end
  end
  return z, s
end

-- A given prox must agree with forward: u = prox(v, μ) satisfies u = σ((v − u)/μ).
local function check_prox(obj, z)
  for _, mu in ipairs{0.5, 2} do
    local v = z:clone():clamp(-50, 50)
    local u = obj:prox(v, mu)
    local back = fwd(obj, v:clone():sub(u):div(mu), true)
    local err = back:sub(u):abs()
    local scale = v:clone():abs():add(1)
    local worst, at = 0, 1
    local e = err:cdiv(scale)
    for i = 1, e:size(1) do
      if e:get(i, 1) > worst then worst, at = e:get(i, 1), i end
    end
    if worst > 1e-3 then
      error(string.format("bad prox in 'activation.define': prox of '%s' does not match forward at v = %.6g, "
        .. "mu = %g: u = %.6g but forward((v - u)/mu) = %.6g", obj.name, v:get(at, 1), mu, u:get(at, 1),
        fwd(obj, blua.tensor{(v:get(at, 1) - u:get(at, 1)) / mu}, true):get(1)), 3)
    end
  end
end

-- Given psi and conj must satisfy Fenchel–Young with equality at y = σ(z): B(σ(z), z) = 0.
local function check_energy(obj)
  local z = blua.zeros(1201, 1)
  for i = 1, 1201 do z:set(i, 1, (i - 601) / 100) end
  local s = fwd(obj, z)
  local psi, conj = obj:psi(s), obj:conj(z)
  local half, inner = 0.5 * s:dot(s), s:dot(z)
  local b = psi + half + conj - inner
  local scale = math.abs(psi) + half + math.abs(conj) + math.abs(inner)
  if not (math.abs(b) <= 1e-4 * scale + 1e-3) then
    error(string.format("bad energy in 'activation.define': psi and conj of '%s' do not match forward: "
      .. "sum of B(forward(z), z) over z in [-6, 6] is %.6g, should be 0 (psi = %.6g, conj = %.6g)",
      obj.name, b, psi, conj), 3)
  end
end

local spec_keys = {"name", "forward", "psi", "conj", "prox", "derivative", "project", "linear_mask"}

--- blua.activation.define{name =, forward =, psi =, conj =, prox =, derivative =, project =,
-- linear_mask =}: a user activation, vectorised over tensors. Only forward (tensor → tensor,
-- the same shape) is required; the functions get a private copy of their input and may work
-- in place. psi/conj: tensor → number (sums); prox(v, mu) → tensor; project, derivative and
-- linear_mask: tensor → tensor. Refused unless forward is non-decreasing and 1-Lipschitz on
-- sample points; a given prox, psi and conj are checked against forward.
function M.define(spec)
  if type(spec) ~= "table" then
    error(string.format("bad argument in 'activation.define': a table expected, got %s", type(spec)), 2)
  end
  local known = {}
  for _, k in ipairs(spec_keys) do known[k] = true end
  for k in pairs(spec) do
    if not known[k] then
      error(string.format("unknown field in 'activation.define': '%s' (accepted: %s)", tostring(k),
        table.concat(spec_keys, ", ")), 2)
    end
  end
  local name = spec.name
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    error(string.format("bad name in 'activation.define': an identifier expected, got %s", tostring(name)), 2)
  end
  if kinds[name] then
    error(string.format("bad name in 'activation.define': '%s' is a built-in activation and cannot be redefined", name), 2)
  end
  for _, k in ipairs(spec_keys) do
    if k ~= "name" and spec[k] ~= nil and type(spec[k]) ~= "function" then
      error(string.format("bad field in 'activation.define': %s must be a function, got %s", k, type(spec[k])), 2)
    end
  end
  if not spec.forward then error("missing field in 'activation.define': forward (tensor -> tensor) is required", 2) end
  local obj = setmetatable({
    name = name, params = {}, builtin = false, elementwise = true,
    has_energy = spec.psi ~= nil and spec.conj ~= nil, has_prox = spec.prox ~= nil,
    _forward = spec.forward, _psi = spec.psi, _conj = spec.conj, _prox = spec.prox,
    _derivative = spec.derivative, _project = spec.project, _linear_mask = spec.linear_mask,
  }, UserMT)
  local z = check_proximal(obj)
  if spec.prox then check_prox(obj, z) end
  if obj.has_energy then check_energy(obj) end
  defined[name] = obj
  return obj
end

--- blua.activation.get(name [, params]) → activation object. name may also be an activation
-- object (returned as it is). Parameters: leaky_relu {slope = 0.01} in (0, 1], clip
-- {lo = -1, hi = 1} with lo < hi, soft_threshold {lambda = 0.1} > 0.
function M.get(name, params)
  local mt = getmetatable(name)
  if mt == BuiltinMT or mt == UserMT then return name end
  if type(name) ~= "string" then
    error(string.format("bad argument in 'activation.get': a name expected, got %s", type(name)), 2)
  end
  if kinds[name] then return make_builtin(name, params, 3) end
  local obj = defined[name]
  if obj then
    if params ~= nil and (type(params) ~= "table" or next(params) ~= nil) then
      error(string.format("unknown parameter in 'activation.get': activation '%s' takes no parameters", name), 2)
    end
    return obj
  end
  error(string.format("unknown activation in 'activation.get': '%s' (accepted: %s)", name,
    table.concat(M.list(), ", ")), 2)
end

--- True for the objects get and define return.
function M.is_activation(x)
  local mt = getmetatable(x)
  return mt == BuiltinMT or mt == UserMT
end

--- (γ/2) ‖y − z‖², the classical lifted model's penalty.
function M.quadratic_penalty(y, z, gamma)
  return C.quadratic_penalty(y, z, gamma)
end

return M
