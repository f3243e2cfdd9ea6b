-- What a training run reports besides its history: the CSV log, the one-line epoch summary
-- and the learning-curve plot.
local blua = require "blua"

local report = {}

-- The CSV log of the per-epoch history (opts.log).
function report.open_log(path)
  local f = assert(io.open(path, "w"))
  f:write("epoch,loss,energy,train_acc,test_acc,lr,seconds\n")
  return f
end

function report.log_row(f, s)
  local function opt(fmt, v) return v and string.format(fmt, v) or "" end
  f:write(string.format("%d,%.6g,%s,%s,%s,%.6g,%.3f\n", s.epoch, s.loss, opt("%.6g", s.energy),
    opt("%.6f", s.train_acc), opt("%.6f", s.test_acc), s.lr, s.seconds))
  f:flush()
end

function report.summary(s)
  local parts = {string.format("loss %.4f", s.loss)}
  if s.energy then parts[#parts + 1] = string.format("energy %.4f", s.energy) end
  if s.train_acc then parts[#parts + 1] = string.format("train %.2f%%", 100 * s.train_acc) end
  if s.test_acc then parts[#parts + 1] = string.format("test %.2f%%", 100 * s.test_acc) end
  return table.concat(parts, "  ")
end

-- Learning curves of the history as a PNG (opts.plot).
function report.plot(path, method, history)
  local series = {}
  for _, c in ipairs{{"train", "train_acc"}, {"test", "test_acc"}} do
    local xs, ys = {}, {}
    for _, h in ipairs(history) do
      if h[c[2]] then xs[#xs + 1], ys[#ys + 1] = h.epoch, 100 * h[c[2]] end
    end
    if #xs > 0 then series[#series + 1] = {name = c[1], x = xs, y = ys} end
  end
  local xs, ys = {}, {}
  for _, h in ipairs(history) do xs[#xs + 1], ys[#ys + 1] = h.epoch, h.loss end
  if #xs > 0 then series[#series + 1] = {name = "loss", x = xs, y = ys, axis = "y2"} end
  local ok, err = blua.plot.lines{path = path, title = method, xlabel = "epoch", ylabel = "accuracy %",
    y2label = "training loss", integer_x = true, series = series}
  if not ok then io.stderr:write("blua: no plot: ", err, "\n") end
end

return report
