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
  invert = "blua.invert",
  image = "blua.image",
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

-- The first activation name a loaded value's networks use that this process does not know
-- (a user activation is stored by name only: it must be defined again before loading).
local function missing_activation(v, known, seen, depth)
  if type(v) ~= "table" or seen[v] or depth > 50 then return nil end
  seen[v] = true
  local acts = rawget(v, "activations")
  if type(acts) == "table" then
    for _, spec in pairs(acts) do
      if type(spec) == "table" and type(spec.name) == "string" and not known[spec.name] then return spec.name end
    end
  end
  for _, x in next, v do
    local name = missing_activation(x, known, seen, depth + 1)
    if name then return name end
  end
  return nil
end

-- Lua drops the arguments past a function's last without a word, so the public functions
-- refuse them (an options table meant for another call, a layer given twice). Given any values
-- past `who`'s last parameter, _noExtra raises the error at the line that called `who`;
-- `usage` lists what it takes, `hint` (or nil) follows the message.
function blua._noExtra(who, usage, hint, ...)
  local extra = select("#", ...)
  if extra > 0 then
    error(string.format("%s: (%s) expected, got %d more argument%s%s", who, usage, extra, extra > 1 and "s" or "",
      hint or ""), 3)
  end
end

-- The same check on module[name] for each name of `usage` (name -> its comma-separated
-- parameters, "" for none). The checked function tail-calls the original, so the original's own
-- errors still point at the caller's line. A prefix ending in ":" (such as "net:") names methods:
-- self is one more argument, not listed in the usage.
function blua._refuseExtra(module, prefix, usage)
  local self_arg = prefix:sub(-1) == ":" and 1 or 0
  for name, params in pairs(usage) do
    local f, who = module[name], prefix .. name
    local most = (params == "" and 0 or select(2, params:gsub(",", "")) + 1) + self_arg
    module[name] = function(...)
      blua._noExtra(who, params, nil, select(most + 1, ...))
      return f(...)
    end
  end
end

-- Library objects are saved under registered type names; make sure blua's own types are known
-- before a checkpoint is read, even when the script has not touched their modules yet. This is
-- a fixed list of blua's modules: the loader itself resolves names only from the registry and
-- never requires anything a file names.
local saveable_modules = {"nn"}
function blua.load(path, ...)
  blua._noExtra("blua.load", "path", nil, ...)
  for _, m in ipairs(saveable_modules) do local _ = blua[m] end
  local ok, v = pcall(core.load, path)
  if not ok then error((tostring(v):gsub("^[^\n]-%.lua:%d+: ", "")), 2) end
  local known = {}
  for _, name in ipairs(blua.activation.list()) do known[name] = true end
  local name = missing_activation(v, known, {}, 1)
  if name then
    error(string.format("unknown activation in 'blua.load': %s uses the activation '%s', which is not " ..
      "defined in this process; run blua.activation.define{name = \"%s\", ...} before blua.load", path, name, name), 2)
  end
  return v
end

-- Torch7's functional forms (blua.exp(t), blua.cmul(a, b), blua.sum(t, 2), ...) that return new
-- tensors, where the name is free (lua/blua/functional.lua).
require("blua.functional").install(blua, function(name) return rawget(blua, name) ~= nil or submodules[name] ~= nil end)

package.loaded["blua"] = blua
return blua
