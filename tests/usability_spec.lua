-- Rough edges a new user hits (issue 14): optimiser state without a state table, a Linear with
-- one size, a network whose user activation is not defined at load time, where data and
-- scripts are looked for, and what an install ships.
local blua = require "blua"
local support = require "tests.support"

local exe = os.getenv("BLUA_EXE") or "build/blua"
local q = support.quote

local tmp = support.tempdir(teardown)

local function sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

describe("blua.optim without a state table", function()
  -- f(x) = ½‖x − 1‖², gradient x − 1
  local function feval(x) return 0, x:clone():add(-1) end

  for _, name in ipairs{"adam", "sgd"} do
    it(name .. " keeps its state in config across calls", function()
      local x = blua.zeros(1, 3)
      local config = {learningRate = 0.1, momentum = name == "sgd" and 0.5 or nil}
      for _ = 1, 3 do blua.optim[name](feval, x, config) end
      if name == "adam" then assert.equal(3, config.t) else assert.truthy(config.buf) end
      -- the same steps with an explicit state table give the same x
      local y, state = blua.zeros(1, 3), {}
      local config2 = {learningRate = 0.1, momentum = name == "sgd" and 0.5 or nil}
      for _ = 1, 3 do blua.optim[name](feval, y, config2, state) end
      assert.equal(0, (x - y):abs():max())
    end)
  end

  it("says which type a config entry must have", function()
    assert.has_error(function() blua.optim.adam(feval, blua.zeros(1, 2), {learningRate = "1e-3"}) end,
      "blua.optim.adam: option 'learningRate' must be a number, got string")
  end)
end)

describe("tensor printing", function()
  it("fits the terminal width", function()
    local p = io.popen("COLUMNS=80 " .. q(exe) .. " -e 'print(blua.ones(2, 30))' | cat")
    local out = p:read("a")
    p:close()
    for line in out:gmatch("[^\n]+") do assert.truthy(#line < 80, line) end
    assert.truthy(out:find("...", 1, true), out)
    p = io.popen("COLUMNS=200 " .. q(exe) .. " -e 'print(blua.ones(2, 12))' | cat")
    out = p:read("a")
    p:close()
    assert.falsy(out:find("...", 1, true), out) -- 12 columns fit in 200
  end)
end)

describe("blua.nn.Linear", function()
  it("refuses a missing output size", function()
    assert.has_error(function() blua.nn.Linear(784) end,
      "blua.nn.Linear: size 2 must be a positive integer, got nil")
  end)
end)

describe("loading a network with a user activation", function()
  it("says at load time that the activation must be defined first", function()
    local path = tmp .. "/ramp.blua"
    local code = string.format([[
blua.activation.define{name = "ramp_ux", forward = function(z) return z:clamp(0, 1) end}
blua.save(%q, {net = blua.nn.mlp{3, 4, 2, activation = "ramp_ux"}})]], path)
    local out, status = sh(q(exe) .. " -e " .. q(code))
    assert.equal(0, status, out)
    out, status = sh(q(exe) .. " -e " .. q(string.format("blua.load(%q)", path)))
    assert.equal(1, status)
    assert.truthy(out:find("uses the activation 'ramp_ux', which is not defined in this process; run " ..
      "blua.activation.define{name = \"ramp_ux\", ...} before blua.load", 1, true), out)
    assert.truthy(out:match("^blua: %(command line%):1: "), out)
    -- defined first, it loads and runs
    out, status = sh(q(exe) .. " -e " .. q(string.format([[
blua.activation.define{name = "ramp_ux", forward = function(z) return z:clamp(0, 1) end}
print(blua.load(%q).net:forward(blua.ones(1, 3)):size(2))]], path)))
    assert.equal(0, status, out)
    assert.equal("2\n", out)
  end)
end)

describe("data search path", function()
  it("is $BLUA_DATA alone, or this copy's data folder (never share/lua/data)", function()
    local roots = blua.data.roots()
    assert.equal(1, #roots)
    assert.falsy(roots[1]:find("share/lua/data", 1, true))
    local out = sh("BLUA_DATA=/x/y " .. q(exe) .. " -e 'io.write(table.concat(blua.data.roots(), \";\"))'")
    assert.equal("/x/y", out)
  end)
end)

describe("cmake --install", function()
  local build = os.getenv("BLUA_BUILD_DIR")
  if not build then
    pending("BLUA_BUILD_DIR is not set (ctest sets it)")
    return
  end
  it("ships the Lua scripts, the benchmarks, fetch-data and examples, not build/run/test", function()
    local prefix = tmp .. "/prefix"
    local out, status = sh("cmake --install " .. q(build) .. " --prefix " .. q(prefix) .. " >/dev/null")
    assert.equal(0, status, out)
    local function has(p) return io.open(prefix .. "/" .. p) ~= nil end
    for _, p in ipairs{"share/blua/scripts/train_mnist.lua", "share/blua/scripts/bench/mm.lua",
      "share/blua/scripts/fetch-data", "share/blua/scripts/data-checksums.txt",
      "share/blua/examples/custom_activation.lua", "share/lua/5.4/blua/init.lua"} do
      assert.is_true(has(p), p)
    end
    for _, p in ipairs{"share/blua/scripts/build", "share/blua/scripts/run", "share/blua/scripts/test",
      "share/blua/scripts/bootstrap"} do
      assert.is_false(has(p), p)
    end
    -- the installed library looks for data in share/blua/data and names the installed fetch-data
    out = sh("BLUA_DATA= " .. q(prefix .. "/bin/blua") .. " train_mnist.lua --epochs 1 2>&1")
    if not out:find("files are missing", 1, true) then return end -- data installed there: nothing to see
    assert.truthy(out:find(prefix .. "/share/blua/data/mnist", 1, true), out)
    assert.truthy(out:find(prefix .. "/share/blua/scripts/fetch-data", 1, true), out)
  end)
end)

describe("the docs", function()
  it("point to no document outside the repository", function()
    local p = io.popen("git ls-files README.md docs lua runtime include scripts examples 2>/dev/null")
    local paths = {}
    for path in p:read("a"):gmatch("[^\n]+") do
      if not path:match("%.png$") then paths[#paths + 1] = path end
    end
    p:close()
    if #paths == 0 then paths = {"README.md", "docs/api.md", "docs/design.md", "lua/blua/metrics.lua"} end
    for _, path in ipairs(paths) do
      local text = support.read_file(path)
      assert.falsy(text:find("/work/", 1, true), path)
      assert.falsy(text:find("DESIGN.md", 1, true), path)
      assert.falsy(text:find("API.md", 1, true), path)
    end
  end)
end)
