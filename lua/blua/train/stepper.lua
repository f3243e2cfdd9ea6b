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

-- The most steps a state may count (the C epochs take the count in 0..2^62 - 1, room for the
-- steps still to come).
local MAX_STEPS = (1 << 62) - 1

local function shape_of(t)
  if blua.isTensor(t) then return table.concat({t:size()}, "x") end
  local mt = type(t) == "userdata" and getmetatable(t)
  return type(mt) == "table" and mt.__name == "blua.Tensor" and "a closed tensor" or type(t)
end

-- A resumed run's optimiser state, checked against the blocks before a step uses it: a
-- malformed one (a hand-made table, a checkpoint of another network) would otherwise fail
-- deep in the optimiser with a bare index error. Errors point at the trainer's caller.
local function check_state(state, blocks, who)
  local function fail(fmt, ...) error(string.format("%s: optim_state" .. fmt, who, ...), 5) end
  for k, block in ipairs(blocks) do
    local s = state[k]
    if s ~= nil and type(s) ~= "table" then fail("[%d] must be a table (block %d's state), got %s", k, k, type(s)) end
    if s ~= nil then
      local t = s.t
      if t ~= nil and not (math.tointeger(t) and t >= 0 and t <= MAX_STEPS) then
        fail("[%d].t must be a step count (an integer in 0..2^62 - 1), got %s", k, tostring(t))
      end
      for _, key in ipairs{"m", "v", "buf"} do
        local list = s[key]
        if list ~= nil and type(list) ~= "table" then fail("[%d].%s must be a list of tensors, got %s", k, key, type(list)) end
        for j, p in ipairs(list and block.params or {}) do
          if shape_of(list[j]) ~= shape_of(p) then
            fail("[%d].%s[%d] must be a tensor of its parameter's shape %s, got %s", k, key, j, shape_of(p),
              shape_of(list[j]))
          end
        end
      end
    end
  end
end

