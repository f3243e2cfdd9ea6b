-- The reproduction script in quick mode: it writes the report with the three tables, and
-- lifted Bregman training beats the classical lifted model on the subsets.
local blua = require "blua"

describe("scripts/reproduce.lua --quick", function()
  local have_data = pcall(blua.data.mnist, "test") and pcall(blua.data.fashion, "test")
  if not have_data then
    pending("MNIST or Fashion-MNIST is not fetched (scripts/fetch-data)")
    return
  end

  it("produces the report and Bregman beats classical lifted", function()
    local out = os.tmpname()
    os.remove(out)
    local exe = os.getenv("BLUA_EXE") or "build/blua"
    local cmd = string.format("%s scripts/reproduce.lua --quick --out %s 2>&1", exe, out)
    local p = io.popen(cmd)
    local log = p:read("a")
    local ok = p:close()
    assert.is_true(ok, log)
    local f = assert(io.open(out .. "/report-quick.md"), log)
    local report = f:read("a")
    f:close()
    for _, heading in ipairs{"Table 1", "Table 2", "Table 3", "Bregman lifted", "Standard lifted", "Back-prop"} do
      assert.truthy(report:find(heading, 1, true), heading .. " missing from the report")
    end
    for _, dataset in ipairs{"mnist", "fashion"} do
      local bregman = blua.load(string.format("%s/runs/%s-bregman-1-quick.blua", out, dataset))
      local lifted = blua.load(string.format("%s/runs/%s-lifted-1-quick.blua", out, dataset))
      assert.is_true(bregman.test_acc > lifted.test_acc + 0.05,
        string.format("%s: Bregman %.3f vs lifted %.3f", dataset, bregman.test_acc, lifted.test_acc))
      for l = 1, 3 do
        assert.is_true(lifted.linear[l] > 0.95, "classical lifted layer " .. l .. " is not linear")
      end
    end
    -- a second invocation keeps the finished runs
    p = io.popen(cmd)
    log = p:read("a")
    p:close()
    assert.truthy(log:find("kept from", 1, true), log)
    os.execute("rm -rf '" .. out .. "'")
  end)
end)
