-- Progress of a long loop: a redrawn bar on a terminal, plain lines elsewhere (CI, logs).
--   local bar = blua.progress.new{total = n, title = "epoch 1/20"}
--   bar:update(i, "loss 0.31")      -- i of n done
--   bar:finish("train 97.1%")
local blua = require "blua"

local progress = {}
local Bar = {}
Bar.__index = Bar

local function format_time(s)
  if s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return string.format("%02d:%02d", s // 60, s % 60)
end
progress.format_time = format_time

-- opts: total, title, out (a file, default io.stdout), tty (default: is out a terminal),
-- unit (what one step is, for the rate: "batch"), width (bar width in characters).
function progress.new(opts)
  local out = opts.out or io.stdout
  local tty = opts.tty
  if tty == nil then tty = out == io.stdout and blua.isatty(1) end
  return setmetatable({
    total = opts.total or 0, title = opts.title or "", out = out, tty = tty,
    unit = opts.unit or "it", width = opts.width or 24, start = blua.clock(), last_draw = -math.huge,
  }, Bar)
end

function Bar:line(done, note)
  local elapsed = blua.clock() - self.start
  local rate = done > 0 and done / elapsed or 0
  local eta = rate > 0 and (self.total - done) / rate or math.huge
  local frac = self.total > 0 and done / self.total or 1
  local filled = math.floor(frac * self.width + 0.5)
  return string.format("%s [%s%s] %d/%d %.0f %s/s eta %s%s", self.title, string.rep("#", filled),
    string.rep(".", self.width - filled), done, self.total, rate, self.unit, format_time(eta),
    note and note ~= "" and ("  " .. note) or "")
end

-- Redraws at most ten times a second on a terminal; prints nothing per step otherwise.
function Bar:update(done, note)
  if not self.tty then return end
  local now = blua.clock()
  if now - self.last_draw < 0.1 and done < self.total then return end
  self.last_draw = now
  self.out:write("\r", self:line(done, note), "\27[K")
  self.out:flush()
end

-- The closing line: replaces the bar on a terminal, or is the one line printed elsewhere.
function Bar:finish(note)
  local elapsed = blua.clock() - self.start
  local text = string.format("%s %s in %s", self.title, note or "", format_time(elapsed))
  if self.tty then self.out:write("\r", text, "\27[K\n") else self.out:write(text, "\n") end
  self.out:flush()
  return elapsed
end

return progress
