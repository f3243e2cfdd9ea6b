-- Networks: feed-forward stacks of lifted blocks, each a linear map followed by a proximal
-- activation (docs/design.md, "Blocks and operators"). Rows are samples:
--   Z_l = A_l(X_{l-1}) + b_l,   X_l = σ_l(Z_l).
-- A dense block is one affine layer, Z_l = X_{l-1} W_l + 1 b_l^T with W_l n_{l-1} x n_l; other
-- blocks are chains of convolutions, poolings and affine layers with no activation between.
--
-- A network is plain data (sizes, activation specs, weight and bias tensors, operator
-- records) with a metatable, so blua.save stores it and blua.load brings it back; activation
-- and block objects are made from that data on use.
local blua = require "blua"
local layers = require "blua.nn.layers"
local block = require "blua.nn.block"

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
local block_cache = setmetatable({}, {__mode = "k"})

local function forget(net)
  act_cache[net], block_cache[net] = nil, nil
end

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

--- The lifted block of layer l: its linear map, adjoint, parameter gradient and norm.
function MLP:block(l)
  local cache = block_cache[self]
  if not cache then
    cache = {}
    block_cache[self] = cache
  end
  local b = cache[l]
  if not b then
    if not self.activations[l] then error(string.format("layer %d out of range 1..%d", l, #self.activations), 2) end
    b = block.new(self, l)
    cache[l] = b
  end
  return b
end

function MLP:nLayers() return #self.activations end

-- {W =, b =, activation =} of dense layer l (the tensors are the network's own); for any
-- other block {ops = its operator records, activation =}.
function MLP:layer(l)
  if self.ops and self.ops[l] then return {ops = self.ops[l], activation = self:activation(l)} end
  return {W = self.W[l], b = self.b[l], activation = self:activation(l)}
end

-- A flat list of parameter tensors, block by block: W1, b1, W2, b2, ... for dense blocks,
-- each operator's weight and bias for the others.
function MLP:parameters()
  local p = {}
  for l = 1, self:nLayers() do
    for _, t in ipairs(self:block(l):params()) do p[#p + 1] = t end
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
  for l = 1, self:nLayers() do
    Z[l] = self:block(l):forward(X[l - 1], blua.zeros(n, self.sizes[l + 1]))
    X[l] = self:activation(l):forward(Z[l])
  end
  return Z, X
end

-- The network's output σ_L(Z_L) (class probabilities for a softmax output), one row per sample.
function MLP:forward(x)
  local _, X = self:forwardAll(x)
  return X[self:nLayers()]
end

-- The output layer's pre-activations (scores before softmax).
function MLP:scores(x)
  local Z = self:forwardAll(x)
  return Z[self:nLayers()]
end

-- 1-based predicted class per row, as an N x 1 tensor.
-- A single output has no classes to choose from (its argmax is always 1): an error.
function MLP:predict(x)
  if self.sizes[#self.sizes] == 1 then
    error("blua.nn: predict picks one of several classes, and this network has 1 output; use net:forward(x) for its values", 2)
  end
  return self:scores(x):argmax(2)
end

-- A deep copy of plain data, tensors cloned (operator records, layer descriptions).
local function copy(v)
  if blua.isTensor(v) then return v:clone() end
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = copy(x) end
  return c
end

function MLP:clone()
  local c = {sizes = {}, activations = {}, W = {}, b = {}, init = self.init}
  for i, s in ipairs(self.sizes) do c.sizes[i] = s end
  for l = 1, self:nLayers() do
    c.activations[l] = act_spec(self.activations[l], "clone")
    if self.W[l] then c.W[l] = self.W[l]:clone() end
    if self.b[l] then c.b[l] = self.b[l]:clone() end
  end
  c.ops, c.layers, c.shape = copy(self.ops), copy(self.layers), copy(self.shape)
  return setmetatable(c, MLP)
end

local function count(ts)
  local n = 0
  for _, t in ipairs(ts) do n = n + t:nElement() end
  return n
end

function MLP:__tostring()
  local parts = {}
  if self.layers then
    -- layer by layer, as built with Sequential; [l] is the lifted block a layer belongs to
    for i, d in ipairs(self.layers) do
      parts[#parts + 1] = string.format("  %-5s %-5s %-38s %s -> %s%s", "(" .. i .. ")", d.block and "[" .. d.block .. "]" or "",
        d.name, layers.shape_string(d.in_shape), layers.shape_string(d.out_shape),
        d.params > 0 and string.format(", %d parameters", d.params) or "")
    end
  else
    for l = 1, self:nLayers() do
      local a = self.activations[l]
      local name = type(a) == "string" and a or type(a) == "table" and a.name or "?"
      parts[#parts + 1] = string.format("  (%d) %d -> %d, %s, %d parameters", l, self.sizes[l], self.sizes[l + 1],
        tostring(name), count(self:block(l):params()))
    end
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
-- or blua.nn.mlp({784, 64, 10}, {activation = "tanh"}): the options in a table of their own.
-- init defaults to "he" with a softmax output and to "glorot" otherwise.
-- activation: a name, an activation object, or a list with one per hidden layer.
-- Weights are drawn from the seeded generator (blua.manualSeed), biases start at zero.
function nn.mlp(spec, opts)
  if type(spec) ~= "table" then error("blua.nn.mlp: a table of layer sizes expected", 2) end
  if opts ~= nil then -- (a second table must not be ignored: its options would silently not apply)
    if type(opts) ~= "table" then error("blua.nn.mlp: a table of options expected as argument 2, got " .. type(opts), 2) end
    local merged = {}
    for k, v in pairs(spec) do merged[k] = v end
    for k, v in pairs(opts) do
      if type(k) ~= "string" then error("blua.nn.mlp: layer sizes go in the first table, options in the second", 2) end
      if merged[k] ~= nil then error(string.format("blua.nn.mlp: option '%s' given in both tables", k), 2) end
      merged[k] = v
    end
    spec = merged
  end
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
  -- He suits classifiers (softmax output) with ReLU layers; a regression or autoencoder
  -- output (identity, sigmoid, ...) underfits with it, so those default to Glorot.
  local init = spec.init or (acts[L].name == "softmax" and "he" or "glorot")
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
--     :add(blua.nn.Reshape(1, 28, 28))
--     :add(blua.nn.Conv2d(1, 8, 5, {padding = 2})):add("relu")
--     :add(blua.nn.AvgPool2d(2))
--     :add(blua.nn.Flatten())
--     :add(blua.nn.Linear(8 * 14 * 14, 10)):add("softmax")
-- Linear layers with no activation between them form one lifted block, so a pooling needs no
-- auxiliary variable of its own; the activation ends the block. A Linear directly after a
-- Linear keeps an identity activation between them (two blocks), as Sequential always did;
-- a block that ends without an activation keeps the identity. Weights use He initialisation.

nn.Linear = layers.Linear
nn.Conv2d = layers.Conv2d
nn.AvgPool2d = layers.AvgPool2d
nn.Reshape = layers.Reshape
nn.Flatten = layers.Flatten

--- blua.nn.Sequential(): an empty network to build with :add.
function nn.Sequential(...)
  if select("#", ...) > 0 then error("blua.nn.Sequential: no arguments expected (add layers with :add)", 2) end
  return setmetatable({sizes = {}, activations = {}, W = {}, b = {}, init = "he", layers = {}}, MLP)
end

local function describe_layer(self, name, in_shape, out_shape, params, blk)
  self.layers = self.layers or {}
  self.layers[#self.layers + 1] = {name = name, in_shape = in_shape, out_shape = out_shape, params = params, block = blk}
end

-- Adds linear module m: joins the open block (no activation yet) or opens a new one.
local function add_linear(self, m)
  local L = #self.activations
  local s = self.shape
  local o = layers.out_shape(m, s) -- errors name the layer and both shapes
  if not s then
    s = m.kind == "linear" and {m.n_in, 1, 1} or s
    self.sizes[1] = layers.size_of(s)
  end
  local rec = layers.record(m, s, o)
  local open = self.open -- the block still waiting for its activation
  local last = open and (self.ops and self.ops[L] and self.ops[L][#self.ops[L]] or {kind = "linear"})
  if open and not (m.kind == "linear" and last.kind == "linear") then
    -- join block L: it becomes (or stays) a chain of operator records
    self.ops = self.ops or {}
    if not self.ops[L] then
      local W, b = self.W[L], self.b[L]
      self.ops[L] = {{kind = "linear", in_shape = {W:size(1), 1, 1}, out_shape = {W:size(2), 1, 1}, weight = W, bias = b}}
      self.W[L], self.b[L] = nil, nil
    end
    table.insert(self.ops[L], rec)
  else
    -- a new block L + 1, with the identity until an activation follows
    L = L + 1
    self.activations[L] = {name = "identity", params = {}}
    if m.kind == "linear" then
      self.W[L], self.b[L] = rec.weight, rec.bias
    else
      self.ops = self.ops or {}
      self.ops[L] = {rec}
    end
  end
  self.sizes[L + 1] = layers.size_of(o)
  self.shape = o
  self.open = true
  describe_layer(self, layers.describe(m), s, o, rec and count(layers.record_params(rec)) or 0, L)
  forget(self)
end

--- net:add(module): module is a layer (blua.nn.Linear, Conv2d, AvgPool2d, Reshape, Flatten)
-- or an activation (a name or an activation object) that ends the block before it. Returns
-- net, so calls chain. Shapes are checked here, with errors naming the layer.
function MLP:add(module)
  if getmetatable(module) == layers.Module then
    if module.kind == "reshape" or module.kind == "flatten" then
      local s = self.shape
      local o = layers.out_shape(module, s)
      if not s then self.sizes[1] = layers.size_of(o) end
      self.shape = o
      describe_layer(self, layers.describe(module), s or o, o, 0)
      return self
    end
    add_linear(self, module)
    return self
  end
  local L = #self.activations
  if L == 0 then error("blua.nn.Sequential: add a Linear before its activation", 2) end
  if not self.open then
    error(string.format("blua.nn.Sequential: layer %d already has the activation '%s'", L, self.activations[L].name), 2)
  end
  self.activations[L] = act_spec(module, "layer " .. L)
  forget(self)
  resolve(self, L, 2)
  self.open = nil
  local s = self.shape
  describe_layer(self, self.activations[L].name, s, s, 0, L)
  return self
end

-- An argument past the last is an error, not dropped (Torch's net:forward(x, target), a second
-- options table to blua.nn.mlp).
blua._refuseExtra(MLP, "net:", {activation = "l", block = "l", nLayers = "", layer = "l", parameters = "",
  nParameters = "", forwardAll = "x", forward = "x", scores = "x", predict = "x", clone = "", add = "module"})
blua._refuseExtra(nn, "blua.nn.", {mlp = "spec [, opts]"})

blua.register_type("blua.nn.MLP", MLP)

return nn
