-- The body of scripts/train_mnist.lua and scripts/train_fashion.lua: parse the options, load
-- the data, build the paper's network, train with the chosen method, report accuracies and
-- linear-activation percentages, with checkpoints that a later run can resume.
local blua = require "blua"

local experiment = {}

local options = {
  {"method", {"bregman", "lifted", "backprop"}, nil, "training method (default bregman)"},
  {"epochs", "integer", nil, "epochs (default: the method's tuned default)"},
  {"batch", "integer", nil, "mini-batch size (default: the method's tuned default)"},
  {"lr", "number", nil, "learning rate (default: the method's tuned default)"},
  {"seed", "integer", nil, "seed of the initialisation and the batch order (default 1)"},
  {"threads", "integer", nil, "threads for OpenMP and OpenBLAS (default: all cores)"},
  {"train-size", "integer", nil, "use only the first N training samples"},
  {"activation", "string", "relu", "hidden activation (a built-in or defined name)"},
  {"hidden", "string", "64,64,64", "hidden layer widths, comma-separated"},
  {"save", "string", nil, "save a checkpoint here after every epoch"},
  {"resume", "string", nil, "continue from a checkpoint written by --save"},
  {"log", "string", nil, "write the per-epoch history as CSV"},
  {"plot", "string", nil, "write learning curves as PNG (gnuplot)"},
  {"quiet", "flag", false, "no progress bar"},
}

local function percent(x) return string.format("%.2f%%", 100 * x) end

function experiment.main(dataset, args)
  local load = dataset == "mnist" and blua.data.mnist or blua.data.fashion
  local title = dataset == "mnist" and "MNIST" or "Fashion-MNIST"
  local o = blua.cli.parse(args, options, {
    name = "train_" .. dataset .. ".lua",
    usage = string.format("blua train_%s.lua [options]", dataset),
    about = string.format("Trains a %s classifier (the paper's 784-64-64-64-10 ReLU network by default).", title),
  })
  if o.threads then blua.setNumThreads(o.threads) end

  local net, start_epoch, history, optim_state, method = nil, 1, {}, {}, o.method
  if o.resume then
    local ck = blua.load(o.resume)
    if type(ck) ~= "table" or getmetatable(ck.net) ~= blua.nn.MLP or type(ck.epoch) ~= "number" then
      error(string.format("%s is not a checkpoint written by --save", o.resume), 0)
    end
    if o.method and o.method ~= ck.method then
      error(string.format("%s was trained with --method %s; it cannot resume as %s", o.resume, ck.method, o.method), 0)
    end
    net, method, history, optim_state = ck.net, ck.method, ck.history, ck.optim_state
    start_epoch = ck.epoch + 1
    -- options given now win; the others continue as the checkpointed run had them
    for k, v in pairs(ck.options) do if o[k] == nil then o[k] = v end end
    print(string.format("resuming %s from %s after epoch %d", method, o.resume, ck.epoch))
  end

  local train, test = load("train"), load("test")
  if o.train_size then train = blua.data.subset(train, 1, math.min(o.train_size, train.n)) end

  o.seed = o.seed or 1
  method = method or o.method or "bregman"
  if not net then
    blua.manualSeed(o.seed)
    local sizes = {784}
    for w in o.hidden:gmatch("[^,]+") do sizes[#sizes + 1] = assert(math.tointeger(tonumber(w)), "--hidden: integers expected") end
    sizes[#sizes + 1] = 10
    sizes.activation = o.activation
    sizes.output = "softmax"
    net = blua.nn.mlp(sizes)
  end

  local defaults = blua.train.defaults(method)
  local epochs, batch, lr = o.epochs or defaults.epochs, o.batch or defaults.batch, o.lr or defaults.lr
  print(string.format("%s: %s, %s on %d samples, %d epochs, batch %d, %d threads", title,
    table.concat(net.sizes, "-"), method, train.n, epochs, batch, blua.getNumThreads()))

  local saved_options = {epochs = epochs, batch = batch, lr = lr, seed = o.seed, train_size = o.train_size}
  blua.train[method](net, train, {
    epochs = epochs, batch = batch, lr = lr, seed = o.seed, test = test, verbose = not o.quiet,
    start_epoch = start_epoch, optim_state = optim_state, log = o.log,
    on_epoch = function(epoch, stats)
      history[#history + 1] = stats
      if o.quiet then
        print(string.format("epoch %d  loss %.4f  train %s  test %s  %.1fs", epoch, stats.loss,
          percent(stats.train_acc), percent(stats.test_acc), stats.seconds))
      end
      if o.save then
        blua.save(o.save, {net = net, method = method, epoch = epoch, history = history,
          optim_state = optim_state, options = saved_options})
      end
    end,
  })
  local train_acc, test_acc = blua.metrics.accuracy(net, train), blua.metrics.accuracy(net, test)
  local linear = blua.metrics.linear_fraction(net, test)
  local lin = {}
  for l, f in ipairs(linear) do lin[l] = string.format("layer %d %.1f%%", l, 100 * f) end
  print(string.format("final: train accuracy %s, test accuracy %s", percent(train_acc), percent(test_acc)))
  print("linear activations (test set): " .. table.concat(lin, ", "))
  if o.plot then
    local xs, tr, te = {}, {}, {}
    for _, h in ipairs(history) do
      xs[#xs + 1] = h.epoch
      tr[#tr + 1] = 100 * h.train_acc
      te[#te + 1] = 100 * h.test_acc
    end
    local ok, err = blua.plot.lines{path = o.plot, title = title .. " " .. method, xlabel = "epoch",
      ylabel = "accuracy %", series = {{name = "train", x = xs, y = tr}, {name = "test", x = xs, y = te}}}
    print(ok and ("plot: " .. o.plot) or ("no plot: " .. err))
  end
  return {net = net, train_acc = train_acc, test_acc = test_acc, linear = linear, history = history}
end

return experiment
