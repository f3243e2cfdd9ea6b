-- How close training epochs come to the GEMM floor, side by side in one run. For each network
-- and thread count it times cblas_sgemm (through t:addmm, with the operands laid out as the
-- trainers lay them out) on exactly the matrix products of one MNIST epoch: forward, adjoint
-- (r Wᵀ) and weight gradient (Xᵀ r) of every layer, for full batches and the last partial one.
-- Their sum is the epoch's GEMM floor; each trainer's epoch is reported as floor / epoch time.
-- The products are timed before and again after each trainer's epochs, and the faster of the
-- two floors counts.
-- For the CNN (--nets cnn) the convolutions' products are those of im2col + sgemm on chunks of
-- 4 samples (runtime/op_conv.c); the floor leaves out im2col, col2im and pooling.
-- With T threads each product counts at the fastest of: OpenBLAS's T threads on the whole
-- product, and the product cut into T blocks (of rows, of the inner dimension or of columns)
-- made at once by T single-threaded products. All of them are measured; on products this small
-- OpenBLAS gains little from a second thread, and two products at once reach less than twice
-- one product's rate (they share the caches and the memory bus).
-- A last case runs the paper's network with the default thread count while one busy process
-- (a shell loop pinned to core 0) competes, against the 1-thread epoch on an idle machine.
--   blua scripts/bench/floor.lua [--nets paper,wide,deep,cnn] [--threads 1,2] [--epochs 2]
--                                [--methods backprop,bregman] [--contention yes|no]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"nets", "string", "paper,wide,deep", "networks: paper (784-64-64-64-10), wide (784-1024-1024-10), deep (784+6x256+10), cnn (experiment.cnn)"},
  {"threads", "string", "1,2", "thread counts"},
  {"epochs", "integer", 2, "epochs per training run (the fastest is reported)"},
  {"methods", "string", "backprop,bregman", "trainers"},
  {"batch", "integer", 128, "mini-batch size"},
  {"contention", {"yes", "no"}, "yes", "also run with one competing busy process"},
}, {usage = "blua scripts/bench/floor.lua [options]"})

