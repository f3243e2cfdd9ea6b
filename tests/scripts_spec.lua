-- The training scripts end to end: options, checkpoints, resuming, logs and plots.
local blua = require "blua"
local support = require "tests.support"

local run = support.run

describe("scripts/train_mnist.lua", function()
  it("prints its options with --help and refuses unknown ones", function()
    local out, code = run("scripts/train_mnist.lua --help")
    assert.equal(0, code)
    for _, opt in ipairs{"--method", "--epochs", "--batch", "--seed", "--threads", "--train-size", "--save", "--resume", "--log", "--plot"} do
      assert.truthy(out:find(opt, 1, true), opt .. " missing from --help")
    end
    out, code = run("scripts/train_mnist.lua --epoch 3")
    assert.equal(1, code)
    assert.truthy(out:find("unknown option --epoch", 1, true), out)
    out, code = run("scripts/train_mnist.lua --method sgd")
    assert.equal(1, code)
  end)

  if not pcall(blua.data.mnist, "test") then
    pending("MNIST is not fetched (scripts/fetch-data)")
    return
  end

  it("trains, saves, resumes, logs and plots", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local out, code = run(string.format("scripts/train_mnist.lua --train-size 2000 --epochs 1 --quiet --save %s/ck.blua", dir))
    assert.equal(0, code, out)
    assert.truthy(out:find("final: train accuracy", 1, true), out)
    assert.truthy(out:find("linear activations (test set): layer 1", 1, true), out)
    local ck = blua.load(dir .. "/ck.blua")
    assert.equal(1, ck.epoch)
    assert.equal("bregman", ck.method)
    out, code = run(string.format("scripts/train_mnist.lua --resume %s/ck.blua --epochs 2 --quiet --log %s/log.csv --plot %s/c.png", dir, dir, dir))
    assert.equal(0, code, out)
    assert.truthy(out:find("resuming bregman from", 1, true), out)
    assert.truthy(out:find("on 2000 samples", 1, true), out)
    assert.truthy(out:find("epoch 2 ", 1, true), out)
    assert.is_nil(out:find("epoch 1 ", 1, true), "the resumed run repeats epoch 1")
    local f = assert(io.open(dir .. "/log.csv"))
    assert.truthy(f:read("a"):find("^epoch,loss"))
    f:close()
    if blua.plot.available() then assert.truthy(io.open(dir .. "/c.png")) end
    os.execute("rm -rf " .. dir)
  end)

  it("runs the other methods", function()
    for _, m in ipairs{"backprop", "lifted"} do
      local out, code = run("scripts/train_fashion.lua --train-size 1000 --epochs 1 --quiet --method " .. m)
      assert.equal(0, code, out)
      assert.truthy(out:find("Fashion-MNIST: 784-64-64-64-10, " .. m, 1, true), out)
    end
  end)

  it("trains the small CNN with --model cnn and reports its conv layers' linear shares", function()
    local out, code = run("scripts/train_fashion.lua --model cnn --train-size 300 --epochs 1 --quiet")
    assert.equal(0, code, out)
    assert.truthy(out:find("Fashion-MNIST: CNN (105194 parameters), bregman", 1, true), out)
    assert.truthy(out:find("linear activations (test set): layer 1 ", 1, true), out)
    assert.truthy(out:find("layer 3 ", 1, true), out)
  end)
end)
