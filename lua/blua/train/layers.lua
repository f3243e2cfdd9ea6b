-- Layer-parallel lifted training (distributed = "layer"; docs/design.md, "Layer-parallel
-- schedule"). Rank r owns a contiguous block of layers first..last: their weights, their
-- auxiliary variables and their optimiser state. For fixed W the X-steps of odd hidden layers
-- depend only on even ones and vice versa, and for fixed X every W-step is independent, so the
-- ranks work at the same time and exchange only the tensors at the edges of their blocks:
--   up:   X[last] after the forward pass and after every half-sweep that moved it;
--   down: the coupling term g = W_{first} r_{first} (and its step size μ) for layer first-1.
-- One process runs the same schedule with all layers its own and no messages; every number is
-- computed by the same function either way, so the two agree bit for bit.
local blua = require "blua"
local lifted = require "blua.train.lifted"

local layers = {}

local TAG_X, TAG_G, TAG_MU = 11, 12, 13

-- Contiguous blocks of layers, one per rank, balanced by parameter count (the work of a
-- layer's products grows with it); every rank gets at least one layer.
function layers.blocks(net, size)
  local cost = {}
  for l = 1, net:nLayers() do
    cost[l] = 1
    for _, p in ipairs(net:block(l):params()) do cost[l] = cost[l] + p:nElement() end
  end
  return layers.balance(cost, size)
end

-- The rule of layers.blocks for per-layer costs cost[1..L] (also used by the scaling model of
-- scripts/bench/scaling.lua): out[r] = {first =, last =} for ranks r = 0 .. size - 1.
function layers.balance(cost, size)
  local L, total = #cost, 0
  for l = 1, L do total = total + cost[l] end
  local out, first, acc = {}, 1, 0
  for r = 0, size - 1 do
    local last = first
    acc = acc + cost[first]
    -- take more layers while this rank is below its share and enough remain for the others
    while last < L - (size - 1 - r) and acc + cost[last + 1] / 2 <= total * (r + 1) / size do
      last = last + 1
      acc = acc + cost[last]
    end
    if r == size - 1 then
      for l = last + 1, L do acc = acc + cost[l] end
      last = L
    end
    out[r] = {first = first, last = last}
    first = last + 1
  end
  return out
end

-- The context of a layer-parallel run on this rank.
function layers.setup(net, rank, size)
  local blocks = layers.blocks(net, size)
  return {mode = "layer", rank = rank, size = size, blocks = blocks,
    first = blocks[rank].first, last = blocks[rank].last}
end

-- The optimiser's parameter blocks: this rank's layers only.
function layers.param_blocks(net, ctx)
  local blocks = {}
  for l = ctx.first, ctx.last do blocks[#blocks + 1] = {params = net:block(l):params()} end
  return blocks
end

-- Every rank gets every layer's current parameters from its owner.
function layers.sync(net, ctx)
  if ctx.size == 1 then return end
  for r = 0, ctx.size - 1 do
    local list = {}
    for l = ctx.blocks[r].first, ctx.blocks[r].last do
      for _, p in ipairs(net:block(l):params()) do list[#list + 1] = p end
    end
    blua.dist.broadcast(list, r)
  end
end

local function scalar(v)
  local t = blua.zeros(1)
  if v then t:set(1, v) end
  return t
end

-- The X-step size of layer l, computed where layer l+1 lives. It travels as a float32, so it
-- is rounded to one everywhere: with and without messages the steps are the same numbers.
local function step_size(net, o, penalty, l, power)
  return scalar(lifted.xstep_size(net, o, penalty, l, power)):get(1)
end

-- One mini-batch (part = {x =, y =, ws =}, the whole batch on every rank) of the schedule:
-- forward pass through the blocks in rank order, then `inner` times (xsteps odd/even sweeps,
-- W-step of the own layers). Returns the loss at the forward pass (last rank; 0 elsewhere) and
-- the hidden energies after the last sweep (own layers; 0 for the others).
function layers.batch_step(net, penalty, o, part, stepper, lr, rows, ctx, power)
  local dist = blua.dist
  local L = net:nLayers()
  local a, b = ctx.first, ctx.last
  local ws = part.ws
  local X = ws.X
  -- the composed (unfused) path: an X-step's two halves may run on different ranks
  local batch = lifted.new_batch(net, penalty, o, ws, true)
  local scale = 1 / rows
  local below, above = ctx.rank - 1, ctx.rank + 1

  -- forward pass: the boundary from below, the own layers, the boundary up
  X[0] = part.x
  batch.current = {}
  if a > 1 then dist.recv(X[a - 1], below, TAG_X) end
  for l = a, math.min(b, L - 1) do net:activation(l):forward(batch:z(l), X[l]) end
  if b < L then dist.send(X[b], above, TAG_X) end
  local loss, saved_out = 0, nil
  if b == L then
    batch:z(L)
    saved_out = X[L]
    X[L] = part.y
    loss = batch:energy(L) * scale
  end

  local anchor = lifted.anchor(o, stepper)
  local energies
  for k = 1, o.inner do
    for _ = 1, o.xsteps do
      for _, parity in ipairs{1, 0} do -- odd hidden layers, then even ones
        -- the coupling of the layer under this block, when it moves now
        if a > 1 and (a - 1) % 2 == parity then
          local mu = step_size(net, o, penalty, a - 1, power)
          dist.send(batch:xstep_coupling(a - 1), below, TAG_G)
          dist.send(scalar(mu), below, TAG_MU)
        end
        for l = a, math.min(b, L - 1) do
          if l % 2 == parity then
            local g, mu
            if l == b then -- layer l+1 is the next rank's
              g = ws.G[l]
              dist.recv(g, above, TAG_G)
              local m = scalar()
              dist.recv(m, above, TAG_MU)
              mu = m:get(1)
            else
              mu = step_size(net, o, penalty, l, power)
              g = batch:xstep_coupling(l)
            end
            batch:xstep_apply(l, g, mu)
          end
        end
        if b < L and b % 2 == parity then dist.send(X[b], above, TAG_X) end
        if a > 1 and (a - 1) % 2 == parity then
          dist.recv(X[a - 1], below, TAG_X)
          batch.current[a] = false
        end
      end
    end
    if k == o.inner and o.track_energy then
      energies = {}
      for l = 1, L - 1 do
        local e = 0
        if l >= a and l <= b then e = batch:energy(l) end
        if not e then energies = nil break end
        energies[l] = e * scale
      end
    end
    local lips = o.optimizer == "proxgrad" and {} or nil
    for l = a, b do
      local j = l - a + 1
      batch:wgrad(l, scale, stepper.block_grads[j])
      if lips then
        local s = blua.spectralNorm(X[l - 1], 6)
        local curvature = l == L and lifted.output_curvature(net) * batch.beta or (penalty == "bregman" and 1 or batch.gamma)
        lips[j] = curvature * (s * s + rows) / rows
      end
    end
    stepper.step(lr, lips, anchor)
    batch.current = {} -- new weights: every pre-activation is stale
  end
  if saved_out then X[L] = saved_out end
  return loss, energies
end

return layers
