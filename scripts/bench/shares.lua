-- Row shares side by side (batch_shards, docs/design.md "Threads and speed"), in one run: for
-- each network, trainer and thread count, the epoch with the default two shares against the
-- single-share arithmetic (batch_shards = 1), as wall seconds and as CPU seconds of the process
-- (os.clock), which still measure the work when other processes hold the cores. Each case
-- trains two epochs and reports the second; the cases alternate so that load changes hit
-- both sides alike. The load average is printed before and after.
--   blua scripts/bench/shares.lua [--nets paper,wide] [--threads 1,2] [--rounds 2] [--rows 0]
local blua = require "blua"
local timing = dofile((arg[0]:match("^(.*)/") or ".") .. "/timing.lua")

local o = blua.cli.parse(arg, {
  {"nets", "string", "paper,wide", "networks: paper (784-64-64-64-10), wide (784-1024-1024-10)"},
  {"threads", "string", "1,2", "thread counts"},
  {"methods", "string", "backprop,bregman", "trainers"},
  {"rounds", "integer", 2, "alternating rounds (the fastest is reported)"},
  {"rows", "integer", 0, "training rows (0: all of MNIST for paper, 6400 for wide)"},
}, {usage = "blua scripts/bench/shares.lua [options]"})

local function list(s)
  local out = {}
  for w in s:gmatch("[^,%s]+") do out[#out + 1] = w end
  return out
end


local nets = {paper = {784, 64, 64, 64, 10}, wide = {784, 1024, 1024, 10}}
local train = blua.data.mnist("train")

-- Wall and CPU seconds of the second epoch.
local function epoch(method, sizes, rows, threads, shards)
  blua.manualSeed(1)
  local net = blua.nn.mlp{activation = "relu", output = "softmax", table.unpack(sizes)}
  local cpu = {}
  local h = blua.train[method](net, blua.data.subset(train, 1, rows), {epochs = 2, batch = 128, verbose = false,
    eval_train = false, threads = threads, batch_shards = shards, on_epoch = function(e) cpu[e] = os.clock() end})
  return h[2].seconds, cpu[2] - cpu[1]
end

print(string.format("MNIST, batch 128, second epoch; load average %s", timing.load()))
print(string.format("%-18s %-9s %3s  %-26s %-26s %s", "network", "trainer", "thr", "1 share: wall / CPU s",
  "2 shares: wall / CPU s", "wall ratio 2/1"))
for _, name in ipairs(list(o.nets)) do
  local sizes = assert(nets[name], "unknown network " .. name)
  local rows = o.rows > 0 and o.rows or (name == "wide" and 6400 or train.x:size(1))
  for _, method in ipairs(list(o.methods)) do
    for _, t in ipairs(list(o.threads)) do
      local threads = math.tointeger(tonumber(t))
      local best = {{math.huge, math.huge}, {math.huge, math.huge}}
      for _ = 1, o.rounds do
        for shards = 1, 2 do
          local wall, cpu = epoch(method, sizes, rows, threads, shards)
          best[shards][1] = math.min(best[shards][1], wall)
          best[shards][2] = math.min(best[shards][2], cpu)
        end
      end
      print(string.format("%-18s %-9s %3d  %8.3f / %-15.3f %8.3f / %-15.3f %.2f", table.concat(sizes, "-") .. (name == "wide" and "*" or ""),
        method, threads, best[1][1], best[1][2], best[2][1], best[2][2], best[2][1] / best[1][1]))
    end
  end
end
print(string.format("(* the first %d rows) load average after: %s", o.rows > 0 and o.rows or 6400, timing.load()))
