-- Pictures: PNG files to tensors in [0, 1] and back (libpng, runtime/image.c), resizing, and
-- the preparation MNIST expects of a digit drawn by a user.
--   local t = blua.image.load("digit.png")       -- grey: H x W
--   blua.image.save("out.png", t)
--   local x = blua.image.mnist(t)                 -- 1 x 784, ready for a network's forward
-- A colour file loads as a 3 x H x W tensor (the red, green and blue planes). {grey = true}
-- converts colour to grey (luminance) on load.
local blua = require "blua"

local image = {}

local function fail(fname, fmt, ...) error(string.format("bad argument in '%s': " .. fmt, fname, ...), 3) end

-- Runs a blua._image* call, raising its error at the caller of the public function.
local function call(f, ...)
  local res = table.pack(pcall(f, ...))
  if not res[1] then error((tostring(res[2]):gsub("^[^\n]-:%d+: ", "")), 3) end
  return table.unpack(res, 2, res.n)
end

--- blua.image.load(path [, {grey = true | colour = true}]) → tensor in [0, 1], then height,
--- width and channels.
function image.load(path, opts)
  if type(path) ~= "string" then fail("blua.image.load", "a path expected, got %s", type(path)) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "grey" and k ~= "colour" then fail("blua.image.load", "unknown option '%s' (accepted: colour, grey)", tostring(k)) end
  end
  local want = opts.grey and 1 or opts.colour and 3 or 0
  local t, h, w, c = call(blua._imageLoad, path, want)
  if c == 3 then t = t:view(3, h, w) end
  return t, h, w, c
end

--- blua.image.save(path, t): t is H x W (grey), 3 x H x W (colour), or 3H x W with
--- {colour = true} (the three planes stacked as rows).
function image.save(path, t, opts)
  if type(path) ~= "string" then fail("blua.image.save", "a path expected, got %s", type(path)) end
  if not blua.isTensor(t) then fail("blua.image.save", "a tensor expected, got %s", type(t)) end
  opts = opts or {}
  local h, w, c
  if t:dim() == 3 then
    c, h, w = t:size(1), t:size(2), t:size(3)
    if c ~= 3 and c ~= 1 then fail("blua.image.save", "1 or 3 planes expected, got %d", c) end
  elseif t:dim() == 2 then
    h, w, c = t:size(1), t:size(2), 1
    if opts.colour then
      if h % 3 ~= 0 then fail("blua.image.save", "a colour tensor needs 3H rows, got %d", h) end
      h, c = h // 3, 3
    end
  else
    fail("blua.image.save", "an H x W or 3 x H x W tensor expected, got %d dimensions", t:dim())
  end
  call(blua._imageSave, path, t:contiguous(), h, w, c)
end

-- The grey H x W rows of t as a Lua table of tables (a colour image by luminance).
local function grey_rows(t, c)
  local rows = t:totable()
  if t:dim() == 3 then
    if t:size(1) == 1 then return rows[1] end
    local r, g, b = rows[1], rows[2], rows[3]
    local out = {}
    for i = 1, #r do
      out[i] = {}
      for j = 1, #r[i] do out[i][j] = 0.299 * r[i][j] + 0.587 * g[i][j] + 0.114 * b[i][j] end
    end
    return out
  end
  if c == 3 then -- stacked planes
    local h = #rows // 3
    local out = {}
    for i = 1, h do
      out[i] = {}
      for j = 1, #rows[i] do out[i][j] = 0.299 * rows[i][j] + 0.587 * rows[i + h][j] + 0.114 * rows[i + 2 * h][j] end
    end
    return out
  end
  return rows
end

-- Area-average resampling of a table of rows (h x w) to nh x nw: each output pixel is the
-- mean of the input area it covers, so shrinking does not alias thin strokes away.
local function resample(rows, nh, nw)
  local h, w = #rows, #rows[1]
  local sy, sx = h / nh, w / nw
  local out = {}
  for i = 1, nh do
    out[i] = {}
    local y0, y1 = (i - 1) * sy, i * sy
    for j = 1, nw do
      local x0, x1 = (j - 1) * sx, j * sx
      local sum, area = 0, 0
      for y = math.floor(y0), math.min(math.ceil(y1), h) - 1 do
        local wy = math.min(y + 1, y1) - math.max(y, y0)
        if wy > 0 then
          local row = rows[y + 1]
          for x = math.floor(x0), math.min(math.ceil(x1), w) - 1 do
            local wx = math.min(x + 1, x1) - math.max(x, x0)
            if wx > 0 then
              sum = sum + wy * wx * row[x + 1]
              area = area + wy * wx
            end
          end
        end
      end
      out[i][j] = area > 0 and sum / area or 0
    end
  end
  return out
