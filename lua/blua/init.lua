-- blua: lifted training of neural networks. The Lua face of the runtime.
-- The C core (blua.core) provides tensors and kernels; the submodules below add the
-- activations registry, networks, data sets, trainers, optimisers and metrics. Submodules load
-- on first use, so `blua.nn` costs nothing until a script touches it.
local core = require "blua.core"

local blua = {}
for k, v in pairs(core) do blua[k] = v end

local submodules = {
  activation = "blua.activation",
  data = "blua.data",
  dist = "blua.dist",
  nn = "blua.nn",
  train = "blua.train",
  optim = "blua.optim",
  metrics = "blua.metrics",
  progress = "blua.progress",
  plot = "blua.plot",
  cli = "blua.cli",
  experiment = "blua.experiment",
}

local lazy_names = {}
for k in pairs(submodules) do lazy_names[#lazy_names + 1] = k end
table.sort(lazy_names)

setmetatable(blua, {
  __fields = lazy_names, -- for the REPL's Tab completion, which cannot list an __index function
  __index = function(t, k)
    local name = submodules[k]
    if name then
      local m = require(name)
      rawset(t, k, m)
      return m
    end
  end,
})

-- Networks are saved under a registered type name; make sure that type is known before a
-- checkpoint is read, even when the script has not touched blua.nn yet.
function blua.load(path)
  local _ = blua.nn
  return core.load(path)
end

package.loaded["blua"] = blua
return blua
