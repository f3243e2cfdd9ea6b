-- A small convolutional network on Fashion-MNIST, written layer by layer and trained by
-- lifted Bregman training with the library defaults. Linear layers with no activation between
-- them form one lifted block, so the poolings need no auxiliary variables of their own:
-- the blocks are [conv1], [pool, conv2], [pool, linear] and [linear] (print(net) shows them).
-- This is the CNN of RESULTS.md (about 91.4 % test accuracy after 10 epochs).
-- Run: blua examples/cnn_fashion.lua [epochs] [method] [training images]
--      (defaults: 10, bregman, all 60000)
local blua = require "blua"
local nn = blua.nn

local epochs = math.tointeger(tonumber(arg and arg[1] or "")) or 10
local method = arg and arg[2] or "bregman"
local size = math.tointeger(tonumber(arg and arg[3] or ""))

blua.manualSeed(1)
local net = nn.Sequential()
  :add(nn.Reshape(1, 28, 28))                       -- rows of data.x are flattened images
  :add(nn.Conv2d(1, 8, 5, {padding = 2})):add("relu")
  :add(nn.AvgPool2d(2))
  :add(nn.Conv2d(8, 16, 5, {padding = 2})):add("relu")
  :add(nn.AvgPool2d(2))
  :add(nn.Flatten())
  :add(nn.Linear(16 * 7 * 7, 128)):add("relu")
  :add(nn.Linear(128, 10)):add("softmax")
print(net)

local train, test = blua.data.fashion("train"), blua.data.fashion("test")
if size then train, test = blua.data.subset(train, 1, size), blua.data.subset(test, 1, math.min(size, test.n)) end
blua.train[method](net, train, {epochs = epochs, test = test})
print(string.format("test accuracy %.2f%%", 100 * blua.metrics.accuracy(net, test)))
local lin = blua.metrics.linear_fraction(net, test)
print(string.format("linear activations: conv1 %.1f%%, conv2 %.1f%%, hidden %.1f%%", 100 * lin[1], 100 * lin[2], 100 * lin[3]))
