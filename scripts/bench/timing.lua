-- Timing helpers shared by the benchmark scripts beside this file:
--   local timing = dofile(<this file>)
--   timing.best(reps, fn)    fastest of reps runs of fn, in seconds
--   timing.median(list)      median of a list of numbers (sorts it)
local blua = require "blua"

local timing = {}

function timing.best(reps, fn)
  local best = math.huge
  for _ = 1, reps do
    local t0 = blua.clock()
    fn()
    best = math.min(best, blua.clock() - t0)
  end
  return best
end

function timing.median(list)
  table.sort(list)
  return list[(#list + 1) // 2]
end

return timing
