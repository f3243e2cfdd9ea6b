-- Training speed against PyTorch (Debian python3-torch) on MNIST, side by side in one run:
-- the paper's 784-64-64-64-10 network (or with --model cnn the small CNN of
-- blua.experiment.cnn, RESULTS.md "Convolutional networks"), batch 128, Adam with a cosine schedule, by back-
-- propagation in PyTorch and by back-propagation and lifted Bregman training in blua.
-- Prints seconds per training epoch (median) of each and the ratios blua / PyTorch. With
-- --race yes it then races to 97.0 % MNIST test accuracy: PyTorch back-prop and blua lifted
-- Bregman, each with its defaults (10 epochs of its own schedule), test accuracy after every
-- epoch; the time is the training seconds summed up to the first epoch at or above 97.0 %.
--   blua scripts/bench/vs_torch.lua [--epochs 3] [--threads 2] [--race no] [--model mlp] [--bregman yes]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"epochs", "integer", 3, "epochs per run"},
  {"threads", "integer", 2, "threads for every contestant"},
  {"race", {"yes", "no"}, "no", "also race to 97.0 % test accuracy with the defaults"},
  {"model", {"mlp", "cnn"}, "mlp", "the paper's MLP or the small CNN"},
  {"bregman", {"yes", "no"}, "yes", "also time blua's lifted Bregman training"},
}, {usage = "blua scripts/bench/vs_torch.lua [options]"})

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local data_dir = (os.getenv("BLUA_DATA") or (here .. "/../../data")) .. "/mnist"

local timing = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "timing.lua")
local median = timing.median

-- Seconds per epoch, test accuracy per epoch and CPU seconds per epoch of the PyTorch peer,
-- or nil.
local function torch_epochs(epochs)
  -- PyTorch runs with its own OpenMP defaults, not the waiting blua put in the environment.
  local own = os.getenv("BLUA_SET_WAIT_POLICY") == "1" and "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u BLUA_SET_WAIT_POLICY " or ""
  local cmd = string.format("%s/usr/bin/python3 %s/torch_peer.py %s %d %d %s 2>&1", own, here, data_dir, epochs, o.threads, o.model)
  local p = assert(io.popen(cmd))
  local secs, accs, cpus = {}, {}, {}
  for line in p:lines() do
    local s, c, a = line:match("seconds ([%d.]+) cpu ([%d.]+) test ([%d.]+)")
    if s then
      secs[#secs + 1], cpus[#cpus + 1], accs[#accs + 1] = tonumber(s), tonumber(c), tonumber(a)
    else
      io.stderr:write(line, "\n")
    end
  end
  if not p:close() or #secs == 0 then return nil end
  return secs, accs, cpus
end

local function mean(list)
  local sum = 0
  for _, v in ipairs(list) do sum = sum + v end
  return sum / #list
end

local function torch_run()
  local secs, accs, cpus = torch_epochs(o.epochs)
  if not secs then return nil end
  return median(secs), accs[#accs], mean(cpus)
end

blua.setNumThreads(o.threads)
local train, test = blua.data.mnist("train"), blua.data.mnist("test")
local function new_net()
  if o.model == "cnn" then return blua.experiment.cnn() end
  return blua.nn.mlp{784, 64, 64, 64, 10}
end

-- Median seconds per epoch, test accuracy, CPU seconds per epoch (the process's, all threads:
-- os.clock over the whole run, divided by the epochs).
local function blua_run(method)
  blua.manualSeed(1)
  local net = new_net()
  local c0 = os.clock()
  local h = blua.train[method](net, train, {epochs = o.epochs, verbose = false, eval_train = false})
  local cpu = (os.clock() - c0) / o.epochs
  local secs = {}
  for i, e in ipairs(h) do secs[i] = e.seconds end
  return median(secs), blua.metrics.accuracy(net, test), cpu
end


print(string.format("MNIST, %s, batch 128, %d epochs, %d threads; median seconds per training epoch (load average %s)",
  o.model == "cnn" and "the small CNN" or "784-64-64-64-10", o.epochs, o.threads, timing.load()))
local ts, ta, tc = torch_run()
local bs, ba, bc = blua_run("backprop")
local gs, ga, gc
if o.bregman == "yes" then gs, ga, gc = blua_run("bregman") end
-- CPU seconds count the work done whatever share of a core the process got, so on a busy
-- machine they compare one-thread runs better than wall time; with more threads they also
-- count time spent waiting (spinning) for the other thread.
if ts then
  print(string.format("  PyTorch back-prop      %6.3f s   test %.2f%%   CPU %6.3f s", ts, 100 * ta, tc))
else
  print("  PyTorch back-prop      unavailable (apt-get install python3-torch)")
end
print(string.format("  blua back-prop         %6.3f s   test %.2f%%   CPU %6.3f s", bs, 100 * ba, bc))
if gs then print(string.format("  blua lifted Bregman    %6.3f s   test %.2f%%   CPU %6.3f s", gs, 100 * ga, gc)) end
print("  load average after the runs: " .. timing.load())
if ts then
  print(string.format("  ratios: blua back-prop / PyTorch %.2f", bs / ts) ..
    (gs and string.format(", blua Bregman / PyTorch back-prop %.2f", gs / ts) or ""))
  print(string.format("  CPU ratios: blua back-prop / PyTorch %.2f", bc / tc) ..
    (gs and string.format(", blua Bregman / PyTorch back-prop %.2f", gc / tc) or ""))
end

-- Training seconds summed up to the first epoch whose test accuracy reaches the target.
local function time_to(target, secs, accs)
  local total = 0
  for i, s in ipairs(secs) do
    total = total + s
    if accs[i] >= target then return total, i end
  end
  return nil
end

if o.race == "yes" and o.model == "mlp" then
  local target = 0.97
  print(string.format("race to %.1f%% test accuracy, defaults (10 epochs), %d threads; training seconds summed", 100 * target, o.threads))
  local tsecs, taccs = torch_epochs(10)
  blua.manualSeed(1)
  local net = blua.nn.mlp{784, 64, 64, 64, 10}
  local h = blua.train.bregman(net, train, {verbose = false, eval_train = false, test = test})
  local gsecs, gaccs = {}, {}
  for i, e in ipairs(h) do gsecs[i], gaccs[i] = e.seconds, e.test_acc end
  local function show(name, secs, accs)
    local t, epoch = time_to(target, secs, accs)
    if t then
      print(string.format("  %-22s %6.2f s (epoch %d)   final test %.2f%%", name, t, epoch, 100 * accs[#accs]))
    else
      print(string.format("  %-22s not reached in %d epochs   final test %.2f%%", name, #secs, 100 * accs[#accs]))
    end
    return t
  end
  local tt = tsecs and show("PyTorch back-prop", tsecs, taccs)
  local gt = show("blua lifted Bregman", gsecs, gaccs)
  if tt and gt then print(string.format("  ratio: blua Bregman / PyTorch back-prop %.2f", gt / tt)) end
end
