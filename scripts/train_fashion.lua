-- Trains the paper's 784-64-64-64-10 ReLU network on Fashion-MNIST by lifted Bregman
-- training (or --method lifted|backprop) and prints train/test accuracy and linear activations.
--   blua train_fashion.lua [--method bregman] [--epochs N] [--help]
local blua = require "blua"
blua.experiment.main("fashion", arg)
