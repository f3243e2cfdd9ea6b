-- A plain-Lua reference of the layer operators (conv2d, avgpool2d, linear and their chains),
-- written from the definitions with one column copy per (position, kernel entry). Slow, and
-- only for specs: it checks the C operators and lets the block logic be tested on its own.
-- It has the interface of a block backend (blua.nn.block.use_backend).
local blua = require "blua"

local ref = {}

local function size(s) return s[1] * s[2] * s[3] end
local function col(t, j) return t:narrow(2, j, 1) end

-- For each (output position p, kernel entry q) of a window operator, calls
-- fn(p, q, input column) with 1-based input column indices inside the image.
local function windows(r, channels_in_q, fn)
  local C, H, W = r.in_shape[1], r.in_shape[2], r.in_shape[3]
  local OH, OW = r.out_shape[2], r.out_shape[3]
  local k, stride, pad = r.k, r.stride, r.padding or 0
  for oh = 0, OH - 1 do
    for ow = 0, OW - 1 do
      local p = oh * OW + ow
      for c = 0, (channels_in_q and C or 1) - 1 do
        for i = 0, k - 1 do
          for j = 0, k - 1 do
            local hi, wi = oh * stride - pad + i, ow * stride - pad + j
            if hi >= 0 and hi < H and wi >= 0 and wi < W then
              fn(p, (c * k + i) * k + j, c * H * W + hi * W + wi + 1, c)
            end
          end
        end
      end
    end
  end
end

local function im2col(r, x)
  local n, P = x:size(1), r.out_shape[2] * r.out_shape[3]
  local cols = blua.zeros(P * n, r.in_shape[1] * r.k * r.k)
  windows(r, true, function(p, q, j) col(cols:narrow(1, p * n + 1, n), q + 1):copy(col(x, j)) end)
  return cols
end

-- (N x Co*P) <-> (P*N x Co)
local function to_rows(r, t)
  local n, Co, P = t:size(1), r.out_shape[1], r.out_shape[2] * r.out_shape[3]
  local out = blua.zeros(P * n, Co)
  for p = 0, P - 1 do
    for c = 0, Co - 1 do col(out:narrow(1, p * n + 1, n), c + 1):copy(col(t, c * P + p + 1)) end
  end
  return out
end

local ops = {}

ops.linear = {
  forward = function(r, p, x, y, bias)
    y:addmm(0, 1, x, p[1])
    if bias then y:add(blua.ones(y:size(1), 1):mm(p[2])) end
  end,
  adjoint = function(_, p, rr, g) g:addmm(0, 1, rr, p[1]:t()) end,
  wgrad = function(_, _, x, rr, grads, scale)
    grads[1]:addmm(0, scale, x:t(), rr)
    grads[2]:zero():add(scale, rr:sumRows())
  end,
}

ops.conv2d = {
  forward = function(r, p, x, y, bias)
    local n, Co, P = x:size(1), r.out_shape[1], r.out_shape[2] * r.out_shape[3]
    local Y = im2col(r, x):mm(p[1]:t())
    for pp = 0, P - 1 do
      for c = 0, Co - 1 do
        local dst = col(y, c * P + pp + 1):copy(col(Y:narrow(1, pp * n + 1, n), c + 1))
        if bias then dst:add(p[2]:get(1, c + 1)) end
      end
    end
  end,
  adjoint = function(r, p, rr, g)
    local n = rr:size(1)
    local dcols = to_rows(r, rr):mm(p[1])
    g:zero()
    windows(r, true, function(pp, q, j) col(g, j):add(col(dcols:narrow(1, pp * n + 1, n), q + 1)) end)
  end,
  wgrad = function(r, _, x, rr, grads, scale)
    local R = to_rows(r, rr)
    grads[1]:addmm(0, scale, R:t(), im2col(r, x))
    grads[2]:zero():add(scale, R:sumRows())
  end,
}

ops.avgpool2d = {
  forward = function(r, _, x, y)
    local C, P, w = r.in_shape[1], r.out_shape[2] * r.out_shape[3], 1 / (r.k * r.k)
    y:zero()
    for c = 0, C - 1 do
      windows({in_shape = {1, r.in_shape[2], r.in_shape[3]}, out_shape = r.out_shape, k = r.k, stride = r.stride},
        false, function(pp, _, j) col(y, c * P + pp + 1):add(w, col(x, c * r.in_shape[2] * r.in_shape[3] + j)) end)
    end
  end,
  adjoint = function(r, _, rr, g)
    local C, P, w = r.in_shape[1], r.out_shape[2] * r.out_shape[3], 1 / (r.k * r.k)
    g:zero()
    for c = 0, C - 1 do
      windows({in_shape = {1, r.in_shape[2], r.in_shape[3]}, out_shape = r.out_shape, k = r.k, stride = r.stride},
        false, function(pp, _, j) col(g, c * r.in_shape[2] * r.in_shape[3] + j):add(w, col(rr, c * P + pp + 1)) end)
    end
  end,
}

-- The members of a chain with their own parameter lists.
local function members(records, params)
  local m, i = {}, 1
  for _, r in ipairs(records) do
    local p = {}
    if r.weight then p, i = {params[i], params[i + 1]}, i + 2 end
    m[#m + 1] = {r = r, p = p, first = i - #p}
  end
  return m
end

function ref.build(records) return records end

-- Inputs of every member at x (inputs[1] = x); with bias = false the map is linear.
local function run(records, params, x, bias)
  local inputs = {x}
  for k, m in ipairs(members(records, params)) do
    local y = blua.zeros(x:size(1), size(m.r.out_shape))
    ops[m.r.kind].forward(m.r, m.p, inputs[k], y, bias)
    inputs[k + 1] = y
  end
  return inputs
end

function ref.forward(records, params, x, y)
  local inputs = run(records, params, x, true)
  y:copy(inputs[#inputs])
end

local function adjoint_from(ms, last, rr)
  for k = last, 1, -1 do
    local g = blua.zeros(rr:size(1), size(ms[k].r.in_shape))
    ops[ms[k].r.kind].adjoint(ms[k].r, ms[k].p, rr, g)
    rr = g
  end
  return rr
end

function ref.adjoint(records, params, rr, g, alpha)
  g:copy(adjoint_from(members(records, params), #records, rr)):mul(alpha)
end

function ref.wgrad(records, params, x, rr, grads, scale)
  local ms = members(records, params)
  local inputs = run(records, params, x, true)
  for k = #ms, 1, -1 do
    local m = ms[k]
    if m.r.weight then ops[m.r.kind].wgrad(m.r, m.p, inputs[k], rr, {grads[m.first], grads[m.first + 1]}, scale) end
    if k > 1 then rr = adjoint_from({m}, 1, rr) end
  end
end

function ref.norm(records, params, iters, start)
  local n_out = size(records[#records].out_shape)
  local u = start and start:clone():view(1, n_out) or blua.zeros(1, n_out)
  if u:abs():max() == 0 then
    for j = 1, n_out do u:set(1, j, 1 + 0.01 * ((j - 1) % 7)) end
  end
  local sigma = 0
  for _ = 1, iters do
    u:mul(1 / u:norm())
    local v = adjoint_from(members(records, params), #records, u)
    sigma = v:norm()
    local inputs = run(records, params, v, false)
    u = inputs[#inputs]
  end
  if start then start:copy(u:mul(1 / u:norm())) end
  return sigma
end

return ref
