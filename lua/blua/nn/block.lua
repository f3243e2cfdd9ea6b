-- Lifted blocks: the linear part of a network between two activations (docs/design.md,
-- "Blocks and operators"). A block maps its input rows X_{l-1} to pre-activations
-- Z_l = A_l(X_{l-1}) + biases, and the trainers need from it only
--   forward(x, z)               z = A(x) + b
--   adjoint(r, g, alpha)        g = alpha A*(r)       (the X-step's coupling term, back-prop's delta)
--   wgrad(x, r, scale, grads)   grads = scale ∂⟨r, A(x; θ)⟩/∂θ, in the order of params()
--   norm(iters, start)          ‖A‖₂ by power iteration, warm-started from `start` (out-size)
-- A dense block (one Linear) runs the MLP kernels it always ran, bit for bit; any other block
-- is a chain of operator records run by the C operators of blua.op.
local blua = require "blua"
local layers = require "blua.nn.layers"

local block = {}

-- ---------------------------------------------------------------------------------------
-- dense: W is n_in x n_out, b is 1 x n_out

local Dense = {}
Dense.__index = Dense

function Dense:params() return {self.net.W[self.l], self.net.b[self.l]} end
function Dense:weights() return self.net.W[self.l] end

function Dense:forward(x, z) return blua._affine(z, x, self.net.W[self.l], self.net.b[self.l]) end

function Dense:adjoint(r, g, alpha) return g:addmm(0, alpha or 1, r, self.net.W[self.l]:t()) end

function Dense:wgrad(x, r, scale, grads)
  grads[1]:addmm(0, scale, x:t(), r)
  grads[2]:zero():add(scale, r:sumRows())
end

function Dense:norm(iters, start) return blua.spectralNorm(self.net.W[self.l], iters, start) end

local dense_ops = setmetatable({}, {__mode = "k"}) -- net -> {[l] = {op, clone, ...}}

-- `parts` operators of blua.op computing this block (each with workspaces of its own, for
-- parts of a batch run side by side); a dense operator runs the same products as the kernels.
function Dense:ops(parts)
  if blua.op == nil then return nil end
  local per_net = dense_ops[self.net] or {}
  dense_ops[self.net] = per_net
  local list = per_net[self.l]
  if not list or list.n_in ~= self.n_in or list.n_out ~= self.n_out then
    list = {n_in = self.n_in, n_out = self.n_out}
    per_net[self.l] = list
  end
  while #list < parts do list[#list + 1] = blua.op.dense(self.n_in, self.n_out) end
  return list
end

-- ---------------------------------------------------------------------------------------
-- chain: operator records run by a backend (blua.op, or a reference for tests)

local Chain = {}
Chain.__index = Chain

function Chain:params()
  local p = {}
  for _, r in ipairs(self.net.ops[self.l]) do
    for _, t in ipairs(layers.record_params(r)) do p[#p + 1] = t end
  end
  return p
end

local handles = setmetatable({}, {__mode = "k"}) -- records list -> {backend, handle}
local c_backend_ref -- blua.op's backend (below)

function Chain:handle()
  local records = self.net.ops[self.l]
  local backend = block.backend()
  local h = handles[records]
  if not h or h.backend ~= backend then
    h = {backend = backend, op = backend.build(records)}
    handles[records] = h
  end
  return h.op, backend
end

-- `parts` C operators computing this block, the first the one the other methods use, the
-- rest clones with workspaces of their own; nil when the chain runs on another backend.
function Chain:ops(parts)
  local op, be = self:handle()
  if be ~= c_backend_ref then return nil end
  local h = handles[self.net.ops[self.l]]
  h.clones = h.clones or {op}
  while #h.clones < parts do h.clones[#h.clones + 1] = op:clone() end
  return h.clones
end

function Chain:forward(x, z)
  local op, be = self:handle()
  -- the operators read rows of the input in place; a transposed or strided view (a user's
  -- data set) is copied once here, as the dense layers' BLAS path takes it as it is
  be.forward(op, self:params(), x:contiguous(), z)
  return z
end

function Chain:adjoint(r, g, alpha)
  local op, be = self:handle()
  be.adjoint(op, self:params(), r, g, alpha or 1)
  return g
end

function Chain:wgrad(x, r, scale, grads)
  local op, be = self:handle()
  be.wgrad(op, self:params(), x, r, grads, scale)
end

function Chain:norm(iters, start)
  local op, be = self:handle()
  return be.norm(op, self:params(), iters, start)
end

-- ---------------------------------------------------------------------------------------
-- backends

-- blua.op (runtime/lop.c): C operators. Chains are built from the records, with a reshape
-- inserted where one member's output is read in another shape by the next.
local c_backend = {}

local function c_op(r)
  local op = blua.op
  if r.kind == "linear" then return op.dense(r.in_shape[1] * r.in_shape[2] * r.in_shape[3], r.out_shape[1]) end
  local s = r.in_shape
  if r.kind == "conv2d" then
    return op.conv2d{cin = s[1], h = s[2], w = s[3], cout = r.out_shape[1], k = r.k, stride = r.stride,
      padding = r.padding}
  end
  if r.kind == "avgpool2d" then return op.avgpool2d{c = s[1], h = s[2], w = s[3], k = r.k, stride = r.stride} end
  error("unknown operator record '" .. tostring(r.kind) .. "'")
end

local function same(a, b) return a[1] == b[1] and a[2] == b[2] and a[3] == b[3] end

function c_backend.build(records)
  local members, shape = {}, nil
  for _, r in ipairs(records) do
    if shape and not same(shape, r.in_shape) then members[#members + 1] = blua.op.reshape(shape, r.in_shape) end
    members[#members + 1] = c_op(r)
    shape = r.out_shape
  end
  if #members == 1 then return members[1] end
  return blua.op.chain(members)
end

function c_backend.forward(op, params, x, y) op:forward(x, params, y) end
function c_backend.adjoint(op, params, r, g, alpha) op:adjoint(r, params, g, alpha, 0) end
function c_backend.wgrad(op, params, x, r, grads, scale) op:wgrad(x, r, params, grads, scale, 0) end
function c_backend.norm(op, params, iters, start) return op:norm(params, iters, start) end

c_backend_ref = c_backend

local override -- a backend set by block.use_backend (tests compare against a reference)

function block.backend()
  if override then return override end
  if blua.op == nil then
    error("this network needs the C operators (blua.op), which this build of blua lacks", 0)
  end
  return c_backend
end

--- Runs chains on `backend` (a table like c_backend) instead of blua.op; nil restores it.
function block.use_backend(backend) override = backend end

-- ---------------------------------------------------------------------------------------

--- The block object of layer l of net (fields net, l, dense, n_in, n_out).
function block.new(net, l)
  local mt = net.ops and net.ops[l] and Chain or Dense
  return setmetatable({net = net, l = l, dense = mt == Dense, n_in = net.sizes[l], n_out = net.sizes[l + 1]}, mt)
end

return block
