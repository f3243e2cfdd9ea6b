-- Every ```lua example of README.md and docs/api.md runs, so the documents stay true. A block
-- right after a line `<!-- not run: reason -->` is skipped for the stated reason. Examples
-- that load MNIST or Fashion-MNIST get the first 2000 samples of each split (a prelude wraps
-- the loaders), so the whole spec stays quick; everything else runs as written. README's
-- "type it into the REPL" block is also typed into the REPL line by line.
local blua = require "blua"
local support = require "tests.support"

local exe = os.getenv("BLUA_EXE") or "build/blua"
local q = support.quote

local prelude = [[
for _, name in ipairs{"mnist", "fashion"} do
  local load = blua.data[name]
  blua.data[name] = function(split) return blua.data.subset(load(split), 1, 2000) end
end
]]

-- The ```lua blocks of a Markdown file: {code =, line =, skip = reason or nil}.
local function blocks(path)
  local out, current, skip, last = {}, nil, nil, nil
  local n = 0
  for line in (support.read_file(path) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if current then
      if line:match("^```%s*$") then
        out[#out + 1] = current
        current = nil
      else
        current.code = current.code .. line .. "\n"
      end
    elseif line:match("^```lua%s*$") then
      current = {code = "", line = n, skip = last and last:match("^<!%-%- not run: (.-) %-%->$")}
    end
    last = line
  end
  return out
end

local tmp = os.tmpname()
teardown(function() os.remove(tmp) end)

-- Runs code through `blua -e prelude file` (or `-i` with the code on stdin); returns the
-- combined output and the status.
local function run(code, interactive)
  support.write_file(tmp, code)
  local cmd = interactive and string.format("%s -e %s -i <%s 2>&1", q(exe), q(prelude), q(tmp))
    or string.format("%s -e %s %s 2>&1 </dev/null", q(exe), q(prelude), q(tmp))
  local p = io.popen(cmd)
  local out = p:read("a")
  local _, _, code_ = p:close()
  return out, code_
end

local have_data = pcall(blua.data.mnist, "test") and pcall(blua.data.fashion, "test")

for _, doc in ipairs{"README.md", "docs/api.md"} do
  describe(doc, function()
    for _, b in ipairs(blocks(doc)) do
      local title = string.format("example at line %d runs", b.line)
      if b.skip then
        it(title, function() pending("not run: " .. b.skip) end)
      elseif not have_data and b.code:find("blua.data.", 1, true) then
        it(title, function() pending("MNIST or Fashion-MNIST is not fetched (scripts/fetch-data)") end)
      else
        it(title, function()
          local out, code = run(b.code)
          assert.equal(0, code, doc .. ":" .. b.line .. "\n" .. b.code .. "\n" .. out)
        end)
      end
    end
  end)
end

describe("README's REPL example", function()
  it("works typed line by line into the REPL", function()
    if not have_data then
      pending("MNIST is not fetched (scripts/fetch-data)")
      return
    end
    local code = blocks("README.md")[1].code
    assert.truthy(code:find("type it into the blua REPL", 1, true), code)
    local out, status = run(code, true)
    assert.equal(0, status, out)
    assert.falsy(out:find("blua:", 1, true), out)
    assert.truthy(out:match("\n0%.%d+\t[%d. ]+\n"), out) -- the printed accuracy and fractions
  end)
end)

describe("the examples' marks", function()
  it("skip only with a reason", function()
    for _, doc in ipairs{"README.md", "docs/api.md"} do
      for _, b in ipairs(blocks(doc)) do
        if b.skip then assert.truthy(#b.skip > 5, doc .. ":" .. b.line) end
      end
    end
  end)
end)
