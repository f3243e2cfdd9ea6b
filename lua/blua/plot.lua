-- Line plots to PNG through gnuplot (Debian gnuplot-nox).
--   blua.plot.lines{path = "curve.png", title = "MNIST", xlabel = "epoch", ylabel = "test accuracy %",
--                   series = {{name = "bregman", x = {1, 2}, y = {95.1, 96.3}}, ...}}
-- Returns true, or nil and a message when gnuplot is missing or fails.
local plot = {}

local function quote(s) return '"' .. tostring(s):gsub('[\\"]', "\\%0") .. '"' end

function plot.available()
  local ok = os.execute("command -v gnuplot >/dev/null 2>&1")
  return ok == true or ok == 0
end

function plot.lines(opts)
  assert(type(opts.path) == "string", "blua.plot.lines: path expected")
  if not plot.available() then return nil, "gnuplot not found (scripts/bootstrap installs gnuplot-nox)" end
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
  local parts = {}
  for _, s in ipairs(opts.series) do
    parts[#parts + 1] = "'-' using 1:2 with linespoints title " .. quote(s.name)
  end
  cmds[#cmds + 1] = "plot " .. table.concat(parts, ", ")
  for _, s in ipairs(opts.series) do
    for i = 1, #s.x do cmds[#cmds + 1] = string.format("%.10g %.10g", s.x[i], s.y[i]) end
    cmds[#cmds + 1] = "e"
  end
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
