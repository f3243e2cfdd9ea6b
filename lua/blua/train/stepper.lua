-- The optimiser side of a training run: gradient buffers shaped like the parameters, the
-- optimiser state kept per block (a block is one layer's parameters: its weights and
-- biases), the hook between "gradients ready" and "step", and the step itself.
local blua = require "blua"

local stepper = {}

-- Optimiser state of earlier versions was one table over the flat parameter list
-- {m = {W1, b1, W2, ...}, v = ..., t = n} (or {buf = ...}); it becomes one table per block.
local function per_block_state(state, blocks)
  if state.t == nil and state.m == nil and state.buf == nil then return state end
  for k, block in ipairs(blocks) do
    local s = {t = state.t}
    for _, key in ipairs{"m", "v", "buf"} do
      if state[key] then
        s[key] = {}
        for j, i in ipairs(block.index) do s[key][j] = state[key][i] end
      end
    end
    state[k] = s
  end
  state.t, state.m, state.v, state.buf = nil, nil, nil, nil
  return state
end

-- blocks: a list of {params = {tensors}}, in the order of net:parameters(). Returns
-- {params =, grads = (flat lists), blocks =, block_grads = (grads per block),
-- step = function(lr, lipschitz, anchor)}.
-- step(lr, lipschitz, anchor) runs, in this order: the on_gradients hook (the one place where
-- the gradients of the batch are complete, e.g. for an all-reduce), the anchor term
-- (p − anchor)/τ of the implicit SGD when an anchor (a copy of params) is given, and the
-- optimiser on each block with that block's own state.
function stepper.new(blocks, o)
  local params, grads = {}, {}
  for _, block in ipairs(blocks) do
    block.grads, block.index = {}, {}
    for j, p in ipairs(block.params) do
      local g = blua.zeros(p:size())
      params[#params + 1], grads[#grads + 1] = p, g
      block.grads[j], block.index[j] = g, #params
    end
  end
  local state = per_block_state(o.optim_state or {}, blocks)
  for k in ipairs(blocks) do state[k] = state[k] or {} end
  local hook = o.on_gradients
  local function ready(anchor)
    if hook then hook(grads, params) end
    if anchor then
      for i, p in ipairs(params) do grads[i]:add(1 / o.tau, p):add(-1 / o.tau, anchor[i]) end
    end
  end
  local block_grads = {}
  for k, block in ipairs(blocks) do block_grads[k] = block.grads end
  local self = {params = params, grads = grads, blocks = blocks, block_grads = block_grads}
  if o.optimizer == "proxgrad" then
    -- Proximal-gradient W-steps with the Lipschitz step of each block (lipschitz[k], from
    -- the batch) and the anchor term's 1/τ: W ← W − lr/(L_k + 1/τ) ∇.
    local inv_tau = o.tau == math.huge and 0 or 1 / o.tau
    self.step = function(lr, lipschitz, anchor)
      ready(anchor)
      for k, block in ipairs(blocks) do
        for j, p in ipairs(block.params) do p:add(-lr / (lipschitz[k] + inv_tau), block.grads[j]) end
      end
    end
    return self
  end
  local config
  if o.optimizer == "adam" then
    config = {learningRate = o.lr, weightDecay = o.weight_decay}
  else
    config = {learningRate = o.lr, momentum = o.momentum, nesterov = o.optimizer == "nesterov", weightDecay = o.weight_decay}
  end
  local method = o.optimizer == "adam" and blua.optim.adam or blua.optim.sgd
  self.step = function(lr, _, anchor)
    ready(anchor)
    config.learningRate = lr
    for k, block in ipairs(blocks) do
      method(function() return 0, block.grads end, block.params, config, state[k])
    end
  end
  return self
end

return stepper
