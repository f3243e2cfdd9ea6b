-- The training loop every method shares: epochs of shuffled mini-batches, scratch space per
-- batch size, the schedule, divergence checks, evaluation, history, log and plot. The
-- method-specific work of one mini-batch is in train/lifted.lua and train/backprop.lua.
local blua = require "blua"
local options = require "blua.train.options"
local stepper = require "blua.train.stepper"
local lifted = require "blua.train.lifted"
local backprop = require "blua.train.backprop"
local report = require "blua.train.report"
local distributed = require "blua.train.distributed"
local layers = require "blua.train.layers"

local loop = {}

-- Scratch tensors of the shapes a batch of `rows` needs, made once per batch size.
function loop.workspace(net, rows, cache)
  local ws = cache[rows]
  if ws then return ws end
  cache.power = cache.power or {} -- power-iteration vectors, shared by every batch size
  ws = {X = {}, Z = {}, G = {}, D = {}, power = cache.power}
  for l = 1, net:nLayers() do
    local n = net.sizes[l + 1]
    ws.X[l] = blua.zeros(rows, n)
    ws.Z[l] = blua.zeros(rows, n)
    ws.G[l] = blua.zeros(rows, n)
    ws.D[l] = blua.zeros(rows, n)
  end
  cache[rows] = ws
  return ws
end

-- The parameter blocks of the network, one per lifted block, for the optimiser.
function loop.param_blocks(net)
  local blocks = {}
  for l = 1, net:nLayers() do blocks[l] = {params = net:block(l):params()} end
  return blocks
end

local function check_finite(net, epoch, batch)
  for l = 1, net:nLayers() do
    for i, p in ipairs(net:block(l):params()) do
      if not p:allFinite() then
        error(string.format("training diverged in epoch %d, batch %d: layer %d %s contains NaN or Inf",
          epoch, batch, l, i % 2 == 1 and "weights" or "biases"), 0)
      end
    end
  end
end

-- The row shares of a batch of n rows cut into k: {first, count} (0-based first row), sizes
-- differing by at most one, the earlier shares taking the extra rows (distributed.share's
-- layout); never more shares than rows, and a batch of no rows is one empty share.
function loop.share_bounds(n, k)
  k = math.max(1, math.min(k, n))
  local base, extra = n // k, n % k
  local out = {}
  for s = 0, k - 1 do out[s + 1] = {s * base + math.min(s, extra), base + (s < extra and 1 or 0)} end
  return out
end

-- The scratch space of one share: views of rows [first, first + count) of the whole batch's.
local function share_workspace(ws, first, count)
  local part = {X = {}, Z = {}, G = {}, D = {}, power = ws.power}
  for _, key in ipairs{"X", "Z", "G", "D"} do
    for l, t in ipairs(ws[key]) do part[key][l] = t:narrow(1, first + 1, count) end
  end
  return part
end

-- The workspace of a batch of n rows, with buffers for its inputs and targets (xb, yb).
local function batch_buffers(net, data, Y, n, state)
  local ws = loop.workspace(net, n, state.caches)
  if not ws.xb then
    local size = {data.x:size()}
    size[1] = n
    ws.xb, ws.yb = blua.zeros(table.unpack(size)), blua.zeros(n, Y:size(2))
  end
  return ws
end

