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
  {"hidden", "string", "64,64,64", "hidden layer widths, comma-separated (mlp)"},
  {"model", {"mlp", "cnn"}, "mlp", "network: the paper's MLP, or the small CNN of experiment.cnn"},
  {"save", "string", nil, "save a checkpoint here after every epoch"},
  {"save-best", "string", nil, "keep the checkpoint of the best test accuracy here"},
  {"resume", "string", nil, "continue from a checkpoint written by --save"},
  {"log", "string", nil, "write the per-epoch history as CSV"},
  {"plot", "string", nil, "write learning curves as PNG (gnuplot)"},
  {"quiet", "flag", false, "no progress bar"},
  {"distributed", {"data", "layer"}, nil, "under mpirun: split every mini-batch (data) or the layers (layer) over the ranks"},
}

local function percent(x) return string.format("%.2f%%", 100 * x) end
local plural = function(n, noun) return blua.progress.plural(n, noun) end

-- An ordinary mistake on the command line: one line for the user, no traceback (level 0: the
-- position inside blua is of no use to them).
local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- "64,64,64" → {64, 64, 64}; an empty or non-positive width is a mistake, not skipped.
local function parse_widths(text)
  local widths = {}
  for w in (text .. ","):gmatch("([^,]*),") do
    local n = math.tointeger(tonumber(w))
    if not n or n < 1 then
      fail("--hidden %s: widths must be positive integers separated by commas, got '%s'", text, w)
    end
    widths[#widths + 1] = n
  end
  return widths
end

-- Fails now, not after an epoch of training, when path cannot be written: a probe file is
-- made and removed beside it (blua.save also writes beside the target, then renames).
local function check_writable(option, path)
  local probe = path .. ".probe-" .. tostring(os.time())
  local f, err = io.open(probe, "wb")
  if not f then fail("--%s %s: cannot write there (%s)", option, path, (err:gsub("^[^:]*: ", ""))) end
  f:close()
  os.remove(probe)
end

local function check_positive(name, v)
  if v ~= nil and v < 1 then fail("--%s must be at least 1, got %s", name, tostring(v)) end
end

-- The CSV history, written here rather than by the trainer so that a resumed run keeps the
-- earlier epochs: the file is rewritten from the checkpoint's history, then appended to.
local LOG_HEADER = "epoch,loss,energy,train_acc,test_acc,lr,seconds\n"
local function log_row(f, s)
  local function opt(fmt, v) return v and string.format(fmt, v) or "" end
  f:write(string.format("%d,%.6g,%s,%s,%s,%.6g,%.3f\n", s.epoch, s.loss, opt("%.6g", s.energy),
    opt("%.6f", s.train_acc), opt("%.6f", s.test_acc), s.lr, s.seconds))
  f:flush()
end

local function open_log(path, history)
  local f, err = io.open(path, "w")
  if not f then fail("--log %s: %s", path, (err:gsub("^[^:]*: ", ""))) end
  f:write(LOG_HEADER)
  for _, s in ipairs(history) do log_row(f, s) end
  f:flush()
  return f
end

local function load_checkpoint(path, o)
  local f, err = io.open(path, "rb")
  if not f then fail("--resume %s: cannot open it (%s)", path, (err:gsub("^[^:]*: ", ""))) end
  f:close()
  local ok, ck = pcall(blua.load, path)
  if not ok then fail("--resume %s: %s", path, (tostring(ck):gsub("^[^\n]-%.lua:%d+: ", ""))) end
  if type(ck) ~= "table" or getmetatable(ck.net) ~= blua.nn.MLP or type(ck.epoch) ~= "number"
    or type(ck.options) ~= "table" then
    fail("--resume %s: not a checkpoint written by --save", path)
  end
  if o.method and o.method ~= ck.method then
    fail("--resume %s: it was trained with --method %s and cannot resume as %s", path, ck.method, o.method)
  end
  return ck
end

-- Validates everything the options name before any data is read or any epoch trained.
local function check_options(o)
  check_positive("threads", o.threads)
  check_positive("epochs", o.epochs)
  check_positive("batch", o.batch)
  check_positive("train-size", o.train_size)
  if o.lr ~= nil and not (o.lr > 0 and o.lr < math.huge) then fail("--lr must be a positive number, got %s", tostring(o.lr)) end
  if not o.resume then
    if not pcall(blua.activation.get, o.activation) then
      fail("--activation %s: unknown activation (known: %s)", o.activation, table.concat(blua.activation.list(), ", "))
    end
    o.widths = parse_widths(o.hidden)
  end
  if o.save then check_writable("save", o.save) end
  if o.save_best then check_writable("save-best", o.save_best) end
  if o.log then check_writable("log", o.log) end
end

--- The small convolutional network of the CNN results (RESULTS.md, docs/design.md), for
-- 28x28 grey images and 10 classes: two 5x5 convolutions (8 and 16 channels, padding 2),
-- each followed by the activation and a 2x2 average pooling, then a hidden layer of 128 and
-- a softmax output. Lifted blocks: [conv1], [pool, conv2], [pool, linear], [linear].
function experiment.cnn(activation)
  local nn, act = blua.nn, activation or "relu"
  return nn.Sequential()
    :add(nn.Reshape(1, 28, 28))
    :add(nn.Conv2d(1, 8, 5, {padding = 2})):add(act)
    :add(nn.AvgPool2d(2))
    :add(nn.Conv2d(8, 16, 5, {padding = 2})):add(act)
    :add(nn.AvgPool2d(2))
    :add(nn.Flatten())
    :add(nn.Linear(16 * 7 * 7, 128)):add(act)
    :add(nn.Linear(128, 10)):add("softmax")
end

function experiment.main(dataset, args)
  local load = dataset == "mnist" and blua.data.mnist or blua.data.fashion
  local title = dataset == "mnist" and "MNIST" or "Fashion-MNIST"
  local o = blua.cli.parse(args, options, {
    name = "train_" .. dataset .. ".lua",
    usage = string.format("blua train_%s.lua [options]", dataset),
    about = string.format("Trains a %s classifier (the paper's 784-64-64-64-10 ReLU network by default, or a small CNN).", title),
  })
  check_options(o)
  if o.threads then blua.setNumThreads(o.threads) end
  -- Under mpirun every rank runs this; rank 0 alone prints and writes files.
  local lead = blua.dist.rank() == 0
  local function say(...) if lead then print(...) end end

  local net, start_epoch, history, optim_state, method = nil, 1, {}, {}, o.method
  if o.resume then
    local ck = load_checkpoint(o.resume, o)
    net, method, history, optim_state = ck.net, ck.method, ck.history, ck.optim_state
    start_epoch = ck.epoch + 1
    local planned = ck.options.epochs
    -- Without --epochs the run continues to the epoch count it was started with, so a stopped
    -- run resumed finishes exactly as an uninterrupted one (the schedule included).
    if o.epochs == nil and planned and ck.epoch >= planned then
      fail("--resume %s: that run finished all %s; give --epochs N (more than %d) to train further",
        o.resume, plural(planned, "epoch"), planned)
    end
    -- options given now win; the others continue as the checkpointed run had them
    for k, v in pairs(ck.options) do if o[k] == nil then o[k] = v end end
    say(string.format("resuming %s from %s after epoch %d", method, o.resume, ck.epoch))
  end

  -- a missing data set is an ordinary mistake too: its message without a position in blua
  local ok_data, train = pcall(load, "train")
  if not ok_data then fail("%s", (tostring(train):gsub("^[^\n]-%.lua:%d+: ", ""))) end
  local test = load("test")
  if o.train_size then train = blua.data.subset(train, 1, math.min(o.train_size, train.n)) end

  o.seed = o.seed or 1
  method = method or o.method or "bregman"
  if not net and o.model == "cnn" then
    blua.manualSeed(o.seed)
    net = experiment.cnn(o.activation)
  elseif not net then
    blua.manualSeed(o.seed)
    local sizes = {784}
    for _, w in ipairs(o.widths) do sizes[#sizes + 1] = w end
    sizes[#sizes + 1] = 10
    sizes.activation = o.activation
    sizes.output = "softmax"
    net = blua.nn.mlp(sizes)
  end

  local defaults = blua.train.defaults(method, net)
  local epochs, batch, lr = o.epochs or defaults.epochs, o.batch or defaults.batch, o.lr or defaults.lr
  if epochs < start_epoch then
    fail("--epochs %d: the checkpoint is already after epoch %d; ask for more epochs", epochs, start_epoch - 1)
  end
  say(string.format("%s: %s, %s on %s, %s, batch %d, %s%s", title,
    net.ops and "CNN (" .. net:nParameters() .. " parameters)" or table.concat(net.sizes, "-"), method, plural(train.n, "sample"), plural(epochs, "epoch"), batch,
    plural(blua.getNumThreads(), "thread"),
    o.distributed and string.format(" per rank, %d ranks (%s)", blua.dist.size(), o.distributed) or ""))

  local log = o.log and lead and open_log(o.log, history)
  local best = -1 -- the best test accuracy so far, resumed runs included
  for _, h in ipairs(history) do best = math.max(best, h.test_acc or -1) end
  local saved_options = {epochs = epochs, batch = batch, lr = lr, seed = o.seed, train_size = o.train_size, model = o.model}
  local ok, err = pcall(blua.train[method], net, train, {
    epochs = epochs, batch = batch, lr = lr, seed = o.seed, test = test, verbose = not o.quiet,
    start_epoch = start_epoch, optim_state = optim_state, distributed = o.distributed,
    on_epoch = function(epoch, stats)
      history[#history + 1] = stats
      if o.quiet then
        say(string.format("epoch %d  loss %.4f  train %s  test %s  %s", epoch, stats.loss,
          percent(stats.train_acc), percent(stats.test_acc), blua.progress.format_time(stats.seconds)))
      end
      if log then log_row(log, stats) end
      local ck = {net = net, method = method, epoch = epoch, history = history,
        optim_state = optim_state, options = saved_options}
      if o.save and lead then blua.save(o.save, ck) end
      if o.save_best and stats.test_acc > best then
        best = stats.test_acc
        if lead then blua.save(o.save_best, ck) end
      end
    end,
  })
  if log then log:close() end
  if not ok then
    local msg = tostring(err)
    if msg:find("^interrupted") then
      -- Ctrl-C: what was trained so far is in the checkpoint and the log.
      local last = history[#history]
      local kept = {}
      if o.save and last then kept[#kept + 1] = string.format("checkpoint %s (--resume it to continue)", o.save) end
      if o.log then kept[#kept + 1] = "log " .. o.log end
      fail("interrupted after epoch %d of %d%s", last and last.epoch or start_epoch - 1, epochs,
        #kept > 0 and "; kept: " .. table.concat(kept, ", ") or "")
    end
    error(err, 0)
  end
  local train_acc, test_acc = blua.metrics.accuracy(net, train), blua.metrics.accuracy(net, test)
  local linear = blua.metrics.linear_fraction(net, test)
  local lin = {}
  for l, f in ipairs(linear) do lin[l] = string.format("layer %d %.1f%%", l, 100 * f) end
  say(string.format("final: train accuracy %s, test accuracy %s", percent(train_acc), percent(test_acc)))
  say("linear activations (test set): " .. table.concat(lin, ", "))
  if o.plot and lead then
    local xs, tr, te, loss = {}, {}, {}, {}
    for _, h in ipairs(history) do
      xs[#xs + 1] = h.epoch
      tr[#tr + 1] = 100 * h.train_acc
      te[#te + 1] = 100 * h.test_acc
      loss[#loss + 1] = h.loss
    end
    local done, perr = blua.plot.lines{path = o.plot, title = title .. " " .. method, xlabel = "epoch",
      ylabel = "accuracy %", y2label = "training loss", integer_x = true,
      series = {{name = "train", x = xs, y = tr}, {name = "test", x = xs, y = te},
        {name = "loss", x = xs, y = loss, axis = "y2"}}}
    print(done and ("plot: " .. o.plot) or ("no plot: " .. perr))
  end
  return {net = net, train_acc = train_acc, test_acc = test_acc, linear = linear, history = history}
end

return experiment
