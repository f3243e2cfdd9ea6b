-- scripts/autoencoder.lua and scripts/compressed_sensing.lua end to end in their quick modes:
-- they run, print their tables and write the report, the image grid and the plot.
local blua = require "blua"
local support = require "tests.support"

local run = support.run

describe("the autoencoder and compressed sensing scripts", function()
  it("refuse unknown options", function()
    local out, code = run("scripts/autoencoder.lua --sigm 0.1")
    assert.are_not.equal(0, code)
    assert.truthy(out:find("unknown option --sigm", 1, true), out)
    out, code = run("scripts/compressed_sensing.lua --help")
    assert.equal(0, code)
    assert.truthy(out:find("--model", 1, true), out)
  end)

  if not pcall(blua.data.fashion, "test") then
    pending("Fashion-MNIST is not fetched (scripts/fetch-data)")
    return
  end

  it("write their reports, grids and plots in quick mode", function()
    local dir = os.tmpname()
    os.remove(dir)
    local out, code = run("scripts/autoencoder.lua --quick --out " .. dir)
    assert.equal(0, code, out)
    local report = support.read_file(dir .. "/autoencoder-quick.md")
    for _, name in ipairs{"Bregman lifted", "classical lifted", "back-prop"} do
      assert.truthy(report:find("| 200 | " .. name .. " | ", 1, true), report)
    end
    assert.truthy(report:find("Noisy test input: **10.", 1, true), report) -- σ = 0.3: about 10.5 dB
    assert.truthy(report:find("each trainer's default Adam rate", 1, true), report)
    -- --lr sets every method's rate; --trace prints each epoch's energies and the five ‖W_l‖₂
    out, code = run("scripts/autoencoder.lua --quick --five-layers --methods bregman --lr 5e-4 --trace --out " .. dir)
    assert.equal(0, code, out)
    assert.truthy(out:find("bregman epoch 2: loss [%d.]+  E1 [%d.]+  E2 [%d.]+  E3 [%d.]+  E4 [%d.]+  ‖W‖₂ [%d.]+ [%d.]+ [%d.]+ [%d.]+ [%d.]+\n"), out)
    report = support.read_file(dir .. "/autoencoder-quick.md")
    assert.truthy(report:find("five weight layers", 1, true), report)
    assert.truthy(report:find("Adam's rate 0.0005 for every method", 1, true), report)
    assert.truthy(report:find("| 200 | Bregman lifted | ", 1, true), report)
    -- --test-rho reads the trained network with another code threshold: a huge one zeroes the
    -- whole code in the metrics, and the saved network keeps the threshold it was trained with
    out, code = run("scripts/autoencoder.lua --quick --methods backprop --test-rho 100 --save " .. dir .. " --out " .. dir)
    assert.equal(0, code, out)
    report = support.read_file(dir .. "/autoencoder-quick.md")
    assert.truthy(report:find("read with the code threshold 100", 1, true), report)
    assert.truthy(report:find("| 100.0 ± 0.0 |", 1, true), report)
    assert.equal(0.1, blua.load(dir .. "/autoencoder-backprop.blua").net.activations[3].params.lambda)
    out, code = run("scripts/compressed_sensing.lua --quick --out " .. dir)
    assert.equal(0, code, out)
    report = support.read_file(dir .. "/compressed_sensing-quick.md")
    assert.truthy(report:find("| 25 | ", 1, true), report)
    assert.truthy(report:find("| 100 | ", 1, true), report)
    if blua.plot.available() then
      assert.equal("\137PNG", support.read_file(dir .. "/autoencoder-quick.png"):sub(1, 4))
      assert.equal("\137PNG", support.read_file(dir .. "/compressed_sensing-quick.png"):sub(1, 4))
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
