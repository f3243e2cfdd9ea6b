-- Progress of a long loop: a redrawn bar on a terminal, plain lines elsewhere (CI, logs).
--   local bar = blua.progress.new{total = n, title = "epoch 1/20"}
--   bar:update(i, "loss 0.31")      -- i of n done
--   bar:finish("train 97.1%")
local blua = require "blua"

local progress = {}
local Bar = {}
Bar.__index = Bar

-- Durations read the same everywhere (bars, --quiet lines, ETAs): "0.4s", "12.3s", "3m05s",
-- "1h02m".
local function format_time(s)
  if s ~= s or s == math.huge or s < 0 then return "--" end
  if s < 59.95 then return string.format("%.1fs", s) end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, s % 3600 // 60) end
  return string.format("%dm%02ds", s // 60, s % 60)
end
progress.format_time = format_time

-- "1 epoch", "2 epochs": count and noun, the noun in the plural unless count is 1.
function progress.plural(count, noun, many)
  return string.format("%d %s", count, count == 1 and noun or (many or noun .. "s"))
end

-- opts: total, title, out (a file, default io.stdout), tty (default: is out a terminal),
-- unit (what one step is, for the rate: "batch"), width (bar width in characters),
-- columns (the line's room; default the terminal's width, blua.terminalWidth()).
function progress.new(opts)
  local out = opts.out or io.stdout
  local tty = opts.tty
  if tty == nil then tty = out == io.stdout and blua.isatty(1) end
  return setmetatable({
    total = opts.total or 0, title = opts.title or "", out = out, tty = tty,
    unit = opts.unit or "it", width = opts.width or 24, start = blua.clock(), last_draw = -math.huge,
    columns = opts.columns or blua.terminalWidth(),
  }, Bar)
end

-- The bar's text, never longer than columns - 1 (a full line would wrap on some terminals and
-- every redraw would then start a new line): the bar shrinks first, then the note goes, then
-- the text is cut.
function Bar:line(done, note)
  local elapsed = blua.clock() - self.start
  local rate = done > 0 and done / elapsed or 0
  local eta = rate > 0 and (self.total - done) / rate or math.huge
  local frac = self.total > 0 and done / self.total or 1
  local tail = string.format("] %d/%d %.0f %s/s eta %s", done, self.total, rate, self.unit, format_time(eta))
  note = note and note ~= "" and ("  " .. note) or ""
  local room = self.columns - 1
  local width = self.width
  local fixed = #self.title + 2 + #tail
  if fixed + width + #note > room then
    width = room - fixed - #note
    if width < 8 then note, width = "", math.min(self.width, room - fixed) end
  end
  if width < 4 then width = 0 end
  local filled = math.floor(frac * width + 0.5)
  local text = string.format("%s [%s%s%s%s", self.title, string.rep("#", filled),
    string.rep(".", width - filled), tail, note)
  if #text > room then text = text:sub(1, room) end
  return text
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
  if self.tty and #text > self.columns - 1 then text = text:sub(1, self.columns - 1) end
  if self.tty then self.out:write("\r", text, "\27[K\n") else self.out:write(text, "\n") end
  self.out:flush()
  return elapsed
end

-- Clears the bar's line on a terminal (when a run stops early), so what follows starts clean.
function Bar:abort()
  if self.tty then
    self.out:write("\r\27[K")
    self.out:flush()
  end
end

-- An argument past the last is an error, not dropped.
blua._refuseExtra(progress, "blua.progress.", {format_time = "s", plural = "count, noun [, many]", new = "opts"})
blua._refuseExtra(Bar, "bar:", {line = "done [, note]", update = "done [, note]", finish = "[note]", abort = ""})

return progress
