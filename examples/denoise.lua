-- A sparse denoising autoencoder on Fashion-MNIST by lifted Bregman training, and its decoder
-- used to recover images from a few random measurements of them (network inversion).
-- scripts/autoencoder.lua and scripts/compressed_sensing.lua are the full experiments.
-- Run: blua examples/denoise.lua [training images] [epochs] [picture path]
local blua = require "blua"

local n, epochs, picture = tonumber(arg[1]) or 5000, tonumber(arg[2]) or 5, arg[3] or "denoise.png"

-- Centred images (the test set by the training set's mean) and Gaussian noise of σ = 0.3 on the
-- [0, 1] pixel scale: x is the noisy image, y the clean one.
blua.manualSeed(1)
local clean_train = blua.data.centre(blua.data.subset(blua.data.fashion("train"), 1, n))
local clean_test = blua.data.centre(blua.data.subset(blua.data.fashion("test"), 1, 1000), clean_train.mean)
local train = blua.data.noisy(clean_train, 0.3, {seed = 1})
local test = blua.data.noisy(clean_test, 0.3, {seed = 2})

-- 784-256-256-784: a ReLU layer, the code (soft-threshold with threshold 0.1), an identity
-- output. The L1 weight on the code (layer 2) acts on its auxiliary variable in the X-step.
local code = {name = "soft_threshold", params = {lambda = 0.1}}
local net = blua.nn.mlp{784, 256, 256, 784, activation = {"relu", code}, output = "identity"}
blua.train.bregman(net, train, {epochs = epochs, l1 = {[2] = 0.1}})

print(string.format("noisy test images %.2f dB PSNR, denoised %.2f dB; the code is %.0f %% exact zeros",
  blua.metrics.psnr(test.x, test.y), blua.metrics.psnr(net, test), 100 * blua.metrics.sparsity(net, test, 2)))

-- Recovery from m = 200 Gaussian measurements y = A x of clean test images: find the code u
-- whose decoding (layer 3) matches them, with an L1 term on u, by lifted Bregman inversion.
local m, images = 200, 8
local x = clean_test.x:narrow(1, 1, images)
local A = blua.randn(m, 784):mul(1 / math.sqrt(m))
local u, info = blua.invert(net, x:mm(A:t()), {from = 3, A = A, l1 = 0.01})
print(string.format("from %d measurements of %d pixels: %.2f dB PSNR, the recovered codes %.0f %% zeros", m, 784,
  blua.metrics.psnr(info.output, x), 100 * u:clone():eq(0):sum() / u:nElement()))

-- A picture: noisy input, clean image, denoised, recovered from measurements (gnuplot needed).
local ok, why = blua.plot.images{path = picture, shape = {28, 28}, count = images, mean = clean_train.mean,
  rows = {test.x, test.y, net:forward(test.x:narrow(1, 1, images)), info.output},
  labels = {"noisy", "clean", "denoised", "recovered"}}
print(ok and "wrote " .. picture or "no picture: " .. why)
