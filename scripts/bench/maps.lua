-- The in-place elementwise maps (t:abs(), t:clamp(lo, hi), t:gt(a), t:cmax(a), ...) on a
-- 128x784 tensor (one MNIST batch) with one thread and with two, in one run, beside t:mul(1)
-- as the memory-bound yardstick. exp, log, log1p, tanh and sigmoid also run as they did before
-- their vector loops, a libm call per entry (blua._mapLibm), with the ratio old/new per thread
-- count. Each call maps a fresh copy of the same values (the copy is not timed), so repeated
-- maps do not drift into infinities or NaNs that are handled faster.
-- Prints the fastest call of each in microseconds.
--   blua scripts/bench/maps.lua [reps]
local blua = require "blua"

local reps = tonumber(arg and arg[1]) or 200
local rows, cols = 128, 784
local timing = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "timing.lua")

blua.manualSeed(1)
local mixed = blua.randn(rows, cols):mul(2)            -- both signs, some beyond +-1
local positive = mixed:clone():abs():add(0.01)          -- for log, sqrt, pow
local t = blua.zeros(rows, cols)

local cases = {
  {"mul(1)", mixed, function() t:mul(1.0) end},
  {"abs", mixed, function() t:abs() end},
  {"neg", mixed, function() t:neg() end},
  {"square", mixed, function() t:square() end},
  {"sign", mixed, function() t:sign() end},
  {"floor", mixed, function() t:floor() end},
  {"sqrt", positive, function() t:sqrt() end},
  {"clamp(0,1)", mixed, function() t:clamp(0, 1) end},
  {"gt(0)", mixed, function() t:gt(0) end},
  {"ge(0)", mixed, function() t:ge(0) end},
  {"lt(0)", mixed, function() t:lt(0) end},
  {"le(0)", mixed, function() t:le(0) end},
  {"cmax(0)", mixed, function() t:cmax(0) end},
  {"cmin(0)", mixed, function() t:cmin(0) end},
  {"exp", mixed, function() t:exp() end, function() blua._mapLibm(t, "exp") end},
  {"log", positive, function() t:log() end, function() blua._mapLibm(t, "log") end},
  {"log1p", positive, function() t:log1p() end, function() blua._mapLibm(t, "log1p") end},
  {"tanh", mixed, function() t:tanh() end, function() blua._mapLibm(t, "tanh") end},
  {"sigmoid", mixed, function() t:sigmoid() end, function() blua._mapLibm(t, "sigmoid") end},
  {"pow(1.5)", positive, function() t:pow(1.5) end},
}

-- Fastest single call, the copy of the input before each call left out.
local function fastest(src, fn)
  local best = math.huge
  for _ = 1, reps do
    t:copy(src)
    best = math.min(best, timing.best(1, fn))
  end
  return best
end

local saved = blua.getNumThreads()
print(string.format("%dx%d floats, fastest of %d calls each; load average %s", rows, cols, reps, timing.load()))
print(string.format("%-12s %12s %12s %12s %12s %9s %9s", "map", "1 thread us", "2 threads us", "libm 1t us",
  "libm 2t us", "libm/new", "(2t)"))
for _, c in ipairs(cases) do
  -- Interleave the thread counts (and old and new) so that a busy neighbour hurts all alike.
  local t1, t2, o1, o2 = math.huge, math.huge, math.huge, math.huge
  for _ = 1, 2 do
    blua.setNumThreads(1)
    t1 = math.min(t1, fastest(c[2], c[3]))
    if c[4] then o1 = math.min(o1, fastest(c[2], c[4])) end
    blua.setNumThreads(2)
    t2 = math.min(t2, fastest(c[2], c[3]))
    if c[4] then o2 = math.min(o2, fastest(c[2], c[4])) end
  end
  if c[4] then
    print(string.format("%-12s %12.1f %12.1f %12.1f %12.1f %8.1fx %8.1fx", c[1], 1e6 * t1, 1e6 * t2, 1e6 * o1,
      1e6 * o2, o1 / t1, o2 / t2))
  else
    print(string.format("%-12s %12.1f %12.1f", c[1], 1e6 * t1, 1e6 * t2))
  end
end
blua.setNumThreads(saved)
