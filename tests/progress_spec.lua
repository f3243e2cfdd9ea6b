-- Progress bars fit the terminal, durations read the same everywhere, counts agree in number.
local blua = require "blua"
local progress = blua.progress

-- A file-like sink that keeps what is written.
local function sink()
  local s = {text = ""}
  function s:write(...) for _, x in ipairs{...} do self.text = self.text .. x end return self end
  function s:flush() end
  return s
end

describe("blua.progress", function()
  it("keeps every redraw shorter than the terminal, at any width", function()
    for _, cols in ipairs{200, 80, 60, 40, 24, 20} do
      local out = sink()
      local bar = progress.new{total = 469, title = "bregman epoch 10/10", unit = "batch", tty = true,
        out = out, columns = cols}
      for _, done in ipairs{1, 100, 469} do
        local line = bar:line(done, "loss 0.1234")
        assert.truthy(#line <= cols - 1, cols .. ": " .. line)
      end
      bar:update(469, "loss 0.1234")
      local drawn = out.text:match("\r([^\27]*)\27%[K")
      assert.truthy(drawn and #drawn <= cols - 1, out.text)
      local fin = sink()
      bar.out = fin
      bar:finish(string.rep("x", 300))
      assert.truthy(#fin.text:match("\r([^\27]*)") <= cols - 1)
    end
  end)

  it("shows the note and a full bar when there is room", function()
    local bar = progress.new{total = 10, title = "t", tty = true, out = sink(), columns = 200}
    local line = bar:line(10, "loss 0.5")
    assert.truthy(line:find("[" .. string.rep("#", 24) .. "]", 1, true), line)
    assert.truthy(line:find("loss 0.5", 1, true), line)
  end)

  it("takes the terminal width from COLUMNS when stdout is not a terminal", function()
    local exe = os.getenv("BLUA_EXE") or "build/blua"
    local p = io.popen("COLUMNS=57 " .. exe .. " -e 'io.write(blua.terminalWidth())' | cat")
    assert.equal("57", p:read("a"))
    p:close()
  end)

  it("formats durations one way: seconds with a decimal, then minutes, then hours", function()
    assert.equal("0.4s", progress.format_time(0.4))
    assert.equal("12.3s", progress.format_time(12.34))
    assert.equal("1m00s", progress.format_time(59.97))
    assert.equal("3m05s", progress.format_time(185))
    assert.equal("1h02m", progress.format_time(3720))
    assert.equal("--", progress.format_time(0 / 0))
    assert.equal("--", progress.format_time(math.huge))
  end)

  it("says 1 epoch and 2 epochs", function()
    assert.equal("1 epoch", progress.plural(1, "epoch"))
    assert.equal("2 epochs", progress.plural(2, "epoch"))
    assert.equal("0 threads", progress.plural(0, "thread"))
  end)

  it("clears its line when a run stops early", function()
    local out = sink()
    local bar = progress.new{total = 10, title = "t", tty = true, out = out, columns = 80}
    bar:abort()
    assert.equal("\r\27[K", out.text)
  end)
end)