local function list(s)
  local out = {}
  for w in s:gmatch("[^,%s]+") do out[#out + 1] = w end
  return out
end

local deep = {784}
for _ = 1, 6 do deep[#deep + 1] = 256 end
deep[#deep + 1] = 10
local nets = {paper = {784, 64, 64, 64, 10}, wide = {784, 1024, 1024, 10}, deep = deep,
  cnn = {cnn = true}} -- blua.experiment.cnn

-- The convolutions of blua.experiment.cnn as runtime/op_conv.c runs them: chunks of 4 samples
-- side by side, P output pixels each, K = C_in kh kw. Per chunk: forward W (Co x K) col
-- (K x 4P), adjoint Wᵀ T (K x 4P, not for the first layer), weight gradient T colᵀ (Co x K).
local CONV_CHUNK = 4
local cnn_convs = {{co = 8, k = 25, p = 784, first = true}, {co = 16, k = 200, p = 196}}

-- The products of one batch of `rows` samples: {kind, l, m, k, n, count}. Back-prop: forward
-- of every layer, adjoint of layers 2..L, weight gradient of every layer. Lifted Bregman (one
-- backward X-sweep): the same plus the pre-activations of layers 2..L recomputed after the
-- sweep has moved X.
local function products(sizes, rows, method)
  local out = {}
  -- dense layers: {l, n_in, n_out}
  local dense = {}
  if sizes.cnn then
    local chunks = (rows + CONV_CHUNK - 1) // CONV_CHUNK
    for l, c in ipairs(cnn_convs) do
      local n = CONV_CHUNK * c.p
      out[#out + 1] = {"conv-forward", l, c.co, c.k, n, chunks * ((method == "bregman" and l >= 2) and 2 or 1)}
      if not c.first then out[#out + 1] = {"conv-adjoint", l, c.k, c.co, n, chunks} end
      out[#out + 1] = {"conv-wgrad", l, c.co, n, c.k, chunks}
    end
    dense = {{3, 784, 128}, {4, 128, 10}} -- after the second pooling: 16 x 7 x 7 = 784 features
  else
    for l = 1, #sizes - 1 do dense[l] = {l, sizes[l], sizes[l + 1]} end
  end
  for _, d in ipairs(dense) do
    local l, n_in, n_out = d[1], d[2], d[3]
    out[#out + 1] = {"forward", l, rows, n_in, n_out, (method == "bregman" and l >= 2) and 2 or 1}
    if l >= 2 then out[#out + 1] = {"adjoint", l, rows, n_out, n_in, 1} end
    out[#out + 1] = {"wgrad", l, n_in, rows, n_out, 1}
  end
  return out
end

-- The operands a (m x k) and b (k x n) of one product c = a b, laid out as the trainers lay
-- them out (transposed operands are transposed views).
local function operands(kind, m, k, n)
  blua.manualSeed(7)
  if kind == "forward" or kind == "conv-forward" then -- Z = X W, T = W col
    return blua.randn(m, k), blua.randn(k, n)
  elseif kind == "adjoint" then   -- G = R Wᵀ, W stored n_{l-1} x n_l as the network stores it
    return blua.randn(m, k), blua.randn(n, k):t()
  elseif kind == "conv-adjoint" then -- col = Wᵀ T, W stored Co x K
    return blua.randn(k, m):t(), blua.randn(k, n)
  elseif kind == "conv-wgrad" then -- dW = T colᵀ, col stored K x chunk pixels
    return blua.randn(m, k), blua.randn(n, k):t()
  else                            -- gW = Xᵀ R, X stored rows x m
    return blua.randn(k, m):t(), blua.randn(k, n)
  end
end

local function best_of_three(reps, run)
  run(1)
  local best = math.huge
  for _ = 1, 3 do best = math.min(best, run(reps) / reps) end
  return best
end

-- Seconds per call of c = a b made whole by t:addmm on the current thread count.
local function time_whole(a, b, reps)
  local c = blua.zeros(a:size(1), b:size(2))
  return best_of_three(reps, function(r)
    local t0 = blua.clock()
    for _ = 1, r do c:addmm(0, 1, a, b) end
    return blua.clock() - t0
  end)
end

-- Seconds per call of c = a b cut into `parts` blocks along m, k or n, the blocks made at once
-- by single-threaded products, one thread each. Cut along k, each block makes a whole m x n
-- partial product (as the trainers' row shares make their weight gradients); adding them up is
-- not counted.
local function time_side_by_side(a, b, parts, along, reps)
  local size = along == "m" and a:size(1) or along == "k" and a:size(2) or b:size(2)
  local products, first = {}, 1
  for p = 1, parts do
    local count = size // parts + (p <= size % parts and 1 or 0)
    if count > 0 then
      local ap = along == "m" and a:narrow(1, first, count) or along == "k" and a:narrow(2, first, count) or a
      local bp = along == "n" and b:narrow(2, first, count) or along == "k" and b:narrow(1, first, count) or b
      products[#products + 1] = {blua.zeros(ap:size(1), bp:size(2)), ap, bp}
    end
    first = first + count
  end
  return best_of_three(reps, function(r) return blua._mmSideBySide(r, table.unpack(products)) end)
end

-- Seconds per call of one product on `threads` threads: the fastest of the whole product on
-- OpenBLAS's threads and of the product cut into one block per thread along each dimension.
local function time_product(kind, m, k, n, reps, threads)
  local a, b = operands(kind, m, k, n)
  local best = time_whole(a, b, reps)
  if threads > 1 then
    for _, along in ipairs{"m", "k", "n"} do best = math.min(best, time_side_by_side(a, b, threads, along, reps)) end
  end
  return best
end

-- The epoch's GEMM floor in seconds for N samples: every product timed on a quarter of its
-- calls per epoch (at least 8), then scaled to the full count.
local function floor_of(sizes, N, batch, method, threads, cache)
  local full, rest = N // batch, N % batch
  local total, flops = 0, 0
  for _, part in ipairs{{batch, full}, {rest, 1}} do
    local rows, times = part[1], part[2]
    if rows > 0 and times > 0 then
      for _, p in ipairs(products(sizes, rows, method)) do
        local kind, m, k, n, count = p[1], p[3], p[4], p[5], p[6]
        local key = string.format("%s %d %d %d", kind, m, k, n)
        if not cache[key] then cache[key] = time_product(kind, m, k, n, math.max(8, times // 4), threads) end
        total = total + cache[key] * count * times
        flops = flops + 2 * m * k * n * count * times
      end
    end
  end
  return total, flops
end

local train = blua.data.mnist("train")
local N = train.x:size(1)

local function epoch_time(method, sizes)
  blua.manualSeed(1)
  local net = sizes.cnn and blua.experiment.cnn() or blua.nn.mlp(sizes)
  local h = blua.train[method](net, train, {epochs = o.epochs, batch = o.batch, verbose = false, eval_train = false})
  local best = math.huge
  for _, e in ipairs(h) do best = math.min(best, e.seconds) end
  return best
end

local function name_of(sizes)
  if sizes.cnn then return "cnn (experiment.cnn)" end
  local parts = {}
  for i, s in ipairs(sizes) do parts[i] = tostring(s) end
  return table.concat(parts, "-")
end

local default_threads = blua.getNumThreads()
local methods, threads_list = list(o.methods), list(o.threads)
print(string.format("MNIST, %d samples, batch %d; GEMM floor = the epoch's matrix products at the sgemm rate "
  .. "measured now; %% = floor / epoch time", N, o.batch))
print(string.format("OpenBLAS %s; default threads %d; OMP_WAIT_POLICY=%s", select(2, blua.blasInfo()),
  default_threads, os.getenv("OMP_WAIT_POLICY") or "(unset)"))
print(string.format("%-22s %3s  %-9s %7s %7s %8s %9s %6s", "network", "thr", "trainer", "GFLOP", "GFLOP/s",
  "floor s", "epoch s", "%"))

local epochs = {} -- epochs[net][method][threads]
for _, key in ipairs(list(o.nets)) do
  local sizes = assert(nets[key], "unknown network '" .. key .. "' (accepted: paper, wide, deep, cnn)")
  epochs[key] = {}
  for _, method in ipairs(methods) do epochs[key][method] = {} end
  for _, th in ipairs(threads_list) do
    local threads = assert(tonumber(th), "bad thread count " .. th)
    blua.setNumThreads(threads)
    local cache = {}
    for _, method in ipairs(methods) do
      local floor, flops = floor_of(sizes, N, o.batch, method, threads, cache)
      local t = epoch_time(method, sizes)
      -- (the products are timed again after the epochs and the faster floor counts: a moment
      -- of a slower machine while they were timed would otherwise lower the floor's rate)
      floor = math.min(floor, (floor_of(sizes, N, o.batch, method, threads, {})))
      epochs[key][method][threads] = t
      print(string.format("%-22s %3d  %-9s %7.1f %7.1f %8.3f %9.3f %5.0f%%", name_of(sizes), threads, method,
        flops / 1e9, flops / floor / 1e9, floor, t, 100 * floor / t))
    end
  end
  local e = epochs[key]
  for _, method in ipairs(methods) do
    if e[method][1] and e[method][2] then
      print(string.format("%-22s      %-9s speed-up 1 -> 2 threads: %.2fx", name_of(sizes), method,
        e[method][1] / e[method][2]))
    end
  end
end
blua.setNumThreads(default_threads)

-- One competing busy process: the paper's network with the default thread count, against the
-- 1-thread epoch on the idle machine (measured just before, so both see the same neighbours).
if o.contention == "yes" then
  local sizes = nets.paper
  local idle = {}
  blua.setNumThreads(1)
  for _, method in ipairs(methods) do idle[method] = epoch_time(method, sizes) end
  blua.setNumThreads(default_threads)
  local taskset = os.execute("command -v taskset >/dev/null 2>&1") and "taskset -c 0 " or ""
  local p = assert(io.popen(taskset .. "sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "could not start the busy process")
  local ok, err = pcall(function()
    for _, method in ipairs(methods) do
      local t = epoch_time(method, sizes)
      print(string.format("%-22s %3d  %-9s with a busy process: %.3f s = %.2fx the idle 1-thread epoch (%.3f s)",
        name_of(sizes), default_threads, method, t, t / idle[method], idle[method]))
    end
  end)
  os.execute("kill " .. pid)
  if not ok then error(err, 0) end
end
