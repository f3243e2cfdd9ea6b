-- Back-propagation: the gradient of the mean loss by the chain rule, the baseline the lifted
-- trainers are compared with.
local blua = require "blua"
local lifted = require "blua.train.lifted"  -- (its spare gradient buffers and the C-path test)

local backprop = {}

-- Gradients of the mean loss over the batch into grads (grads[l]: block l's gradient
-- tensors, in the order of its params()); returns the loss. ws holds the batch's scratch
-- tensors Z, X, D (deltas) and G. rows (default: the rows of xb)
-- is the size of the global batch when xb is one share of it. l1 = {[l] = alpha} adds
-- α‖σ_l(z_l)‖₁ per sample to the loss (docs/design.md, "L1 penalties on auxiliary variables").
--
-- shares (default 1): the rows are cut into this many row shares (the layout of
-- loop.share_bounds) whose gradients are summed in share order; the result depends on the
-- shares only, never on the thread count.
--
-- With dense blocks and built-in activations (L1 terms included) the whole pass runs in C
-- (blua._backprop), the shares side by side on the threads; otherwise the shares run one
-- after another. (lifted.c_batch = false forces that path here too, for checks.)
local function c_path(net, l1)
  if not lifted.c_batch then return nil end
  return lifted.dense_builtin(net, l1)
end

-- A network with other blocks (convolutions, pools) runs in C through its operators when
-- every activation is built in, L1 terms included (blua.op.backprop): the shares side by side, each on its own
-- operators with single-threaded kernels, so that a second thread works without a hand-off
-- per kernel.
local function op_path(net, l1, shares)
  if not lifted.c_batch then return nil end
  return lifted.op_path(net, l1, shares)
end

-- The gradient tensors of a dense network as one list (W1, b1, W2, ...), per gradient table.
local flat_grads = setmetatable({}, {__mode = "k"})

function backprop.gradients(net, xb, yb, ws, grads, rows, l1, shares, acts)
  local L = net:nLayers()
  local Z, X, D = ws.Z, ws.X, ws.D
  acts = acts or c_path(net, l1)
  local n = xb:size(1)
  shares = math.max(1, math.min(shares or 1, n))
  if not acts then
    local ops, params
    acts, ops, params = op_path(net, l1, shares)
    if acts then
      local scale = 1 / (rows or n)
      local flat = {}
      for l = 1, L do
        for _, g in ipairs(grads[l]) do flat[#flat + 1] = g end
      end
      return blua.op.backprop(acts, ops, params, xb, yb, Z, X, D, ws.G, scale, shares, flat, l1 and next(l1) and l1 or nil)
        * scale
    end
  else
    local scale = 1 / (rows or n)
    local flat = flat_grads[grads]
    if not flat then
      flat = {}
      for l = 1, L do flat[2 * l - 1], flat[2 * l] = grads[l][1], grads[l][2] end
      flat_grads[grads] = flat
    end
    return blua._backprop(acts, net.W, net.b, xb, yb, Z, X, D, ws.G, scale, shares, flat, lifted.spare_flat(grads, shares),
      l1 and next(l1) and l1 or nil) * scale
  end
  if shares > 1 then
    local parts = {}
    for s, b in ipairs(require("blua.train.loop").share_bounds(n, shares)) do
      local part = {X = {}, Z = {}, G = {}, D = {}}
      for _, key in ipairs{"X", "Z", "G", "D"} do
        for l, t in ipairs(ws[key]) do part[key][l] = t:narrow(1, b[1] + 1, b[2]) end
      end
      parts[s] = {x = xb:narrow(1, b[1] + 1, b[2]), y = yb:narrow(1, b[1] + 1, b[2]), ws = part}
    end
    return backprop.parts_gradients(net, parts, grads, rows or n, l1)
  end
  X[0] = xb
  for l = 1, L do
    net:block(l):forward(X[l - 1], Z[l])
    if l < L then net:activation(l):forward(Z[l], X[l]) end
  end
  local out = net:activation(L)
  local scale = 1 / (rows or xb:size(1))
  local loss = out:bregman(yb, Z[L]) * scale
  for l, alpha in pairs(l1 or {}) do loss = loss + alpha * scale * ws.G[l]:copy(X[l]):abs():sum() end
  -- The output layer's Bregman penalty is the loss (softmax: cross-entropy; identity: squared
  -- error), and its gradient in Z_L is σ(Z_L) − y.
  out:bregman_grad(yb, Z[L], D[L])
  for l = L, 1, -1 do
    local b = net:block(l)
    b:wgrad(X[l - 1], D[l], scale, grads[l])
    if l > 1 then
      b:adjoint(D[l], D[l - 1], 1)
      -- the L1 term's subgradient α sign(x) (0 at 0) joins before the σ' factor
      local alpha = l1 and l1[l - 1]
      if alpha then D[l - 1]:add(alpha, ws.G[l - 1]:copy(X[l - 1]):sign()) end
      D[l - 1]:cmul(net:activation(l - 1):derivative(Z[l - 1], ws.G[l - 1]))
    end
  end
  return loss
end

-- The gradients of the parts {x =, y =, ws =} (row shares of a batch of `rows` rows, one
-- after another) summed in part order into grads; returns the loss.
function backprop.parts_gradients(net, parts, grads, rows, l1)
  local loss = 0
  for j, part in ipairs(parts) do
    if j == 1 then
      loss = loss + backprop.gradients(net, part.x, part.y, part.ws, grads, rows, l1)
    else
      local spare = lifted.spare_like(grads)
      loss = loss + backprop.gradients(net, part.x, part.y, part.ws, spare, rows, l1)
      for l, list in ipairs(grads) do
        for i, g in ipairs(list) do g:add(spare[l][i]) end
      end
    end
  end
  return loss
end

-- Whether a batch of `shares` row shares runs in one C call (then its shares, optimiser step
-- and gathers go to the epoch's thread team).
function backprop.one_call(net, l1, shares)
  return c_path(net, l1) ~= nil or op_path(net, l1, shares) ~= nil
end

-- One mini-batch, given as row shares {x =, y =, ws =} of a batch of `rows` rows (see
-- loop.parts): the shares' gradients summed in share order, then the optimiser step. Returns
-- the batch's mean loss. The C path takes all shares in one call (parts.whole).
function backprop.batch_step(net, parts, stepper, lr, rows, l1, paths)
  local loss
  local whole = parts.whole
  -- (resolved once per batch, it checks every activation; or once per `paths` table, which the
  -- training loop keeps while no user code runs between its batches)
  local acts = whole and (paths and paths.dense) or nil
  if whole and acts == nil then
    acts = c_path(net, l1) or false
    if paths then paths.dense = acts end
  end
  if whole and (acts or op_path(net, l1, #parts)) then
    loss = backprop.gradients(net, whole.x, whole.y, whole.ws, stepper.block_grads, rows, l1, #parts, acts or nil)
  else
    blua._teamJoin() -- (rows the team may still be gathering: loop.prefetch; the C steps wait in C)
    loss = backprop.parts_gradients(net, parts, stepper.block_grads, rows, l1)
  end
  stepper.step(lr)
  return loss
end

return backprop
