-- Data-parallel training over blua.dist (docs/design.md, "Distributed training").
--
-- Every rank holds the whole network and the whole data set and draws the same batch order
-- (the loop seeds each epoch from the seed alone). Each global mini-batch is cut into one
-- contiguous share per rank; X-steps are per sample, so each rank runs them on its share
-- alone. Gradients are scaled by the global batch size, so the sum over ranks is the
-- gradient of the global batch: one fused all-reduce per optimiser step, in the stepper's
-- on_gradients hook, and every rank then takes the same step on the same bits.
local blua = require "blua"

local distributed = {}

-- The context of a run, or nil for a single-process run. `who` names the trainer in errors;
-- opts are the options as given (to tell defaults from choices).
function distributed.setup(who, o, net, opts)
  local mode = blua.dist.mode(who, o.distributed)
  if not mode then return nil end
  local rank, size = blua.dist.rank(), blua.dist.size()
  if mode == "data" then return {mode = mode, rank = rank, size = size} end
  -- layer-parallel: the odd/even schedule of train/layers.lua
  if who == "blua.train.backprop" then
    error(who .. ": distributed = 'layer' needs a lifted method (bregman or lifted)", 4)
  end
  if opts.order ~= nil and opts.order ~= "oddeven" then
    error(string.format("%s: distributed = 'layer' runs the oddeven order, not '%s'", who, tostring(opts.order)), 4)
  end
  if net:nLayers() < size then
    error(string.format("%s: distributed = 'layer' needs a layer per rank: %d layers, %d ranks", who, net:nLayers(), size), 4)
  end
  if (opts.batch_shards or 1) > 1 then error(who .. ": batch_shards works with distributed = 'data' only", 4) end
  if type(o.optim_state) == "table" and next(o.optim_state[1] or {}) ~= nil then
    error(who .. ": a layer-parallel run cannot resume from optimiser state (each rank keeps only its own layers')", 4)
  end
  o.order = "oddeven"
  local layers = require "blua.train.layers"
  return layers.setup(net, rank, size)
end

-- The rows of idx (a global batch) that rank `rank` of `size` works on: a contiguous share,
-- sizes differing by at most one, the earlier ranks taking the extra rows.
function distributed.share(idx, rank, size)
  local n = #idx
  local base, extra = n // size, n % size
  local first = rank * base + math.min(rank, extra) + 1
  local count = base + (rank < extra and 1 or 0)
  return table.move(idx, first, first + count - 1, 1, {})
end

-- The on_gradients hook of a data-parallel run: sums the batch's gradients over the ranks in
-- one buffer, then runs the user's hook (which so sees the global gradient).
function distributed.gradient_hook(user_hook)
  return function(grads, params)
    blua.dist.allreduce(grads)
    if user_hook then user_hook(grads, params) end
  end
end

-- Optimiser state tensors (moments, momentum buffers) in a fixed order.
local function state_tensors(state)
  local list = {}
  for k = 1, #state do
    for _, key in ipairs{"m", "v", "buf"} do
      for _, t in ipairs(state[k][key] or {}) do list[#list + 1] = t end
    end
  end
  return list
end

-- Every rank starts from rank 0's parameters and optimiser state (a resumed run read the same
-- checkpoint everywhere, but a fresh network may have been built from different seeds).
function distributed.start(net, stepper_state)
  local list = net:parameters()
  for _, t in ipairs(state_tensors(stepper_state or {})) do list[#list + 1] = t end
  blua.dist.broadcast(list, 0)
end

-- Sums per-epoch statistics (a list of numbers) over the ranks.
function distributed.sum(values)
  if #values == 0 then return values end
  local t = blua.zeros(#values)
  for i, v in ipairs(values) do t:set(i, v) end
  blua.dist.allreduce({t})
  local out = {}
  for i = 1, #values do out[i] = t:get(i) end
  return out
end

-- Sums a tensor over the ranks, in place.
function distributed.sum_tensor(t)
  blua.dist.allreduce({t})
  return t
end

-- Accuracy of net on data, each rank evaluating its share of the rows.
function distributed.accuracy(net, data, ctx)
  local n = data.x:size(1)
  local base, extra = n // ctx.size, n % ctx.size
  local first = ctx.rank * base + math.min(ctx.rank, extra) + 1
  local count = base + (ctx.rank < extra and 1 or 0)
  local correct = 0
  if count > 0 then correct = math.floor(blua.metrics.accuracy(net, blua.data.subset(data, first, count)) * count + 0.5) end
  return distributed.sum({correct})[1] / n
end

return distributed
