-- Networks: feed-forward stacks of affine layers, each followed by a proximal activation.
-- Rows are samples: Z_l = X_{l-1} W_l + 1 b_l^T, X_l = σ_l(Z_l), W_l is n_{l-1} x n_l.
--
-- A network is plain data (sizes, activation specs, weight and bias tensors) with a
-- metatable, so blua.save stores it and blua.load brings it back; activation objects are
-- looked up from their specs on use.
local blua = require "blua"

local nn = {}

local MLP = {}
MLP.__index = MLP
MLP.__name = "blua.nn.MLP"
nn.MLP = MLP

-- The spec {name =, params =} of an activation given by name, object or spec.
local function act_spec(a, what)
  if type(a) == "string" then return {name = a, params = {}} end
  if type(a) == "table" and type(a.name) == "string" then
    local params = {}
    for k, v in pairs(a.params or {}) do params[k] = v end
    return {name = a.name, params = params}
  end
  error(string.format("bad activation for %s: a name or an activation object expected, got %s", what, type(a)), 3)
end

-- Activation objects made from the specs, per network and layer, each with the spec it was
-- made from: net.activations is a public field, so an entry replaced or edited in place (a new
-- name or params) makes a new object on the next use instead of a stale one. Activations
-- defined in Lua are looked up by name on every use (a table lookup), so redefining one
-- takes effect at once.
local act_cache = setmetatable({}, {__mode = "k"})

local function same_spec(hit, spec)
  if hit.spec ~= spec or hit.name ~= spec.name then return false end
  local params = spec.params or {}
  for k, v in pairs(params) do
    if hit.params[k] ~= v then return false end
  end
  for k in pairs(hit.params) do
    if params[k] == nil then return false end
  end
  return true
end

-- Resolves layer l's activation now, so a typo fails at the caller's line (level) and not in
-- the first epoch.
local function resolve(net, l, level)
  local ok, err = pcall(net.activation, net, l)
  if not ok then error((tostring(err):gsub("^[^\n]-%.lua:%d+: ", "")), level + 1) end
end

