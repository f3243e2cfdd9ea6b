-- Layer modules for blua.nn.Sequential: the linear layers (Linear, Conv2d, AvgPool2d) and the
-- free ones (Reshape, Flatten). A module is a description; Sequential:add turns it into an
-- operator record of the network: plain data (kind, sizes, per-sample shapes) plus its
-- parameter tensors, so checkpoints keep it (docs/design.md, "Blocks and operators").
--
-- Per-sample shapes are {C, H, W}; a flat vector of n features is {n, 1, 1}. Rows of a batch
-- are samples, each a flat row read in (channel, row, column) order.
local blua = require "blua"

local layers = {}

local Module = {}
Module.__index = Module
layers.Module = Module

local function positive_int(fname, what, v)
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("%s: %s must be a positive integer, got %s", fname, what, tostring(v)), 3)
  end
end

local function check_opts(fname, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(string.format("%s: an options table expected, got %s", fname, type(opts)), 3) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (accepted: %s)", fname, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

local function module(t) return setmetatable(t, Module) end

-- A constructor called with more arguments than it takes: an error, not a silent default (Torch's
-- nn.Linear(n_in, n_out, false) means no bias, which these layers do not have).
local function no_more(fname, takes, ...)
  local extra = select("#", ...)
  if extra > 0 then
    error(string.format("%s: %d more argument%s than it takes (%s)", fname, extra, extra > 1 and "s" or "", takes), 3)
  end
end

--- blua.nn.Linear(n_in, n_out): an affine layer, x W + b with W n_in x n_out.
function layers.Linear(n_in, n_out, ...)
  no_more("blua.nn.Linear", "n_in, n_out; every layer has a bias", ...)
  positive_int("blua.nn.Linear", "size 1", n_in)
  positive_int("blua.nn.Linear", "size 2", n_out)
  return module{kind = "linear", n_in = n_in, n_out = n_out}
end

--- blua.nn.Conv2d(c_in, c_out, k, {stride = 1, padding = 0}): 2-D cross-correlation with
-- c_out filters of c_in x k x k and a bias per output channel.
function layers.Conv2d(c_in, c_out, k, opts, ...)
  local f = "blua.nn.Conv2d"
  no_more(f, "c_in, c_out, k, {stride =, padding =}", ...)
  positive_int(f, "input channels", c_in)
  positive_int(f, "output channels", c_out)
  positive_int(f, "kernel size", k)
  opts = check_opts(f, opts, {stride = true, padding = true})
  local stride, padding = opts.stride or 1, opts.padding or 0
  positive_int(f, "stride", stride)
  if math.type(padding) ~= "integer" or padding < 0 then
    error(string.format("%s: padding must be a non-negative integer, got %s", f, tostring(padding)), 2)
  end
  return module{kind = "conv2d", c_in = c_in, c_out = c_out, k = k, stride = stride, padding = padding}
end

--- blua.nn.AvgPool2d(k, {stride = k}): the mean of each k x k window, per channel.
function layers.AvgPool2d(k, opts, ...)
  local f = "blua.nn.AvgPool2d"
  no_more(f, "k, {stride =}", ...)
  positive_int(f, "kernel size", k)
  opts = check_opts(f, opts, {stride = true})
  local stride = opts.stride or k
  positive_int(f, "stride", stride)
  return module{kind = "avgpool2d", k = k, stride = stride}
end

--- blua.nn.Reshape(C, H, W) or Reshape(n): read each row as a C x H x W image (or n features).
function layers.Reshape(...)
  local dims = {...}
  if select("#", ...) < 1 or select("#", ...) > 3 then error("blua.nn.Reshape: 1 to 3 sizes expected (C, H, W)", 2) end
  for i = 1, select("#", ...) do positive_int("blua.nn.Reshape", "size " .. i, dims[i]) end
  local shape = {dims[1], dims[2] or 1, dims[3] or 1}
  if #dims == 2 then shape = {1, dims[1], dims[2]} end
  return module{kind = "reshape", shape = shape}
end

--- blua.nn.Flatten(): read each row as a flat vector again (free: rows are stored flat).
function layers.Flatten(...)
  no_more("blua.nn.Flatten", "no arguments", ...)
  return module{kind = "flatten"}
end

local function size_of(s) return s[1] * s[2] * s[3] end
layers.size_of = size_of

function layers.shape_string(s)
  if s[2] == 1 and s[3] == 1 then return tostring(s[1]) end
  return string.format("%dx%dx%d", s[1], s[2], s[3])
end
local shape_string = layers.shape_string

-- A readable one-line description of a module (for errors and print(net)).
function layers.describe(m)
  if m.kind == "linear" then return string.format("Linear(%d, %d)", m.n_in, m.n_out) end
  if m.kind == "conv2d" then
    return string.format("Conv2d(%d, %d, %d, stride %d, padding %d)", m.c_in, m.c_out, m.k, m.stride, m.padding)
  end
  if m.kind == "avgpool2d" then return string.format("AvgPool2d(%d, stride %d)", m.k, m.stride) end
  if m.kind == "reshape" then return string.format("Reshape(%s)", table.concat(m.shape, ", ")) end
  return "Flatten()"
end

local function output_size(fname, what, n, k, stride, padding, in_shape)
  local span = n + 2 * padding - k
  if span < 0 then
    error(string.format("size mismatch in 'add': %s needs a %s of at least %d, the input is %s (padding %d)",
      fname, what, k, shape_string(in_shape), padding), 4)
  end
  return span // stride + 1
end

-- The output shape of module m on input shape `s` (nil before the first layer), with a
-- clear error naming the layer and both shapes when they do not fit.
function layers.out_shape(m, s)
  local name = layers.describe(m)
  if m.kind == "reshape" then
    if s and size_of(s) ~= size_of(m.shape) then
      error(string.format("size mismatch in 'add': %s of a %s input (%d features, not %d)", name, shape_string(s),
        size_of(s), size_of(m.shape)), 3)
    end
    return {m.shape[1], m.shape[2], m.shape[3]}
  elseif m.kind == "flatten" then
    if not s then error("blua.nn.Sequential: Flatten cannot be the first layer; start with Linear or Reshape", 3) end
    return {size_of(s), 1, 1}
  elseif m.kind == "linear" then
    if s and size_of(s) ~= m.n_in then
      error(string.format("size mismatch in 'add': %s after a layer of %d outputs%s", name, size_of(s),
        s[2] * s[3] > 1 and string.format(" (%s)", shape_string(s)) or ""), 3)
    end
    return {m.n_out, 1, 1}
  end
  if not s then
    error(string.format("blua.nn.Sequential: %s needs an image input; add blua.nn.Reshape(C, H, W) first", name), 3)
  end
  if m.kind == "conv2d" then
    if s[1] ~= m.c_in then
      error(string.format("size mismatch in 'add': %s takes %d channels, the input is %s", name, m.c_in, shape_string(s)), 3)
    end
    local pad = m.padding
    return {m.c_out, output_size(name, "height", s[2], m.k, m.stride, pad, s),
      output_size(name, "width", s[3], m.k, m.stride, pad, s)}
  end
  -- avgpool2d
  return {s[1], output_size(name, "height", s[2], m.k, m.stride, 0, s), output_size(name, "width", s[3], m.k, m.stride, 0, s)}
end

-- The operator record of a linear module on input shape `s` with output shape `o`, its
-- parameters drawn now (He initialisation: variance 2/fan_in; zero biases).
function layers.record(m, s, o)
  if m.kind == "linear" then
    return {kind = "linear", in_shape = {size_of(s), 1, 1}, out_shape = o,
      weight = blua.randn(m.n_in, m.n_out):mul(math.sqrt(2 / m.n_in)), bias = blua.zeros(1, m.n_out)}
  elseif m.kind == "conv2d" then
    local fan_in = m.c_in * m.k * m.k
    return {kind = "conv2d", in_shape = s, out_shape = o, k = m.k, stride = m.stride, padding = m.padding,
      weight = blua.randn(m.c_out, fan_in):mul(math.sqrt(2 / fan_in)), bias = blua.zeros(1, m.c_out)}
  elseif m.kind == "avgpool2d" then
    return {kind = "avgpool2d", in_shape = s, out_shape = o, k = m.k, stride = m.stride}
  end
  return nil -- reshape and flatten are free on row storage
end

-- The parameter tensors of a record, in order (weight, then bias).
function layers.record_params(r)
  if r.weight then return {r.weight, r.bias} end
  return {}
end

return layers
