-- Line plots to PNG through gnuplot (Debian gnuplot-nox).
--   blua.plot.lines{path = "curve.png", title = "MNIST", xlabel = "epoch", ylabel = "test accuracy %",
--                   series = {{name = "bregman", x = {1, 2}, y = {95.1, 96.3}}, ...}}
-- integer_x = true puts ticks on whole numbers only (epochs); a series with axis = "y2" is
-- drawn against a second y axis on the right, labelled y2label (a loss next to accuracies).
-- Returns true, or nil and a message when gnuplot is missing or fails.
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

return plot