-- The activation object of layer l (1-based; the last layer's is the output activation).
function MLP:activation(l)
  local spec = self.activations[l]
  if spec == nil then error(string.format("layer %s out of range 1..%d", tostring(l), #self.activations), 2) end
  if type(spec) ~= "table" or getmetatable(spec) ~= nil then
    -- a name or an activation object set by hand: kept as a plain spec, so blua.save stores it
    local ok, s = pcall(act_spec, spec, "layer " .. l)
    if not ok then error(string.format("bad activation in 'net.activations[%d]': a name or an activation object expected, got %s", l, type(spec)), 2) end
    spec = s
    self.activations[l] = spec
  end
  local cache = act_cache[self]
  if not cache then
    cache = {}
    act_cache[self] = cache
  end
  local hit = cache[l]
  if hit and same_spec(hit, spec) then return hit.act end
  local params = {}
  for k, v in pairs(spec.params or {}) do params[k] = v end
  local a = blua.activation.get(spec.name, spec.params)
  cache[l] = a.builtin and {act = a, spec = spec, name = spec.name, params = params} or nil
  return a
end

function MLP:nLayers() return #self.W end

-- {W =, b =, activation =} of layer l; the tensors are the network's own.
function MLP:layer(l)
  return {W = self.W[l], b = self.b[l], activation = self:activation(l)}
end

-- A flat list of parameter tensors W1, b1, W2, b2, ...
function MLP:parameters()
  local p = {}
  for l = 1, #self.W do
    p[#p + 1] = self.W[l]
    p[#p + 1] = self.b[l]
  end
  return p
end

function MLP:nParameters()
  local n = 0
  for _, t in ipairs(self:parameters()) do n = n + t:nElement() end
  return n
end

local function check_input(self, x, fname)
  if not blua.isTensor(x) or x:dim() ~= 2 or x:size(2) ~= self.sizes[1] then
    local got = blua.isTensor(x) and table.concat({x:size()}, "x") or type(x)
    error(string.format("size mismatch in '%s': input %s, network expects N x %d", fname, got, self.sizes[1]), 3)
  end
end

-- Pre-activations Z and activations X of every layer: X[0] = x, Z[l], X[l] = σ_l(Z[l]).
function MLP:forwardAll(x)
  check_input(self, x, "forward")
  local n = x:size(1)
  local Z, X = {}, {[0] = x}
  for l = 1, #self.W do
    Z[l] = blua._affine(blua.zeros(n, self.sizes[l + 1]), X[l - 1], self.W[l], self.b[l])
    X[l] = self:activation(l):forward(Z[l])
  end
  return Z, X
end

-- The network's output σ_L(Z_L) (class probabilities for a softmax output), one row per sample.
function MLP:forward(x)
  local _, X = self:forwardAll(x)
  return X[#self.W]
end

-- The output layer's pre-activations (scores before softmax).
function MLP:scores(x)
  local Z = self:forwardAll(x)
  return Z[#self.W]
end

-- 1-based predicted class per row, as an N x 1 tensor.
-- A single output has no classes to choose from (its argmax is always 1): an error.
function MLP:predict(x)
  if self.sizes[#self.sizes] == 1 then
    error("blua.nn: predict picks one of several classes, and this network has 1 output; use net:forward(x) for its values", 2)
  end
  return self:scores(x):argmax(2)
end

function MLP:clone()
  local c = {sizes = {}, activations = {}, W = {}, b = {}, init = self.init}
  for i, s in ipairs(self.sizes) do c.sizes[i] = s end
  for l = 1, #self.W do
    c.activations[l] = act_spec(self.activations[l], "clone")
    c.W[l] = self.W[l]:clone()
    c.b[l] = self.b[l]:clone()
  end
  return setmetatable(c, MLP)
end

function MLP:__tostring()
  local parts = {}
  for l = 1, #self.W do
    local a = self.activations[l]
    local name = type(a) == "string" and a or type(a) == "table" and a.name or "?"
    parts[#parts + 1] = string.format("  (%d) %d -> %d, %s", l, self.sizes[l], self.sizes[l + 1], tostring(name))
  end
  return string.format("blua.nn.MLP %s, %d parameters\n%s",
    table.concat(self.sizes, "-"), self:nParameters(), table.concat(parts, "\n"))
end

local inits = {
  -- He: variance 2/fan_in, for ReLU-like layers; Glorot: variance 2/(fan_in + fan_out).
  he = function(fan_in) return math.sqrt(2 / fan_in) end,
  glorot = function(fan_in, fan_out) return math.sqrt(2 / (fan_in + fan_out)) end,
}

--- blua.nn.mlp{784, 64, 64, 64, 10, activation = "relu", output = "softmax", init = "he"}
-- activation: a name, an activation object, or a list with one per hidden layer.
-- Weights are drawn from the seeded generator (blua.manualSeed), biases start at zero.
function nn.mlp(spec)
  if type(spec) ~= "table" then error("blua.nn.mlp: a table of layer sizes expected", 2) end
  local known = {activation = true, output = true, init = true}
  for k in pairs(spec) do
    if type(k) ~= "number" and not known[k] then
      error(string.format("blua.nn.mlp: unknown option '%s' (accepted: activation, init, output)", tostring(k)), 2)
    end
  end
  local sizes = {}
  for i, s in ipairs(spec) do
    if math.type(s) ~= "integer" or s < 1 then
      error(string.format("blua.nn.mlp: layer size %d must be a positive integer, got %s", i, tostring(s)), 2)
    end
    sizes[i] = s
  end
  if #sizes < 2 then error("blua.nn.mlp: at least an input and an output size expected", 2) end
  local L = #sizes - 1
  local hidden = spec.activation or "relu"
  local acts = {}
  local is_list = type(hidden) == "table" and hidden[1] ~= nil
  if is_list and #hidden ~= L - 1 then -- also for a network without hidden layers
    error(string.format("blua.nn.mlp: %d activations given for %d hidden layers", #hidden, L - 1), 2)
  end
  for l = 1, L - 1 do
    local a = hidden
    if is_list then a = hidden[l] end
    acts[l] = act_spec(a, "hidden layer " .. l)
  end
  acts[L] = act_spec(spec.output or "softmax", "the output layer")
  local init = spec.init or "he"
  local scale = inits[init]
  if not scale then error(string.format("blua.nn.mlp: unknown init '%s' (accepted: glorot, he)", tostring(init)), 2) end
  local net = setmetatable({sizes = sizes, activations = acts, W = {}, b = {}, init = init}, MLP)
  for l = 1, L do
    resolve(net, l, 2)
    net.W[l] = blua.randn(sizes[l], sizes[l + 1]):mul(scale(sizes[l], sizes[l + 1]))
    net.b[l] = blua.zeros(1, sizes[l + 1])
  end
  return net
end

-- ---------------------------------------------------------------------------------------
-- Layer by layer, in the style of Torch's nn:
--   local net = blua.nn.Sequential()
--     :add(blua.nn.Linear(784, 64)):add("relu")
--     :add(blua.nn.Linear(64, 10)):add("softmax")
-- The result is an ordinary MLP (every method and trainer applies). An activation follows each
-- Linear; a Linear with none after it keeps the identity. Weights use He initialisation.

local Linear = {}
Linear.__index = Linear

--- blua.nn.Linear(n_in, n_out): an affine layer for Sequential.
function nn.Linear(n_in, n_out)
  local sizes = {n_in, n_out}
  for i = 1, 2 do -- not ipairs: a missing n_out must be reported, not skipped
    local v = sizes[i]
    if math.type(v) ~= "integer" or v < 1 then
      error(string.format("blua.nn.Linear: size %d must be a positive integer, got %s", i, tostring(v)), 2)
    end
  end
  return setmetatable({n_in = n_in, n_out = n_out}, Linear)
end

--- blua.nn.Sequential(): an empty network to build with :add.
function nn.Sequential()
  return setmetatable({sizes = {}, activations = {}, W = {}, b = {}, init = "he"}, MLP)
end

--- net:add(module): module is blua.nn.Linear(n_in, n_out), or an activation (a name or an
-- activation object) for the Linear just added. Returns net, so calls chain.
function MLP:add(module)
  local L = #self.W
  if getmetatable(module) == Linear then
    if L > 0 and module.n_in ~= self.sizes[L + 1] then
      error(string.format("size mismatch in 'add': Linear(%d, %d) after a layer of %d outputs",
        module.n_in, module.n_out, self.sizes[L + 1]), 2)
    end
    if L == 0 then self.sizes[1] = module.n_in end
    self.sizes[L + 2] = module.n_out
    self.W[L + 1] = blua.randn(module.n_in, module.n_out):mul(inits.he(module.n_in, module.n_out))
    self.b[L + 1] = blua.zeros(1, module.n_out)
    self.activations[L + 1] = {name = "identity", params = {}}
    act_cache[self] = nil
    return self
  end
  if L == 0 then error("blua.nn.Sequential: add a Linear before its activation", 2) end
  if self.activations[L].name ~= "identity" then
    error(string.format("blua.nn.Sequential: layer %d already has the activation '%s'", L, self.activations[L].name), 2)
  end
  self.activations[L] = act_spec(module, "layer " .. L)
  act_cache[self] = nil
  resolve(self, L, 2)
  return self
end

blua.register_type("blua.nn.MLP", MLP)

return nn
