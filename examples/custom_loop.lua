-- Your own lifted Bregman training loop, from blua's building blocks: the forward pass
-- initialises the auxiliary variables, X-steps update them, the energy's W-gradients drive
-- Adam. This is the loop blua.train.bregman runs (in fused form); change any line of it.
-- Run: blua examples/custom_loop.lua
local blua = require "blua"

blua.manualSeed(1)
local train = blua.data.subset(blua.data.mnist("train"), 1, 5000)
local test = blua.data.subset(blua.data.mnist("test"), 1, 2000)
local net = blua.nn.mlp{784, 64, 64, 10, activation = "relu"}
local L = net:nLayers()
local adam = {} -- optimiser state
local params = net:parameters()

for epoch = 1, 3 do
  for x, y in blua.data.batches(train, 100, {shuffle = true, seed = epoch}) do
    -- auxiliary variables from the forward pass: every hidden Bregman penalty starts at 0
    local _, X = net:forwardAll(x)
    X[0], X[L] = x, blua.data.onehot(y, 10)
    for l = L - 1, 1, -1 do blua.train.xstep("bregman", net, X, l, {loss_weight = 0.1}) end
    local grads = blua.train.gradients("bregman", net, x, y, {X = X, loss_weight = 0.1})
    blua.optim.adam(function() return 0, grads end, params, {learningRate = 4e-3 * 0.7 ^ (epoch - 1)}, adam)
  end
  local lin = blua.metrics.linear_fraction(net, test)
  print(string.format("epoch %d: test accuracy %.2f%%, linear activations %.0f%% / %.0f%%", epoch,
    100 * blua.metrics.accuracy(net, test), 100 * lin[1], 100 * lin[2]))
end
