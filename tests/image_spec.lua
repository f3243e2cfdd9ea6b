-- blua.image: PNG round trips, refusals, resampling, the MNIST preparation of a user's
-- picture, and scripts/classify.lua on MNIST test digits written as PNGs and on the drawn
-- digits of tests/data/.
local blua = require "blua"
local support = require "tests.support"

local exe = os.getenv("BLUA_EXE") or "build/blua"
local q = support.quote

local tmp = support.tempdir(teardown)

local function message(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return tostring(err)
end

describe("blua.image", function()
  it("saves and loads grey pictures to within half a grey level", function()
    blua.manualSeed(5)
    local t = blua.rand(7, 5)
    local path = tmp .. "/grey.png"
    blua.image.save(path, t)
    local u, h, w, c = blua.image.load(path)
    assert.same({7, 5, 1}, {h, w, c})
    assert.same({7, 5}, {u:size()})
    assert.is_true((u - t):abs():max() <= 0.5 / 255 + 1e-6)
    -- values outside [0, 1] and NaN are clamped (NaN to 0), views are fine
    blua.image.save(path, blua.tensor{{-1, 2, 0 / 0}, {0.5, 1, 0}}:t())
    assert.same({{0, 1}, {2, 2}, {0, 0}}, (blua.image.load(path) * 2):floor():totable())
  end)

  it("loads colour as planes (3 x H x W, or 3H x W without 3-d tensors) and as grey on request", function()
    local planes = blua.zeros(6, 2) -- red, green, blue planes of 2 x 2
    planes:narrow(1, 1, 2):fill(1)  -- pure red
    local path = tmp .. "/red.png"
    blua.image.save(path, planes, {colour = true})
    local u, h, w, c = blua.image.load(path)
    assert.same({2, 2, 3}, {h, w, c})
    assert.equal(12, u:nElement())
    local flat = u:contiguous():view(1, 12)
    assert.same({1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}, flat:totable()[1])
    local g = blua.image.load(path, {grey = true})
    assert.same({2, 2}, {g:size()})
    local red = g:get(1, 1) -- red's luminance: darker than white, brighter than black
    assert.is_true(red > 0.1 and red < 0.7, red)
  end)

  it("refuses what is not a PNG file with a message naming the file", function()
    assert.truthy(message(blua.image.load, tmp .. "/none.png"):find("cannot open image in 'blua.image.load': '" .. tmp .. "/none.png'", 1, true))
    support.write_file(tmp .. "/text.png", "not a picture")
    assert.truthy(message(blua.image.load, tmp .. "/text.png"):find("bad image", 1, true))
    os.execute("mkfifo " .. q(tmp .. "/fifo.png"))
    assert.truthy(message(blua.image.load, tmp .. "/fifo.png"):find("not a regular file", 1, true))
    assert.truthy(message(blua.image.load, tmp):find("not a regular file", 1, true))
    assert.truthy(message(blua.image.save, tmp .. "/x.png", blua.zeros(5, 2), {colour = true}):find("3H rows", 1, true))
    assert.truthy(message(blua.image.save, "/nonexistent/x.png", blua.zeros(2, 2)):find("cannot save image", 1, true))
    assert.truthy(message(blua.image.load, 3):find("a path expected", 1, true))
  end)

  it("resizes by area averages", function()
    local t = blua.tensor{{1, 3, 0, 0}, {5, 7, 0, 0}, {0, 0, 2, 2}, {0, 0, 2, 2}}
    assert.same({{4, 0}, {0, 2}}, blua.image.resize(t, 2, 2):totable())
    assert.same(t:totable(), blua.image.resize(t, 4, 4):totable())
  end)

  it("prepares a drawing as MNIST: inverted, cropped, 20 pixels tall, centred by mass", function()
    local page = blua.ones(100, 60)                          -- white page
    page:narrow(1, 10, 40):narrow(2, 40, 6):fill(0)         -- a black bar, up and to the right
    local x, field = blua.image.mnist(page)
    assert.same({1, 784}, {x:size()})
    assert.equal(1, field:max())
    local rows, mass, my, mx = {}, 0, 0, 0
    for i = 1, 28 do
      for j = 1, 28 do
        local v = field:get(i, j)
        if v > 0 then rows[i] = true end
        mass, my, mx = mass + v, my + v * (i - 0.5), mx + v * (j - 0.5)
      end
    end
    local n = 0
    for _ in pairs(rows) do n = n + 1 end
    assert.equal(20, n)                                     -- the longer side is 20 pixels
    assert.is_true(math.abs(my / mass - 14) <= 0.5 and math.abs(mx / mass - 14) <= 0.5)
    assert.truthy(message(blua.image.mnist, blua.ones(5, 5)):find("blank", 1, true))
  end)
end)

describe("scripts/classify.lua", function()
  if not pcall(blua.data.mnist, "test") then
    pending("MNIST is not fetched (scripts/fetch-data)")
    return
  end

  it("classifies MNIST test digits written as PNG, and drawn digits, at the network's accuracy", function()
    -- the default network (784-64-64-64-10, lifted Bregman, library defaults) on a shortened
    -- budget so the spec stays fast: 2 epochs of 20000 samples
    local net_path = tmp .. "/net.blua"
    local p = io.popen(string.format("%s scripts/train_mnist.lua --train-size 20000 --epochs 2 --quiet --save %s 2>&1",
      q(exe), q(net_path)))
    local out = p:read("a")
    assert.is_true(p:close(), out)
    local net = blua.load(net_path).net
    local test = blua.data.mnist("test")
    local acc = blua.metrics.accuracy(net, test)
    assert.is_true(acc > 0.9, acc)
    local files, direct = {}, net:predict(test.x:narrow(1, 1, 20))
    for i = 1, 20 do
      files[i] = string.format("%s/test-%02d-digit%d.png", tmp, i, test.y:get(i, 1) - 1)
      blua.image.save(files[i], test.x:narrow(1, i, 1):clone():view(28, 28))
    end
    local hand = {"tests/data/hand-0.png", "tests/data/hand-1.png", "tests/data/hand-3.png",
      "tests/data/hand-4.png", "tests/data/hand-7.png"}
    p = io.popen(string.format("%s scripts/classify.lua %s %s %s 2>&1", q(exe), q(net_path),
      table.concat(files, " "), table.concat(hand, " ")))
    out = p:read("a")
    assert.is_true(p:close(), out)
    local said = {}
    for path, digit in out:gmatch("([^\n]+%.png): (%d)  %(probability [%d.]+%)\n") do said[path] = tonumber(digit) end
    local right, agree = 0, 0
    for i, f in ipairs(files) do
      assert.truthy(said[f], out)
      if said[f] == test.y:get(i, 1) - 1 then right = right + 1 end
      if said[f] == direct:get(i, 1) - 1 then agree = agree + 1 end
    end
    -- the pictures are classified as the tensors are (the preparation keeps MNIST digits as
    -- they are), and as often right as the network is on the test set
    assert.is_true(agree >= 19, "agree " .. agree .. "\n" .. out)
    assert.is_true(right / 20 >= acc - 0.1, right .. "/20 at test accuracy " .. acc .. "\n" .. out)
    for _, f in ipairs(hand) do
      assert.equal(tonumber(f:match("hand%-(%d)")), said[f], out)
    end
  end)

  it("says what is wrong with its arguments in one line", function()
    local p = io.popen(string.format("%s scripts/classify.lua %s 2>&1", q(exe), q(tmp .. "/nothing.blua")))
    local out = p:read("a")
    local ok, _, code = p:close()
    assert.is_falsy(ok)
    assert.equal(1, code)
    assert.truthy(out:match("^blua: give a network file and at least one PNG %(try %-%-help%)\n$"), out)
  end)
end)
