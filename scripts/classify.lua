-- Predicts the digit in pictures with a network trained on MNIST (a checkpoint from
-- train_mnist.lua --save or --save-best, or a saved network). Each PNG is prepared as MNIST's
-- digits were (blua.image.mnist: grey, white on black, cropped, scaled to 20 pixels, centred
-- by mass in 28 x 28).
--   blua classify.lua net.blua digit.png [more.png ...] [--show]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"show", "flag", false, "print each prepared 28x28 digit as text"},
  {"invert", {"auto", "yes", "no"}, "auto", "invert the picture (auto: when its border is light)"},
}, {usage = "blua classify.lua NET.blua IMAGE.png [IMAGE.png ...] [options]",
    about = "Predicts the digit (0-9) in each picture with a network trained on MNIST."})
if #o.args < 2 then error("give a network file and at least one PNG (try --help)", 0) end

local ok, saved = pcall(blua.load, o.args[1])
if not ok then error(tostring(saved):gsub("^[^\n]-%.lua:%d+: ", ""), 0) end
local net = type(saved) == "table" and saved.net or saved
if getmetatable(net) ~= blua.nn.MLP then
  error(string.format("%s holds no network (a checkpoint of train_mnist.lua or a saved blua.nn network expected)", o.args[1]), 0)
end
if net.sizes[1] ~= 784 then
  error(string.format("%s takes %d inputs; a digit picture gives 784 (28x28)", o.args[1], net.sizes[1]), 0)
end

local invert = ({yes = true, no = false})[o.invert]
for i = 2, #o.args do
  local path = o.args[i]
  local loaded, t = pcall(blua.image.load, path, {grey = true})
  if not loaded then error(tostring(t):gsub("^[^\n]-%.lua:%d+: ", ""), 0) end
  local x, field = blua.image.mnist(t, {invert = invert})
  local p = net:forward(x)
  local label = p:argmax(2):get(1, 1)
  print(string.format("%s: %d  (probability %.2f)", path, label - 1, p:get(1, label)))
  if o.show then
    local shades = {" ", ".", ":", "+", "#"}
    for r = 1, 28 do
      local line = {}
      for c = 1, 28 do line[c] = shades[math.min(5, math.floor(field:get(r, c) * 5) + 1)] end
      print("  " .. table.concat(line))
    end
  end
end
