-- Training speed against PyTorch (Debian python3-torch) on MNIST, side by side in one run:
-- the paper's 784-64-64-64-10 network, batch 128, Adam with a cosine schedule, by back-
-- propagation in PyTorch and by back-propagation and lifted Bregman training in blua.
-- Prints seconds per training epoch (median) of each and the ratios.
--   blua scripts/bench/vs_torch.lua [--epochs 3] [--threads 2]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"epochs", "integer", 3, "epochs per run"},
  {"threads", "integer", 2, "threads for every contestant"},
}, {usage = "blua scripts/bench/vs_torch.lua [options]"})

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local data_dir = (os.getenv("BLUA_DATA") or (here .. "/../../data")) .. "/mnist"

local timing = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "timing.lua")
local median = timing.median

local function torch_run()
  -- PyTorch runs with its own OpenMP defaults, not the passive waiting blua put in the environment.
  local own = os.getenv("BLUA_SET_WAIT_POLICY") == "1" and "env -u OMP_WAIT_POLICY -u BLUA_SET_WAIT_POLICY " or ""
  local cmd = string.format("%s/usr/bin/python3 %s/torch_peer.py %s %d %d 2>&1", own, here, data_dir, o.epochs, o.threads)
  local p = assert(io.popen(cmd))
  local secs, acc = {}, nil
  for line in p:lines() do
    local s, a = line:match("seconds ([%d.]+) test ([%d.]+)")
    if s then secs[#secs + 1], acc = tonumber(s), tonumber(a) else io.stderr:write(line, "\n") end
  end
  if not p:close() or #secs == 0 then return nil end
  return median(secs), acc
end

blua.setNumThreads(o.threads)
local train, test = blua.data.mnist("train"), blua.data.mnist("test")
local function blua_run(method)
  blua.manualSeed(1)
  local net = blua.nn.mlp{784, 64, 64, 64, 10}
  local h = blua.train[method](net, train, {epochs = o.epochs, verbose = false, eval_train = false})
  local secs = {}
  for i, e in ipairs(h) do secs[i] = e.seconds end
  return median(secs), blua.metrics.accuracy(net, test)
end

print(string.format("MNIST, 784-64-64-64-10, batch 128, %d epochs, %d threads; median seconds per training epoch", o.epochs, o.threads))
local ts, ta = torch_run()
local bs, ba = blua_run("backprop")
local gs, ga = blua_run("bregman")
if ts then
  print(string.format("  PyTorch back-prop      %6.3f s   test %.2f%%", ts, 100 * ta))
else
  print("  PyTorch back-prop      unavailable (apt-get install python3-torch)")
end
print(string.format("  blua back-prop         %6.3f s   test %.2f%%", bs, 100 * ba))
print(string.format("  blua lifted Bregman    %6.3f s   test %.2f%%", gs, 100 * ga))
if ts then
  print(string.format("  ratios: PyTorch / blua back-prop %.2fx, PyTorch / blua Bregman %.2fx", ts / bs, ts / gs))
end
