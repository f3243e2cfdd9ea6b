-- The CNN results of RESULTS.md: the small CNN of blua.experiment.cnn on Fashion-MNIST and
-- MNIST, each method with the library defaults, 10 epochs, several seeds.
--   blua scripts/cnn_results.lua run DATASET METHOD SEED [OUT]   one run; appends a line to OUT
--   blua scripts/cnn_results.lua table OUT                       the table of the runs in OUT
-- OUT defaults to results/cnn_runs.txt. Runs are separate processes so they can run side by side.
local blua = require "blua"

local mode = arg[1]

local mean_sd = blua.metrics.mean_sd

if mode == "run" then
  local dataset, method, seed, out = arg[2], arg[3], math.tointeger(tonumber(arg[4])), arg[5] or "results/cnn_runs.txt"
  local load = dataset == "mnist" and blua.data.mnist or blua.data.fashion
  local train, test = load("train"), load("test")
  blua.manualSeed(seed)
  local net = blua.experiment.cnn()
  local t0 = blua.clock()
  local history = blua.train[method](net, train, {seed = seed, test = test, verbose = false, eval_train = false,
    on_epoch = function(e, s)
      print(string.format("%s %s seed %d epoch %d: loss %.4f test %.2f%% (%.1f s)", dataset, method, seed, e, s.loss,
        100 * s.test_acc, s.seconds))
      io.stdout:flush()
    end})
  local wall = blua.clock() - t0
  local train_s = 0
  for _, h in ipairs(history) do train_s = train_s + h.seconds end
  local lin = blua.metrics.linear_fraction(net, train)
  local f = assert(io.open(out, "a"))
  f:write(string.format("%s %s %d train=%.4f test=%.4f s_epoch=%.1f wall=%.0f lin=%s\n", dataset, method, seed,
    blua.metrics.accuracy(net, train), blua.metrics.accuracy(net, test), train_s / #history, wall,
    table.concat((function() local t = {} for i, v in ipairs(lin) do t[i] = string.format("%.4f", v) end return t end)(), ",")))
  f:close()
elseif mode == "table" then
  local runs = {}
  for line in io.lines(arg[2] or "results/cnn_runs.txt") do
    local d, m, s, rest = line:match("^(%S+) (%S+) (%d+) (.*)$")
    local r = {seed = tonumber(s)}
    for k, v in rest:gmatch("([%w_]+)=(%S+)") do r[k] = v end
    local key = d .. " " .. m
    runs[key] = runs[key] or {}
    table.insert(runs[key], r)
  end
  print("| data set | method | seeds | train % | test % | s/epoch (training) | linear activations % (train set, per hidden layer) |")
  print("|---|---|---|---|---|---|---|")
  for _, d in ipairs{"fashion", "mnist"} do
    for _, m in ipairs{"backprop", "bregman", "lifted"} do
      local rs = runs[d .. " " .. m]
      if rs then
        local tr, te, sp, lins = {}, {}, {}, {}
        for _, r in ipairs(rs) do
          tr[#tr + 1], te[#te + 1], sp[#sp + 1] = 100 * tonumber(r.train), 100 * tonumber(r.test), tonumber(r.s_epoch)
          local i = 0
          for v in r.lin:gmatch("[^,]+") do
            i = i + 1
            lins[i] = lins[i] or {}
            table.insert(lins[i], 100 * tonumber(v))
          end
        end
        local lin = {}
        for i, l in ipairs(lins) do lin[i] = string.format("%.1f", (mean_sd(l))) end
        local function f(xs) local m, s = mean_sd(xs) return string.format("%.2f ± %.2f", m, s) end
        print(string.format("| %s | %s | %d | %s | %s | %.1f | %s |", d == "mnist" and "MNIST" or "Fashion-MNIST", m, #rs,
          f(tr), f(te), (mean_sd(sp)), table.concat(lin, " / ")))
      end
    end
  end
else
  io.stderr:write("usage: blua scripts/cnn_results.lua run DATASET METHOD SEED [OUT] | table [OUT]\n")
  os.exit(2)
end