-- blocks: a list of {params = {tensors}}, in the order of net:parameters(). Returns
-- {params =, grads = (flat lists), blocks =, block_grads = (grads per block),
-- step = function(lr, lipschitz, anchor)}.
-- step(lr, lipschitz, anchor) runs, in this order: the on_gradients hook (the one place where
-- the gradients of the batch are complete, e.g. for an all-reduce), the anchor term
-- (p − anchor)/τ of the implicit SGD when an anchor (a copy of params) is given, and the
-- optimiser on each block with that block's own state. With o.shard (a data-parallel run
-- without an on_gradients hook) the step is sharded over the ranks, see stepper.sharded, and
-- the stepper has sync().
function stepper.new(blocks, o, who)
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
  check_state(state, blocks, who)
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
  local config
  if o.optimizer == "adam" then
    config = {learningRate = o.lr, weightDecay = o.weight_decay}
  else
    config = {learningRate = o.lr, momentum = o.momentum, nesterov = o.optimizer == "nesterov", weightDecay = o.weight_decay}
  end
  local method = o.optimizer == "adam" and blua.optim.adam or blua.optim.sgd
  if o.shard then return stepper.sharded(self, o, state, config, method) end
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
  local block_params = {}
  for k, block in ipairs(blocks) do block_params[k] = block.params end
  -- (Adam's settings checked once: only the rate changes from batch to batch)
  local adam = o.optimizer == "adam" and blua.optim._adam_settings(config)
  -- (for an epoch that runs its batches in C: loop.lua)
  if adam then self.adam = {settings = adam, states = state, params = block_params} end
  self.step = function(lr, _, anchor)
    ready(anchor)
    config.learningRate = lr
    if adam then
      adam.learningRate = lr
      blua.optim._adam_groups(block_params, block_grads, state, config, adam)
      return
    end
    for k, block in ipairs(blocks) do
      method(function() return 0, block.grads end, block.params, config, state[k])
    end
  end
  return self
end

-- The pieces of this rank's segment (blua.dist.segment of the parameters read as one flat
-- vector) in each block: {k =, [j] = {first, count} into the block's j-th tensor}.
local function segment_pieces(blocks)
  local total = 0
  for _, block in ipairs(blocks) do
    for _, p in ipairs(block.params) do total = total + p:nElement() end
  end
  local first, count = blua.dist.segment(total)
  local last = first + count - 1
  local pieces, at = {}, 0
  for k, block in ipairs(blocks) do
    for j, p in ipairs(block.params) do
      local lo, hi = math.max(first, at + 1), math.min(last, at + p:nElement())
      if hi >= lo then pieces[#pieces + 1] = {k = k, j = j, first = lo - at, count = hi - lo + 1} end
      at = at + p:nElement()
    end
  end
  return pieces
end

local function piece_of(t, piece) return t:view(-1):narrow(1, piece.first, piece.count) end

-- The sharded step of a data-parallel run (ZeRO stage 1): the gradient is reduce-scattered,
-- so each rank holds the global gradient of its segment of the parameters only; it runs the
-- optimiser (and the anchor term) on that segment with the same per-block state, and the
-- ranks then all-gather the parameters. Every update is elementwise, so the bits are those of
-- the whole step, at half the optimiser work and the all-reduce's traffic. The optimiser
-- state outside a rank's segment goes stale: sync() gathers it (the trainer does at every
-- epoch's end, before on_epoch can save it).
function stepper.sharded(self, o, state, config, method)
  local blocks, params, grads = self.blocks, self.params, self.grads
  local keys = o.optimizer == "adam" and {"m", "v"} or o.optimizer ~= "proxgrad" and {"buf"} or {}
  for k, block in ipairs(blocks) do
    for _, key in ipairs(keys) do
      if not state[k][key] then
        state[k][key] = {}
        for j, p in ipairs(block.params) do state[k][key][j] = blua.zeros(p:size()) end
      end
    end
  end
  -- per block: this rank's pieces, and views of them in its parameters, gradients and state
  local views = {}
  for k in ipairs(blocks) do views[k] = {pieces = {}, params = {}, grads = {}} end
  for _, piece in ipairs(segment_pieces(blocks)) do
    local v, block = views[piece.k], blocks[piece.k]
    local n = #v.pieces + 1
    v.pieces[n] = piece
    v.params[n] = piece_of(block.params[piece.j], piece)
    v.grads[n] = piece_of(block.grads[piece.j], piece)
    for _, key in ipairs(keys) do
      v[key] = v[key] or {}
      v[key][n] = piece_of(state[piece.k][key][piece.j], piece)
    end
  end
  local inv_tau = (o.tau == nil or o.tau == math.huge) and 0 or 1 / o.tau -- (back-prop has no τ)
  self.step = function(lr, lipschitz, anchor)
    blua.dist.reduce_scatter(grads)
    config.learningRate = lr
    for k, v in ipairs(views) do
      if anchor then
        for n, piece in ipairs(v.pieces) do
          local a = piece_of(anchor[blocks[k].index[piece.j]], piece)
          v.grads[n]:add(1 / o.tau, v.params[n]):add(-1 / o.tau, a)
        end
      end
      if o.optimizer == "proxgrad" then
        for n, p in ipairs(v.params) do p:add(-lr / (lipschitz[k] + inv_tau), v.grads[n]) end
      else
        -- the block's step count moves on every rank, also where the rank has no piece of it
        local s = {t = state[k].t}
        for _, key in ipairs(keys) do s[key] = v[key] or {} end
        method(function() return 0, v.grads end, v.params, config, s)
        state[k].t = s.t
      end
    end
    blua.dist.allgather(params)
  end
  -- Completes the optimiser state: each rank's segment of it from its owner.
  self.sync = function()
    for _, key in ipairs(keys) do
      local list = {}
      for k, block in ipairs(blocks) do
        for j in ipairs(block.params) do list[#list + 1] = state[k][key][j] end
      end
      blua.dist.allgather(list)
    end
  end
  return self
end

return stepper
