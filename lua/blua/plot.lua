-- Line plots to PNG through gnuplot (Debian gnuplot-nox).
--   blua.plot.lines{path = "curve.png", title = "MNIST", xlabel = "epoch", ylabel = "test accuracy %",
--                   series = {{name = "bregman", x = {1, 2}, y = {95.1, 96.3}}, ...}}
-- integer_x = true puts ticks on whole numbers only (epochs); a series with axis = "y2" is
-- drawn against a second y axis on the right, labelled y2label (a loss next to accuracies).
-- Returns true, or nil and a message when gnuplot is missing or fails.
local blua = require "blua"

local plot = {}

local function quote(s) return '"' .. tostring(s):gsub('[\\"]', "\\%0") .. '"' end

function plot.available()
  local ok = os.execute("command -v gnuplot >/dev/null 2>&1")
  return ok == true or ok == 0
end

-- The gnuplot commands (a list of lines) that draw opts; plot.lines runs them.
function plot.commands(opts)
  local cmds = {
    "set terminal pngcairo size 900,560 noenhanced font ',11'",
    "set output " .. quote(opts.path),
    "set key bottom right",
    "set grid",
    "set title " .. quote(opts.title or ""),
    "set xlabel " .. quote(opts.xlabel or ""),
    "set ylabel " .. quote(opts.ylabel or ""),
  }
  if opts.yrange then cmds[#cmds + 1] = string.format("set yrange [%s:%s]", opts.yrange[1], opts.yrange[2]) end
  if opts.integer_x then
    local lo, hi = math.huge, -math.huge
    for _, s in ipairs(opts.series) do
      for _, x in ipairs(s.x) do lo, hi = math.min(lo, x), math.max(hi, x) end
    end
    local span = hi > lo and hi - lo or 1
    cmds[#cmds + 1] = string.format("set xtics %d", math.max(1, math.ceil(span / 10)))
    cmds[#cmds + 1] = "set format x '%.0f'"
    if hi <= lo then cmds[#cmds + 1] = string.format("set xrange [%g:%g]", lo - 1, hi + 1) end
  end
  local parts = {}
  for _, s in ipairs(opts.series) do
    local axes = s.axis == "y2" and " axes x1y2" or ""
    parts[#parts + 1] = "'-' using 1:2" .. axes .. " with linespoints title " .. quote(s.name)
    if s.axis == "y2" then
      cmds[#cmds + 1] = "set y2tics"
      cmds[#cmds + 1] = "set ytics nomirror"
      cmds[#cmds + 1] = "set y2label " .. quote(opts.y2label or "")
    end
  end
  cmds[#cmds + 1] = "plot " .. table.concat(parts, ", ")
  for _, s in ipairs(opts.series) do
    for i = 1, #s.x do cmds[#cmds + 1] = string.format("%.10g %.10g", s.x[i], s.y[i]) end
    cmds[#cmds + 1] = "e"
  end
  return cmds
end

function plot.lines(opts)
  if type(opts) ~= "table" or type(opts.path) ~= "string" then error("blua.plot.lines: path expected", 2) end
  if not plot.available() then return nil, "gnuplot not found (scripts/bootstrap installs gnuplot-nox)" end
  local cmds = plot.commands(opts)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(table.concat(cmds, "\n"), "\n")
  f:close()
  local ok = os.execute("gnuplot " .. script .. " 2>/dev/null")
  os.remove(script)
  if ok == true or ok == 0 then return true end
  -- pngcairo is in gnuplot-nox; fall back to the plain png terminal on older builds.
  return nil, "gnuplot failed to write " .. opts.path
end

--- A grid of images as a PNG through gnuplot: one row of the grid per tensor in rows (its
-- first `count` rows, each a flat image of shape[1] x shape[2] pixels), top to bottom.
--   blua.plot.images{path = "grid.png", rows = {noisy, clean, out}, shape = {28, 28},
--                    labels = {"noisy", "clean", "bregman"}, count = 10, mean = m}
-- mean (optional, 1 x pixels): added back first (centred data). Values are shown on the
-- [0, 1] grey scale (range = {lo, hi} to change it), clipped. Returns true, or nil and a message.
function plot.images(opts)
  if type(opts) ~= "table" or type(opts.path) ~= "string" or type(opts.rows) ~= "table" or #opts.rows == 0 then
    error("blua.plot.images: {path = string, rows = {tensor, ...}, shape = {h, w}} expected", 2)
  end
  local shape = opts.shape or {28, 28}
  local h, w = shape[1], shape[2]
  local count = opts.count or 10
  for i, t in ipairs(opts.rows) do
    if not (type(t) == "userdata" and t.size and t:dim() == 2 and t:size(2) == h * w) then
      error(string.format("size mismatch in 'blua.plot.images': row %d must be N x %d (shape %dx%d)", i, h * w, h, w), 2)
    end
    count = math.min(count, t:size(1))
  end
  if not plot.available() then return nil, "gnuplot not found (scripts/bootstrap installs gnuplot-nox)" end
  local lo, hi = table.unpack(opts.range or {0, 1})
  local gap = 2
  local H, W = #opts.rows * (h + gap) - gap, count * (w + gap) - gap
  local grid = {}
  for r = 1, H do
    local line = {}
    for c = 1, W do line[c] = hi end -- white gaps
    grid[r] = line
  end
  local mean = opts.mean and opts.mean:totable()
  if mean and type(mean[1]) == "table" then mean = mean[1] end
  for k, t in ipairs(opts.rows) do
    local rows = t:narrow(1, 1, count):totable()
    for i = 1, count do
      local img = rows[i]
      for p = 1, h * w do
        local v = img[p] + (mean and mean[p] or 0)
        local r, c = (k - 1) * (h + gap) + (p - 1) // w + 1, (i - 1) * (w + gap) + (p - 1) % w + 1
        grid[r][c] = math.min(math.max(v, lo), hi)
      end
    end
  end
  local datafile = os.tmpname()
  local f = assert(io.open(datafile, "w"))
  for r = 1, H do f:write(table.concat(grid[r], " "), "\n") end
  f:close()
  local scale = opts.scale or 3
  local left = opts.labels and 140 or 10
  local cmds = {
    string.format("set terminal pngcairo size %d,%d noenhanced font ',11'", W * scale + left + 10, H * scale + 20),
    "set output " .. quote(opts.path),
    "set palette grey", "unset colorbox", string.format("set cbrange [%g:%g]", lo, hi),
    "unset border", "unset tics", "unset key",
    string.format("set lmargin at screen %g", left / (W * scale + left + 10)),
    "set rmargin at screen 0.99", "set tmargin at screen 0.99", "set bmargin at screen 0.01",
    string.format("set xrange [-0.5:%g]", W - 0.5), string.format("set yrange [%g:-0.5]", H - 0.5),
  }
  for k, name in ipairs(opts.labels or {}) do
    cmds[#cmds + 1] = string.format("set label %d %s at -2,%g right", k, quote(name), (k - 1) * (h + gap) + h / 2)
  end
  cmds[#cmds + 1] = "plot " .. quote(datafile) .. " matrix with image"
  local script = os.tmpname()
  f = assert(io.open(script, "w"))
  f:write(table.concat(cmds, "\n"), "\n")
  f:close()
  local ok = os.execute("gnuplot " .. script .. " 2>/dev/null")
  os.remove(script)
  os.remove(datafile)
  if ok == true or ok == 0 then return true end
  return nil, "gnuplot failed to write " .. opts.path
end

-- An argument past a function's last is an error, not ignored.
blua._refuseExtra(plot, "blua.plot.", {available = "", commands = "opts", lines = "opts", images = "opts"})

return plot
