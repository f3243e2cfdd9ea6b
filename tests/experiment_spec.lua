-- train_mnist.lua as a user drives it: Ctrl-C keeps what was trained, --resume continues the
-- planned run bit for bit, logs keep their earlier epochs, --save-best, plots, and output
-- that reads well (one time format, "1 epoch").
local blua = require "blua"
local support = require "tests.support"
local write_file = support.write_file

local q = support.quote

local tmp = support.tempdir(teardown)

-- stdout, stderr and status of `env blua args`.
local function run(args, env) return support.run_split(tmp, args, env) end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

-- A driver that sends the process SIGINT (a real Ctrl-C) right after the epoch-$STOP_AT
-- checkpoint is written.
local driver = tmp .. "/driver.lua"
write_file(driver, [[
local at = tonumber(os.getenv("STOP_AT"))
local save = blua.save
blua.save = function(path, obj)
  save(path, obj)
  if obj.epoch == at then io.popen("kill -INT $PPID"):close() end
end
blua.experiment.main("mnist", arg)
]])

local function same_weights(a, b)
  for l = 1, a:nLayers() do
    if (a.W[l] - b.W[l]):abs():max() ~= 0 or (a.b[l] - b.b[l]):abs():max() ~= 0 then return false end
  end
  return true
end

describe("train_mnist.lua", function()
  if not pcall(blua.data.mnist, "test") then
    pending("MNIST is not fetched (scripts/fetch-data)")
    return
  end
  local common = "--train-size 600 --threads 1 --quiet "

  for _, method in ipairs{"bregman", "lifted", "backprop"} do
    it("stops cleanly on Ctrl-C and resumes to the planned epoch, bit for bit (" .. method .. ")", function()
      local d = tmp .. "/" .. method
      os.execute("mkdir -p " .. q(d))
      local ck, log = q(d .. "/ck.blua"), q(d .. "/log.csv")
      local out, err, code = run(string.format("%s %s --method %s --epochs 4 --save %s --log %s",
        q(driver), common, method, ck, log), "STOP_AT=2")
      assert.equal(1, code, err)
      assert.truthy(err:match("^blua: interrupted after epoch 2 of 4; kept: checkpoint [^\n]*\n$"), err)
      assert.falsy(out:find("epoch 3", 1, true), out)
      assert.equal(2, blua.load(d .. "/ck.blua").epoch)
      assert.equal(3, select(2, read(d .. "/log.csv"):gsub("\n", "")))
      -- no --epochs: the run continues to the 4 epochs it planned; the log keeps epochs 1-2
      out, err, code = run(string.format("scripts/train_mnist.lua --resume %s --save %s --log %s %s", ck, ck, log, common))
      assert.equal(0, code, err)
      assert.truthy(out:find("4 epochs", 1, true), out)
      assert.truthy(out:find("\nepoch 3 ", 1, true) and out:find("\nepoch 4 ", 1, true), out)
      local rows = {}
      for e in read(d .. "/log.csv"):gmatch("\n(%d+),") do rows[#rows + 1] = tonumber(e) end
      assert.same({1, 2, 3, 4}, rows)
      -- the same as one uninterrupted run: the schedule and the optimiser state continued
      out, err, code = run(string.format("scripts/train_mnist.lua %s --method %s --epochs 4 --save %s",
        common, method, q(d .. "/straight.blua")))
      assert.equal(0, code, err)
      assert.is_true(same_weights(blua.load(d .. "/ck.blua").net, blua.load(d .. "/straight.blua").net))
      -- a finished run does not train 0 epochs silently
      out, err, code = run(string.format("scripts/train_mnist.lua --resume %s %s", ck, common))
      assert.equal(1, code)
      assert.truthy(err:find("that run finished all 4 epochs; give --epochs N (more than 4)", 1, true), err)
    end)
  end

  it("keeps the best test accuracy's checkpoint with --save-best", function()
    local best = tmp .. "/best.blua"
    local _, err, code = run(string.format("scripts/train_mnist.lua %s --epochs 3 --save-best %s --lr 0.05 --method backprop",
      common, q(best)))
    assert.equal(0, code, err)
    local ck = blua.load(best)
    local top, at = -1, nil
    for _, h in ipairs(ck.history) do if h.test_acc > top then top, at = h.test_acc, h.epoch end end
    assert.equal(at, ck.epoch)
    assert.equal(top, blua.metrics.accuracy(ck.net, blua.data.mnist("test")))
  end)

  it("prints times one way, and 1 epoch / 1 thread in the singular", function()
    local out, err, code = run("scripts/train_mnist.lua --train-size 300 --threads 1 --epochs 1 --quiet --method backprop")
    assert.equal(0, code, err)
    assert.truthy(out:find("on 300 samples, 1 epoch, batch 128, 1 thread\n", 1, true), out)
    assert.truthy(out:match("\nepoch 1 [^\n]* %d+%.%ds\n"), out)
    out = run("scripts/train_mnist.lua --train-size 300 --threads 1 --epochs 1 --method backprop")
    assert.truthy(out:match("\nbackprop epoch 1/1 [^\n]* in %d+%.%ds\n"), out)
  end)
end)

describe("blua.plot.commands", function()
  it("puts epoch ticks on whole numbers and a loss on a second axis", function()
    local cmds = table.concat(blua.plot.commands{path = "x.png", integer_x = true, y2label = "loss",
      series = {{name = "test", x = {1, 2, 3}, y = {90, 91, 92}}, {name = "loss", x = {1, 2, 3}, y = {1, .5, .3}, axis = "y2"}}}, "\n")
    assert.truthy(cmds:find("set xtics 1\n", 1, true), cmds)
    assert.truthy(cmds:find("set format x '%.0f'", 1, true), cmds)
    assert.truthy(cmds:find("'-' using 1:2 axes x1y2 with linespoints title \"loss\"", 1, true), cmds)
    assert.truthy(cmds:find("set y2label \"loss\"", 1, true), cmds)
  end)
end)