end

--- blua.image.resize(t, h, w): an H x W tensor resampled to h x w (area average).
function image.resize(t, h, w)
  if not blua.isTensor(t) or t:dim() ~= 2 then fail("blua.image.resize", "an H x W tensor expected") end
  if math.type(h) ~= "integer" or math.type(w) ~= "integer" or h < 1 or w < 1 then
    fail("blua.image.resize", "positive integer sizes expected, got %s x %s", tostring(h), tostring(w))
  end
  return blua.tensor(resample(t:totable(), h, w))
end

--- blua.image.mnist(t [, opts]) → 1 x 784: a picture of one digit prepared as MNIST's digits
--- were: grey, white on black (a light background is inverted), cropped to the digit, scaled
--- so its longer side is 20 pixels (aspect kept), and placed in 28 x 28 with its centre of
--- mass at the centre. opts.invert = true/false overrides the background guess. The second
--- result is the 28 x 28 tensor.
function image.mnist(t, opts)
  if not blua.isTensor(t) then fail("blua.image.mnist", "a tensor expected, got %s", type(t)) end
  opts = opts or {}
  local rows = grey_rows(t, opts.channels)
  local h, w = #rows, #rows[1]
  -- background: the mean of the border pixels; a light one means dark ink on paper
  local border, count = 0, 0
  for i = 1, h do
    for j = 1, w do
      if i == 1 or i == h or j == 1 or j == w then border, count = border + rows[i][j], count + 1 end
    end
  end
  local invert = opts.invert
  if invert == nil then invert = border / count > 0.5 end
  local lo, hi = math.huge, -math.huge
  for i = 1, h do
    for j = 1, w do
      local v = invert and 1 - rows[i][j] or rows[i][j]
      rows[i][j] = v
      lo, hi = math.min(lo, v), math.max(hi, v)
    end
  end
  -- stretch to [0, 1] with the background at 0 (a grey page or faint ink still works)
  local span = hi - lo
  if span <= 0 then error("bad image in 'blua.image.mnist': the picture is blank", 2) end
  local top, bottom, left, right = h + 1, 0, w + 1, 0
  for i = 1, h do
    for j = 1, w do
      local v = (rows[i][j] - lo) / span
      if v < 0.1 then v = 0 end -- paper texture and compression noise are not ink
      rows[i][j] = v
      if v > 0 then top, bottom, left, right = math.min(top, i), math.max(bottom, i), math.min(left, j), math.max(right, j) end
    end
  end
  local crop = {}
  for i = top, bottom do
    local r = {}
    for j = left, right do r[#r + 1] = rows[i][j] end
    crop[#crop + 1] = r
  end
  local ch, cw = #crop, #crop[1]
  local scale = 20 / math.max(ch, cw)
  local nh, nw = math.max(1, math.floor(ch * scale + 0.5)), math.max(1, math.floor(cw * scale + 0.5))
  local small = resample(crop, nh, nw)
  -- centre of mass of the scaled digit → the centre of the 28 x 28 field
  local mass, my, mx = 0, 0, 0
  for i = 1, nh do
    for j = 1, nw do
      local v = small[i][j]
      mass, my, mx = mass + v, my + v * (i - 0.5), mx + v * (j - 0.5)
    end
  end
  my, mx = my / mass, mx / mass
  local oy, ox = math.floor(14 - my + 0.5), math.floor(14 - mx + 0.5)
  -- keep the whole digit inside the field
  oy = math.max(0, math.min(28 - nh, oy))
  ox = math.max(0, math.min(28 - nw, ox))
  local field = blua.zeros(28, 28)
  local peak = 0
  for i = 1, nh do
    for j = 1, nw do peak = math.max(peak, small[i][j]) end
  end
  for i = 1, nh do
    for j = 1, nw do field:set(oy + i, ox + j, small[i][j] / peak) end
  end
  return field:clone():view(1, 784), field
end

-- An argument past a function's last is an error, not ignored.
blua._refuseExtra(image, "blua.image.", {load = "path [, opts]", save = "path, t [, opts]", resize = "t, h, w",
  mnist = "t [, opts]"})

return image