-- Starts gathering the rows idx of the next batch into its buffers on the epoch's thread team
-- while this thread finishes the current batch (blua._gatherRows); loop.parts with gathered
-- set then skips the gather, and the batch step waits for it. Only where no rank splits the
-- batch (state.prefetch).
function loop.prefetch(net, data, Y, idx, state)
  local ws = batch_buffers(net, data, Y, #idx, state)
  -- (the argument lists, made once per workspace and data set)
  local lists = ws.gather_lists
  if not (lists and lists[2][1] == data.x and lists[2][2] == Y) then
    lists = {{ws.xb, ws.yb}, {data.x, Y}}
    ws.gather_lists = lists
  end
  blua._gatherRows(lists[1], lists[2], idx)
end

-- The rows idx of a mini-batch as the parts a batch step works on ({x =, y =, ws =} each),
-- plus parts.whole ({x =, y =, ws =}: the rows of all parts, one after another, whose views
-- the parts are). On one process the parts are the batch_shards row shares
-- (loop.share_bounds); in a data-parallel run the one part is this rank's share. Every batch's
-- gradient is the sum, in share order, of its shares' gradients: the bits depend on the
-- shares, never on the thread count, and P ranks compute what one process with
-- batch_shards = P computes. gathered: the rows are on their way already (loop.prefetch).
function loop.parts(net, data, Y, idx, o, state, gathered)
  local dist = state.dist
  local k = o.batch_shards
  if dist and dist.mode == "data" then
    idx, k = distributed.share(idx, dist.rank, dist.size), 1
  elseif dist then
    k = 1 -- (layer-parallel: one part, the whole batch)
  end
  local n = #idx
  -- the batch's rows go into buffers of the workspace, made once per batch size
  local ws = batch_buffers(net, data, Y, n, state)
  -- (rows gathered on the team may still be arriving: the C batch steps, and any kernel that
  -- hands work to the team, wait for them first)
  if not gathered then
    data.x:indexRows(idx, ws.xb)
    Y:indexRows(idx, ws.yb)
  end
  -- the parts are views of the buffers and of the scratch space: made once per batch size and
  -- share count
  ws.parts = ws.parts or {}
  local parts = ws.parts[k]
  if parts then return parts end
  local whole = {x = ws.xb, y = ws.yb, ws = ws}
  local bounds = loop.share_bounds(n, k)
  if #bounds == 1 then
    parts = {whole, whole = whole}
  else
    parts = {whole = whole}
    for s, b in ipairs(bounds) do
      parts[s] = {x = whole.x:narrow(1, b[1] + 1, b[2]), y = whole.y:narrow(1, b[1] + 1, b[2]),
        ws = share_workspace(ws, b[1], b[2])}
    end
  end
  ws.parts[k] = parts
  return parts
end

-- The prefix of a divergence error, made only when one happens (not once per batch).
local function diverged(epoch, b) return string.format("training diverged in epoch %d, batch %d: ", epoch, b) end

-- Batches per call of an epoch run in C: between calls the progress bar moves and Ctrl-C is
-- seen.
local C_EPOCH_CHUNK = 16

-- The lifted trainers' part of an epoch spec (c_epoch_spec): the X-sweep's layers, their
-- warm starts and the constants of their step sizes (lifted.lua's step_from_norm), or nil when
-- a warm start is still missing (the first batch of a run makes them, in Lua).
local function lifted_epoch_spec(net, o, method, state, spec)
  local L = net:nLayers()
  local bregman = method == "bregman"
  spec.penalty, spec.gamma, spec.beta = bregman and "bregman" or "quadratic", o.gamma or 0, o.loss_weight or 1
  spec.inner, spec.xsteps, spec.energies = o.inner, o.xsteps, o.track_energy and true or false
  spec.sweep, spec.power, spec.mult, spec.own, spec.coupling = lifted.sweep_order(L, o.order), {}, {}, {}, {}
  local power = state.caches.power
  for j, l in ipairs(spec.sweep) do
    if not (power and power[l]) then return nil end
    spec.power[j] = power[l]
    spec.mult[j] = lifted.step_multiplier(net, o, l)
    spec.own[j] = bregman and 0 or o.gamma
    spec.coupling[j] = l + 1 == L and lifted.output_curvature(net) * (o.loss_weight or 1) or (bregman and 1 or o.gamma)
  end
  return spec
end

-- The argument of blua._backpropEpoch (back-prop) or blua._liftedEpoch (Bregman, classical
-- lifted) for this epoch when its batches can run in C, one after another with no Lua between
-- them: Adam on a dense network of built-in activations, with no hook and no ranks (and for
-- the lifted trainers no anchor term and X-step warm starts already made). Else nil.
local function c_epoch_spec(method, net, data, Y, o, epoch, state, nbatches)
  local adam = state.stepper.adam
  if state.dist or o.on_batch or o.on_gradients or not adam or not blua._backpropEpoch then return nil end
  if method ~= "backprop" and (not lifted.c_batch or net:nLayers() < 2 or lifted.anchor(o, state.stepper)) then
    return nil
  end
  local acts = lifted.dense_builtin(net, o.l1_layers)
  local m, v, t0 = blua.optim._adam_moments(adam.params, adam.states)
  if not (acts and m) then return nil end
  local n = data.x:size(1)
  local shares = math.max(1, math.min(o.batch_shards, n))
  local function ws_of(rows)
    local ws = batch_buffers(net, data, Y, rows, state)
    -- (the lifted trainers' scratch G goes where back-prop's deltas D go)
    return {xb = ws.xb, yb = ws.yb, Z = ws.Z, X = ws.X, D = method == "backprop" and ws.D or ws.G}
  end
  local last = n - (nbatches - 1) * o.batch
  local wss = {ws_of(nbatches > 1 and o.batch or last)}
  if last ~= o.batch then wss[2] = ws_of(last) end
  local lr = {}
  for b = 1, nbatches do lr[b] = state.schedule(o.lr, epoch + (b - 1) / nbatches, o.epochs, o.decay) end
  local st = state.stepper
  local c = adam.settings
  local spec = {acts = acts, W = net.W, b = net.b, x = data.x, y = Y, batch = o.batch, parts = shares, ws = wss,
    grads = st.grads, spare = lifted.spare_flat(st.block_grads, shares), params = st.params, m = m, v = v,
    lr = lr, beta1 = c.beta1, beta2 = c.beta2, eps = c.epsilon, weight_decay = c.weightDecay, t0 = t0,
    l1 = o.l1_layers and next(o.l1_layers) and o.l1_layers or nil, method = method}
  if method == "backprop" then return spec end
  return lifted_epoch_spec(net, o, method, state, spec)
end

-- An epoch's statistics: the mean loss and, with layer sums, the mean energies and their total.
local function epoch_stats(epoch, loss_sum, layer_sums, nbatches, lr, seconds)
  local stats = {epoch = epoch, loss = loss_sum / nbatches, lr = lr, seconds = seconds}
  if next(layer_sums) then
    stats.energies, stats.energy = {}, stats.loss
    for l, sum in ipairs(layer_sums) do
      stats.energies[l] = sum / nbatches
      stats.energy = stats.energy + sum / nbatches
    end
  end
  return stats
end

-- The batches of an epoch in C (c_epoch_spec), a chunk at a time; the same arithmetic, loss
-- sums and errors as the loop in run_epoch. Returns the loss sum, the hidden layers' energy sums
-- (nil when not tracked) and the last batch's rate.
local function run_c_epoch(spec, adam, epoch, nbatches, bar)
  local lifted_run = spec.method ~= "backprop"
  -- (it draws the epoch's order, as blua.randperm would)
  local runner <close> = (lifted_run and blua._liftedEpoch or blua._backpropEpoch)(spec)
  local loss_sum, sums = 0, {}
  for l = 1, #spec.W - 1 do sums[l] = 0 end
  local first = 1
  while first <= nbatches do
    local last = math.min(nbatches, first + C_EPOCH_CHUNK - 1)
    local sum, stopped, why, layer, value = runner:run(first, last, loss_sum, sums)
    if not lifted_run then why, value = "loss", why end -- (back-prop's run stops for its loss only)
    local steps = lifted_run and runner:steps() or (stopped or last)
    for _, st in ipairs(adam.states) do st.t = spec.t0 + steps end
    if stopped then
      if why == "loss" then error(diverged(epoch, stopped) .. "the loss is " .. tostring(value), 0) end
      if why == "energy" then error(string.format("%slayer %d energy is %s", diverged(epoch, stopped), layer, tostring(value)), 0) end
      error(string.format("%slayer %d weights have no finite norm", diverged(epoch, stopped), layer), 0)
    end
    loss_sum = sum
    if bar then bar:update(last, string.format("loss %.4f", loss_sum / last)) end
    first = last + 1
  end
  return loss_sum, lifted_run and spec.energies and sums or nil, spec.lr[nbatches]
end

-- One epoch over shuffled mini-batches; returns the epoch's statistics before evaluation.
local function run_epoch(method, net, data, Y, o, epoch, state)
  local n = data.x:size(1)
  local nbatches = math.ceil(n / o.batch)
  -- Each epoch's order depends on the seed and the epoch alone, so a resumed run draws the
  -- same batches as an uninterrupted one.
  blua.manualSeed(o.seed * 1000003 + epoch)
  local dist = state.dist
  local bar = o.verbose and not (dist and dist.rank > 0) and blua.progress.new{total = nbatches, unit = "batch",
    title = string.format("%s epoch %d/%d", method, epoch, o.epochs)}
  state.bar = bar -- for a Ctrl-C to clear
  local spec = c_epoch_spec(method, net, data, Y, o, epoch, state, nbatches)
  if spec then
    local t0 = blua.clock()
    local loss_sum, layer_sums, lr = run_c_epoch(spec, state.stepper.adam, epoch, nbatches, bar)
    check_finite(net, epoch, nbatches)
    return epoch_stats(epoch, loss_sum, layer_sums or {}, nbatches, lr, blua.clock() - t0), bar
  end
  local perm = blua.randperm(n)
  local penalty = method == "bregman" and "bregman" or "quadratic"
  local t0 = blua.clock()
  local loss_sum, layer_sums, lr = 0, {}, nil
  local next_idx -- the next batch's rows, already being gathered (loop.prefetch)
  -- The batches' row lists: two tables in turn (a batch's and the next one's), refilled, so
  -- that a batch allocates none. The C side copies a list when it is handed over.
  local lists, last_rows = {{}, {}}, (n - 1) % o.batch + 1
  local function rows_of(b)
    local first, list = (b - 1) * o.batch + 1, lists[b % 2 + 1]
    if b == nbatches and last_rows < o.batch then list = {} end -- (the shorter last batch)
    return table.move(perm, first, math.min(first + o.batch - 1, n), 1, list)
  end
  -- How each batch runs (which C path), worked out once and kept while no user code runs
  -- between batches; an on_gradients hook runs inside every step, so then it is worked out
  -- per batch.
  local paths = not o.on_gradients and {} or nil
  for b = 1, nbatches do
    local idx = next_idx or rows_of(b)
    local parts = loop.parts(net, data, Y, idx, o, state, next_idx ~= nil)
    next_idx = nil
    lr = state.schedule(o.lr, epoch + (b - 1) / nbatches, o.epochs, o.decay)
    local sum = dist and distributed.sum_tensor or nil
    local ok, loss, energies
    if dist and dist.mode == "layer" then
      ok, loss, energies = pcall(layers.batch_step, net, penalty, o, parts[1], state.stepper, lr, #idx, dist, state.power)
    elseif method == "backprop" then
      ok, loss = pcall(backprop.batch_step, net, parts, state.stepper, lr, #idx, o.l1_layers, paths)
    else
      ok, loss, energies = pcall(lifted.batch_step, net, penalty, o, parts, state.stepper, lr, #idx, sum, paths)
    end
    if not ok then error((tostring(loss):gsub("^training diverged: ", diverged(epoch, b))), 0) end
    if state.prefetch and b < nbatches then
      next_idx = rows_of(b + 1)
      loop.prefetch(net, data, Y, next_idx, state)
    end
    if loss ~= loss or loss == math.huge then error(diverged(epoch, b) .. "the loss is " .. tostring(loss), 0) end
    loss_sum = loss_sum + loss
    for l, e in ipairs(energies or {}) do
      if e ~= e or e == math.huge then error(string.format("%slayer %d energy is %s", diverged(epoch, b), l, tostring(e)), 0) end
      layer_sums[l] = (layer_sums[l] or 0) + e
    end
    if o.on_batch then
      o.on_batch(epoch, b, loss)
      if paths then paths = {} end -- (the hook may have changed the network)
    end
    -- (a rank's losses are its part of the global means: times the ranks, an estimate of them)
    -- (layer-parallel: the loss is known on the last rank only)
    if bar and dist and dist.mode == "layer" and dist.size > 1 then bar:update(b, "")
    elseif bar then bar:update(b, string.format("loss %.4f", loss_sum / b * (dist and dist.size or 1))) end
  end
  check_finite(net, epoch, nbatches)
  if dist then -- the global means: every rank's parts added up
    local sums = distributed.sum({loss_sum, table.unpack(layer_sums)})
    loss_sum = sums[1]
    for l = 1, #layer_sums do layer_sums[l] = sums[l + 1] end
  end
  return epoch_stats(epoch, loss_sum, layer_sums, nbatches, lr, blua.clock() - t0), bar
end

-- Whether an epoch's batches hand their work to a thread team (docs/design.md, "A thread team
-- per epoch"): when a batch step is one C call. The other paths call kernels one by one from
-- Lua, and inside the team's parallel region those would all run on one thread.
local function team_pays(method, net, o, dist)
  -- (an MPI rank holds one share; the ranks themselves fill the cores, so waiting threads that
  -- spin would only take cores from the other ranks)
  if dist then return false end
  -- (a run inside a coroutine may yield from on_batch: a C call cannot be yielded across)
  if coroutine.isyieldable() then return false end
  -- (a dense network whose shares are too small to run side by side: the team's hand-offs
  -- would be all it adds)
  if lifted.dense_builtin(net, o.l1_layers) then
    local weights = 0
    for l = 1, net:nLayers() do weights = weights + net.W[l]:nElement() end
    if math.ceil(o.batch / math.max(1, o.batch_shards)) * weights < blua._shareMinWork then return false end
  end
  if method == "backprop" then return backprop.one_call(net, o.l1_layers, o.batch_shards) end
  -- (the lifted trainers' C batch step, for dense layers or operators)
  return lifted.c_batch_path(net, o) ~= nil
end

-- The power-iteration warm starts of a resumed run (optim_state.power[l], 1 x the width of
-- layer l + 1's output), checked before the X-steps use them.
local function check_power(method, net, power)
  local function fail(what) error(string.format("blua.train.%s: optim_state.power%s", method, what), 4) end
  if type(power) ~= "table" then fail(" must be a table, got " .. type(power)) end
  for l, v in pairs(power) do
    if math.type(l) ~= "integer" or l < 1 or l > net:nLayers() - 1 then
      fail(string.format(" has the key %s; it keeps one vector per hidden layer (1..%d)", tostring(l), net:nLayers() - 1))
    end
    if not (blua.isTensor(v) and v:dim() == 2 and v:size(1) == 1 and v:size(2) == net.sizes[l + 2]) then
      fail(string.format("[%d] must be a live 1x%d tensor, got %s", l, net.sizes[l + 2],
        blua.isTensor(v) and table.concat({v:size()}, "x") or type(v)))
    end
  end
end

-- A whole training run of `method`; returns the per-epoch history.
function loop.run(method, net, data, opts)
  local o = options.check(method, opts, net)
  options.check_network(method, net, nil, o)
  o.l1_layers = options.check_l1(method, net, o.l1)
  data = options.check_data(method, net, data, "data")
  local test = o.test and options.check_data(method, net, o.test, "opts.test")
  local dist = distributed.setup("blua.train." .. method, o, net, opts or {})
  -- The odd/even order needs a sweep per two hidden layers, plus one, before the output's
  -- signal reaches layer 1 (docs/design.md, "Layer-parallel schedule"): that many by default.
  if o.order == "oddeven" and method ~= "backprop" and (opts or {}).xsteps == nil then
    o.xsteps = (net:nLayers() - 1) // 2 + 1
  end
  -- Data-parallel: the optimiser step is sharded over the ranks, unless a user's hook must see
  -- the whole gradient (then it is all-reduced and every rank steps everything).
  if dist and dist.mode == "data" then
    if o.on_gradients then o.on_gradients = distributed.gradient_hook(o.on_gradients) else o.shard = true end
  end
  local blocks = dist and dist.mode == "layer" and layers.param_blocks(net, dist) or loop.param_blocks(net)
  local state = {
    power = {}, stepper = stepper.new(blocks, o, "blua.train." .. method),
    schedule = blua.optim.schedules[o.schedule], dist = dist,
  }
  -- The power-iteration warm starts of the X-step sizes are part of the run's state: kept in
  -- optim_state, a resumed run continues with them and matches an uninterrupted one.
  if o.optim_state then
    o.optim_state.power = o.optim_state.power or {}
    state.power = o.optim_state.power
    check_power(method, net, state.power)
  end
  state.caches = {power = state.power} -- scratch space per batch size (loop.workspace)
  -- (layer-parallel ranks keep the optimiser state of their own layers only)
  if dist then distributed.start(net, dist.mode == "data" and o.optim_state or nil) end
  -- Only rank 0 writes the log and the plot.
  local writer = not (dist and dist.rank > 0)
  local Y, labelled = options.targets(net, data.y)
  local old_threads = blua.getNumThreads()
  if o.threads then blua.setNumThreads(o.threads) end
  local log = o.log and writer and report.open_log(o.log)
  local history, started = {}, blua.clock()
  local use_team = team_pays(method, net, o, dist)
  state.prefetch = use_team -- (the next batch's rows are gathered on the team meanwhile)
  local ok, err = pcall(function()
    for epoch = o.start_epoch, o.epochs do
      local stats, bar
      if use_team then -- (the batches hand their row shares to a team that stays up meanwhile)
        stats, bar = blua._team(run_epoch, method, net, data, Y, o, epoch, state)
      else
        stats, bar = run_epoch(method, net, data, Y, o, epoch, state)
      end
      -- accuracy needs class labels; with target matrices the loss is the measure
      local accuracy = blua.metrics.accuracy
      if dist and dist.mode == "layer" then layers.sync(net, dist) end
      if state.stepper.sync then state.stepper.sync() end -- the whole optimiser state, for on_epoch
      if dist then accuracy = function(n, d) return distributed.accuracy(n, d, dist) end end
      if labelled and o.eval_train then stats.train_acc = accuracy(net, data) end
      if test and options.is_labels(net, test.y:size(2)) then stats.test_acc = accuracy(net, test) end
      stats.time = blua.clock() - started
      history[#history + 1] = stats
      if bar then bar:finish(report.summary(stats)) end
      if log then report.log_row(log, stats) end
      state.bar = nil
      -- on_epoch returning false (not nil) stops the run early: the history ends here
      if o.on_epoch and o.on_epoch(epoch, stats) == false then break end
    end
  end)
  if log then log:close() end
  blua.setNumThreads(old_threads)
  if not ok then
    if tostring(err):find("^interrupted") then
      -- Ctrl-C: the bar's line is cleared so the message stands alone; the finished epochs
      -- are in the log (written as they finished) and in the plot.
      if state.bar then state.bar:abort() end
      if o.plot and writer and #history > 0 then report.plot(o.plot, method, history) end
    end
    error(err, 0)
  end
  if o.plot and writer then report.plot(o.plot, method, history) end
  return history
end

return loop
