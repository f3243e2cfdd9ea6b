-- Ordinary mistakes when running a script print one line "blua: message" on stderr, with no
-- traceback and no position inside blua's own files, and exit with status 1. The REPL and -e
-- keep the traceback (tests/cli_spec.lua).
local support = require "tests.support"
local write_file = support.write_file

local q = support.quote

local tmp = support.tempdir(teardown)

-- stdout, stderr and the exit status of `env blua args`.
local function run(args, env) return support.run_split(tmp, args, env) end

local function script(name, text)
  local path = tmp .. "/" .. name
  write_file(path, text)
  return q(path)
end

-- Each case: arguments, then a pattern the single line must contain (plain text).
local train = "scripts/train_mnist.lua "
local cases = {
  {train .. "--epoch 3", "unknown option --epoch (try --help)"},
  {train .. "--method sgd", "--method expects one of bregman, lifted, backprop, got 'sgd'"},
  {train .. "--epochs abc", "--epochs expects an integer, got 'abc'"},
  {train .. "--activation rleu", "--activation rleu: unknown activation (known: clip,"},
  {train .. "--threads 0", "--threads must be at least 1, got 0"},
  {train .. "--epochs 0", "--epochs must be at least 1, got 0"},
  {train .. "--batch -5", "--batch must be at least 1, got -5"},
  {train .. "--lr -1", "--lr must be a positive number, got -1"},
  {train .. "--hidden 64,,64", "--hidden 64,,64: widths must be positive integers separated by commas, got ''"},
  {train .. "--hidden 64,x", "got 'x'"},
  {train .. "--resume nope.blua", "--resume nope.blua: cannot open it (No such file or directory)"},
  {train .. "--resume README.md", "--resume README.md: bad checkpoint in 'blua.load'"},
  {train .. "--save /nonexistent/dir/x.blua", "--save /nonexistent/dir/x.blua: cannot write there"},
  {train .. "--log /nonexistent/dir/x.csv", "--log /nonexistent/dir/x.csv: cannot write there"},
  {train .. "--epochs", "--epochs needs a value"},
  {"nope_no_such_script.lua", "cannot open nope_no_such_script.lua"},
}

describe("an ordinary mistake in a script", function()
  for _, c in ipairs(cases) do
    it("prints one line and exits 1: blua " .. c[1], function()
      local out, err, code = run(c[1])
      assert.equal(1, code, err)
      assert.equal("", out)
      assert.truthy(err:match("^blua: [^\n]*\n$"), "not one line: " .. err)
      assert.truthy(err:find(c[2], 1, true), err)
      assert.falsy(err:find("stack traceback", 1, true))
      assert.falsy(err:find("lua/blua/", 1, true), "names blua's own files: " .. err)
    end)
  end

  it("explains missing data with fetch-data and BLUA_DATA", function()
    local _, err, code = run(train .. "--epochs 1", "BLUA_DATA=" .. q(tmp .. "/no-data"))
    assert.equal(1, code)
    assert.truthy(err:match("^blua: [^\n]*\n$"), err)
    assert.truthy(err:find("MNIST train files are missing", 1, true), err)
    assert.truthy(err:find("scripts/fetch-data", 1, true), err)
    assert.truthy(err:find("BLUA_DATA", 1, true), err)
    assert.falsy(err:find("lua/blua/", 1, true), err)
  end)

  it("gives labels 0..9 a hint that labels are 1-based", function()
    local s = script("labels.lua", [[
local net = blua.nn.mlp{3, 4, 3}
blua.train.backprop(net, {x = blua.rand(4, 3), y = blua.tensor{{0}, {1}, {2}, {0}}}, {epochs = 1, verbose = false})
]])
    local _, err, code = run(s)
    assert.equal(1, code)
    assert.truthy(err:match("^blua: [^\n]*\n$"), err)
    assert.truthy(err:find("1-based: class 1 is the first; add 1 to 0-based labels", 1, true), err)
  end)

  it("reports an unknown activation in a script at the script's line", function()
    local s = script("act.lua", "\n\nlocal net = blua.nn.mlp{3, 4, 2, activation = 'rleu'}\n")
    local _, err, code = run(s)
    assert.equal(1, code)
    assert.truthy(err:match("^blua: [^\n]*act%.lua:3: [^\n]*'rleu'[^\n]*\n$"), err)
  end)

  it("reports a script's own bug in one line with its position; BLUA_TRACEBACK=1 adds the traceback", function()
    local s = script("bug.lua", "local function f(x) return x.y end\nf(nil)\n")
    local _, err, code = run(s)
    assert.equal(1, code)
    assert.truthy(err:match("^blua: [^\n]*bug%.lua:1: attempt to index a nil value[^\n]*\n$"), err)
    local _, err2, code2 = run(s, "BLUA_TRACEBACK=1")
    assert.equal(1, code2)
    assert.truthy(err2:find("stack traceback:", 1, true), err2)
  end)

  it("keeps the traceback for -e", function()
    local _, err, code = run("-e " .. q("error('boom')"))
    assert.equal(1, code)
    assert.truthy(err:find("stack traceback:", 1, true), err)
  end)
end)
