-- The blua command: options, the arg table, exit statuses, the REPL on piped input and on a
-- pseudo-terminal (through util-linux `script`), and the REPL's completion candidates.
local exe = assert(os.getenv("BLUA_EXE"), "BLUA_EXE must name the blua executable")
local repo = debug.getinfo(1, "S").source:match("^@(.*)/tests/[^/]*$") or "."

local support = require "tests.support"
local q = support.quote

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local write_file = support.write_file

local temps = {}
local function tmpname()
  local p = os.tmpname()
  temps[#temps + 1] = p
  return p
end

-- Runs a shell command line; returns stdout, stderr and the exit status.
local function sh(cmdline)
  local errfile = tmpname()
  local p = assert(io.popen("(" .. cmdline .. ") 2>" .. q(errfile), "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  return out, slurp(errfile), code
end

-- Runs blua with the given shell-quoted argument string and optional stdin text.
local function run(args, stdin, env)
  local cmd = (env or "") .. " " .. q(exe) .. " " .. (args or "")
  if stdin then
    local inp = tmpname()
    write_file(inp, stdin)
    cmd = cmd .. " <" .. q(inp)
  else
    cmd = cmd .. " </dev/null"
  end
  return sh(cmd)
end

local function lines(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

local function has_line(s, wanted)
  for _, l in ipairs(lines(s)) do
    if l == wanted then return true end
  end
  return false
end

local function script_file(text)
  local p = tmpname()
  write_file(p, text)
  return p
end

teardown(function()
  for _, p in ipairs(temps) do os.remove(p) end
end)

describe("blua command", function()
  it("runs -e statements in order", function()
    local out, err, code = run("-e 'x = 20' -e 'print(x + 22)'")
    assert.are.equal("42\n", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("gives a script its arg table and its arguments as ...", function()
    local s = script_file([[
      print(arg[-2], arg[-1], arg[0], #arg, arg[1], arg[2])
      print(select("#", ...), ...)
    ]])
    local out, err, code = run("-W " .. q(s) .. " a 'b c'")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    -- arg[0] is the script, negative indices hold the interpreter and its options.
    assert.are.same({exe .. "\t-W\t" .. s .. "\t2\ta\tb c", "2\ta\tb c"}, lines(out))
    local out0 = run(q(s))
    assert.are.same({"nil\t" .. exe .. "\t" .. s .. "\t0\tnil\tnil", "0"}, lines(out0))
  end)

  it("makes the module the global blua", function()
    local out = run("-e 'print(type(blua), blua.version, blua == require \"blua\")'")
    assert.are.equal("table\t0.1.0\ttrue\n", out)
  end)

  it("prints 42 for `echo 6*7 | blua -i`, without prompts", function()
    local out, err, code = run("-i", "6*7\n")
    assert.is_true(has_line(out, "42"))
    assert.are.equal("42\n", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("prints several values tab-separated through tostring", function()
    local out = run("-i", "1, 'a', nil, setmetatable({}, {__tostring = function() return 'T' end})\n")
    assert.are.equal("1\ta\tnil\tT\n", out)
  end)

  it("suppresses printing after a trailing ;", function()
    local out = run("-i", "6*7;\nx = 6*7;\nx\nx ;  \n")
    assert.are.equal("42\n", out)
  end)

  it("continues incomplete statements and expressions on the next lines", function()
    local out, err = run("-i", "for i = 1, 2 do\n  print(i * 10)\nend\n1 +\n41\n{\n'x'\n}\n")
    local l = lines(out)
    assert.are.equal("10", l[1])
    assert.are.equal("20", l[2])
    assert.are.equal("42", l[3])
    assert.are.equal('{"x"}', l[4])
    assert.are.equal("", err)
  end)

  it("reports REPL errors with the blua: prefix and carries on", function()
    local out, err, code = run("-i", "x = = 1\nerror('boom')\n6*7\n")
    assert.are.equal("42\n", out)
    assert.is_truthy(err:find("blua: stdin:1: unexpected symbol near '='", 1, true))
    assert.is_truthy(err:find("blua: stdin:1: boom", 1, true))
    assert.is_truthy(err:find("stack traceback:", 1, true))
    assert.are.equal(0, code)
  end)

  it("reports input that ends inside a statement", function()
    local _, err = run("-i", "for i = 1, 2 do\n")
    assert.is_truthy(err:find("blua: stdin:1: 'end' expected near <eof>", 1, true))
  end)

  it("exits 1 with one line blua: message when a script raises; BLUA_TRACEBACK=1 adds the traceback", function()
    local s = script_file("local function inner() error('deep trouble') end\ninner()\n")
    local out, err, code = run(q(s))
    assert.are.equal("", out)
    assert.are.equal(1, code)
    assert.is_truthy(err:match("^blua: [^\n]*:1: deep trouble\n$"), err)
    local _, err2, code2 = run(q(s), nil, "BLUA_TRACEBACK=1")
    assert.are.equal(1, code2)
    assert.is_truthy(err2:match("^blua: [^\n]*:1: deep trouble\n"))
    assert.is_truthy(err2:find("stack traceback:", 1, true))
    assert.is_truthy(err2:find("in local 'inner'", 1, true) or err2:find("in function 'inner'", 1, true))
  end)

  it("moves an error position inside blua's library to the caller's line", function()
    local s = script_file("\n\nlocal net = blua.nn.mlp{3, 4, 2, activation = 'rleu'}\n")
    local _, err, code = run(q(s))
    assert.are.equal(1, code)
    assert.is_truthy(err:match("^blua: [^\n]*:3: unknown activation in 'activation.get': 'rleu'"), err)
    local _, err2 = run("-e " .. q("blua.nn.mlp{3, 4, 2, activation = 'rleu'}"))
    assert.is_truthy(err2:match("^blua: %(command line%):1: unknown activation"), err2)
    assert.is_truthy(err2:find("stack traceback:", 1, true), err2)
  end)

  it("exits 1 for an -e error and a non-string error value", function()
    local _, err, code = run("-e 'error({})'")
    assert.are.equal(1, code)
    assert.is_truthy(err:find("blua: (error object is a table value)", 1, true))
    local _, err2, code2 = run("-e 'x ='")
    assert.are.equal(1, code2)
    assert.is_truthy(err2:match("^blua: %(command line%):1:"))
  end)

  it("names both shapes when mm is given mismatched tensors", function()
    local _, err, code = run("-e 'blua.zeros(2,3):mm(blua.zeros(2,3))'")
    assert.are.equal(1, code)
    assert.is_truthy(err:find("2x3 * 2x3", 1, true) or err:find("2x3.*2x3"))
    assert.is_truthy(err:match("^blua: "))
  end)

  it("lets os.exit set the status", function()
    local _, _, code = run("-e 'os.exit(3)'")
    assert.are.equal(3, code)
    local _, _, code2 = run("-e 'os.exit(true)'")
    assert.are.equal(0, code2)
  end)

  it("prints usage for --help and -h and exits 0", function()
    local out, _, code = run("--help")
    assert.are.equal(0, code)
    local out_h, _, code_h = run("-h")
    assert.are.equal(0, code_h)
    assert.are.equal(out, out_h)
    assert.is_truthy(out:match("^usage: blua %[options%] %[script %[args%]%]"))
    for _, opt in ipairs({"-e stat", "-l mod", "-i", "-v", "-E", "-W", "--help"}) do
      assert.is_truthy(out:find("  " .. opt, 1, true), opt)
    end
  end)

  it("rejects unknown options and missing arguments with usage and status 1", function()
    local out, err, code = run("-x")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.is_truthy(err:find("blua: unrecognized option '-x'", 1, true))
    assert.is_truthy(err:find("usage: blua", 1, true))
    local _, err2, code2 = run("-e")
    assert.are.equal(1, code2)
    assert.is_truthy(err2:find("'-e' needs an argument", 1, true))
  end)

  it("prints versions, the OpenBLAS build and the thread count for -v", function()
    local out, _, code = run("-v")
    assert.are.equal(0, code)
    local l = lines(out)
    assert.is_truthy(l[1]:match("^blua 0%.1%.0 %(Lua 5%.4%.%d+%)$"), l[1])
    assert.is_truthy(l[2]:find("OpenBLAS", 1, true), l[2])
    assert.is_truthy(l[2]:match("; (%d+) threads$"), l[2])
  end)

  it("fails clearly on a missing script, naming the scripts folder", function()
    local name = "no_such_blua_script_" .. tostring(os.time()) .. ".lua"
    local out, err, code = run(name)
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.is_truthy(err:find("blua: cannot open " .. name, 1, true))
    assert.is_truthy(err:find("scripts", 1, true))
  end)

  it("looks a bare script name up in the installed scripts folder", function()
    -- A throw-away installed layout: PREFIX/bin/blua with PREFIX/share/{lua/5.4,blua/scripts}.
    local prefix = tmpname()
    os.remove(prefix)
    local ok = os.execute(table.concat({
      "mkdir -p " .. q(prefix .. "/bin") .. " " .. q(prefix .. "/share/lua/5.4")
        .. " " .. q(prefix .. "/share/blua/scripts"),
      "cp " .. q(exe) .. " " .. q(prefix .. "/bin/blua"),
      "cp -R " .. q(repo .. "/lua/.") .. " " .. q(prefix .. "/share/lua/5.4/"),
    }, " && "))
    assert.is_true(ok)
    write_file(prefix .. "/share/blua/scripts/hello_cli.lua", "print('hello', arg[0], ...)\n")
    local out, err, code = sh("cd / && " .. q(prefix .. "/bin/blua") .. " hello_cli.lua 7 </dev/null")
    os.execute("rm -rf " .. q(prefix))
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("hello\t" .. prefix .. "/share/blua/scripts/hello_cli.lua\t7\n", out)
  end)

  it("prefers a script in the working directory over the scripts folder", function()
    local s = script_file("print('local one')\n")
    local dir, base = s:match("^(.*)/([^/]+)$")
    local out, _, code = sh("cd " .. q(dir) .. " && " .. q(exe) .. " " .. q(base) .. " </dev/null")
    assert.are.equal(0, code)
    assert.are.equal("local one\n", out)
  end)

  it("runs BLUA_INIT code or @file first, unless -E", function()
    local out = run("-e 'print(x)'", nil, "BLUA_INIT='x = 5'")
    assert.are.equal("5\n", out)
    local f = script_file("y = 'from file'\n")
    local out2 = run("-e 'print(y)'", nil, "BLUA_INIT=" .. q("@" .. f))
    assert.are.equal("from file\n", out2)
    local out3 = run("-e 'print(x)'", nil, "BLUA_INIT='x = 5' BLUA_INIT_5_4='x = 6'")
    assert.are.equal("6\n", out3)
    local out4 = run("-E -e 'print(x)'", nil, "BLUA_INIT='x = 5'")
    assert.are.equal("nil\n", out4)
    local _, err5, code5 = run("-e 'print(1)'", nil, "BLUA_INIT='error(\"bad init\")'")
    assert.are.equal(1, code5)
    assert.is_truthy(err5:find("blua: BLUA_INIT:1: bad init", 1, true))
  end)

  it("runs standard input as the script for -", function()
    local out, _, code = run("- p q", "print('stdin', arg[0], ...)\n")
    assert.are.equal(0, code)
    assert.are.equal("stdin\t-\tp\tq\n", out)
  end)

  it("runs a piped stdin without -i as a script", function()
    local out, _, code = run("", "print(6*7)\n")
    assert.are.equal(0, code)
    assert.are.equal("42\n", out)
  end)

  it("requires modules for -l mod and -l g=mod", function()
    local out = run("-l string -l s=table -e 'print(type(string), s == table)'")
    assert.are.equal("table\ttrue\n", out)
    local out2 = run("-l blua.repl -e 'print(type(_G[\"blua.repl\"].complete))'")
    assert.are.equal("function\n", out2)
    local _, err, code = run("-l no_such_module_xyz")
    assert.are.equal(1, code)
    assert.is_truthy(err:find("module 'no_such_module_xyz' not found", 1, true))
  end)

  it("enters the REPL after a script with -i", function()
    local s = script_file("answer = 42\n")
    local out, _, code = run("-i " .. q(s), "answer\n")
    assert.are.equal(0, code)
    assert.are.equal("42\n", out)
  end)

  -- Starts `input | blua args` in the background, waits until blua prints its first line, sends
  -- it SIGINT `times` times and collects the rest. Returns stdout, stderr, status. A watchdog
  -- kills blua after 120 s (generous: the suite runs under sanitizers on loaded machines) so
  -- that a broken build cannot hang the suite.
  local function interrupt(input, args, times)
    local dir = tmpname()
    os.remove(dir)
    local fifo = q(dir .. "/out")
    local cmd = table.concat({
      "mkdir " .. q(dir) .. " || exit 99",
      "mkfifo " .. fifo .. " || exit 99",
      "{ " .. input .. " } | " .. q(exe) .. " " .. args .. " >" .. fifo .. " &",
      "pid=$!",
      "( sleep 120; kill -KILL $pid ) >/dev/null 2>&1 &",
      "watchdog=$!",
      "exec 3<" .. fifo,
      "read -r first <&3",
      "echo \"$first\"",
      string.rep("kill -INT $pid; ", times),
      "cat <&3",
      "wait $pid",
      "code=$?",
      "kill $watchdog 2>/dev/null",
      "rm -rf " .. q(dir),
      "exit $code",
    }, "\n")
    return sh("sh -c " .. q(cmd))
  end

  it("turns Ctrl-C into an 'interrupted!' error, not a death by signal", function()
    local out, err, code = interrupt("true;", "-e 'print(\"ready\") while true do end'", 1)
    assert.are.equal("ready\n", out)
    assert.are.equal(1, code)
    assert.is_truthy(err:match("^blua: interrupted!\nstack traceback:"), err)
    -- One Ctrl-C can arrive twice (timeout and some shells signal the process and its group).
    local _, err2, code2 = interrupt("true;", "-e 'print(\"ready\") while true do end'", 2)
    assert.are.equal(1, code2)
    assert.is_truthy(err2:find("interrupted!", 1, true), err2)
  end)

  it("keeps the piped REPL running after Ctrl-C stops a statement", function()
    local out, err, code = interrupt("echo 'print(\"ready\") while true do end'; sleep 2; echo '6*7';",
      "-i", 1)
    assert.are.equal(0, code)
    assert.is_truthy(err:find("blua: interrupted!\nstack traceback:", 1, true), err)
    assert.are.equal("ready\n42\n", out)
  end)

  it("runs a terminal REPL with prompts, completion, history and Ctrl-D", function()
    local hist = tmpname()
    os.remove(hist)
    -- util-linux `script` gives blua a pseudo-terminal; the input is typed, then Ctrl-D.
    local out, _, code = sh("{ printf '6*7\\nblua.zer\\t(1,2)\\n'; sleep 3; printf '\\004'; } | "
      .. "BLUA_HISTORY=" .. q(hist) .. " timeout 120 script -qec " .. q(q(exe)) .. " /dev/null")
    assert.are.equal(0, code)
    out = out:gsub("\27%[[%d;?]*[%a]", ""):gsub("\r", "")
    assert.is_truthy(out:find("> 6*7\n42\n", 1, true), out)
    assert.is_truthy(out:find("> blua.zeros(1,2)\n", 1, true), out)
    assert.is_truthy(out:find("[blua.Tensor of size 1x2]", 1, true), out)
    local h = slurp(hist)
    assert.is_truthy(h:find("6*7\n", 1, true), h)
    assert.is_truthy(h:find("blua.zeros(1,2)", 1, true), h)
  end)

  it("keeps a top-level local from one line to the next, as the README's block is typed", function()
    local out, err, code = run("-i", "local a, b = 20, 22\nprint(a + b)\nlocal function f() return a * 2 end\n"
      .. "f()\nlocal z\nprint(z)\nlocal k <const> = 5\nprint(k)\nlocal t = {\n  1,\n}\n#t\n")
    assert.are.equal(0, code, err)
    assert.are.equal("42\n40\nnil\nnil\n1\n", out)
  end)

  it("pretty-prints tables, nested, with cycles marked", function()
    local out, _, code = run("-i", "{epoch = 1, loss = 0.25, list = {1, 2, 'x'}}\nt = {}; t.self = t\nt\n"
      .. "blua.tensor{{1, 2}}\n")
    assert.are.equal(0, code)
    local l = lines(out)
    assert.are.equal('{epoch = 1, list = {1, 2, "x"}, loss = 0.25}', l[1])
    assert.are.equal("{self = {...} -- cycle}", l[2])
    assert.are.equal("[blua.Tensor of size 1x2]", l[4])
  end)

  it("survives a strict-mode _G on a terminal (no 'undefined _PROMPT')", function()
    local strict = "setmetatable(_G, {__index = function(_, k) error('undefined ' .. k, 2) end})"
    local out, _, code = sh("{ printf '%s\\n6*7\\n' " .. q(strict) .. "; sleep 3; printf '\\004'; } | "
      .. "HOME=/nonexistent/blua BLUA_HISTORY= timeout 120 script -qec " .. q(q(exe)) .. " /dev/null")
    assert.are.equal(0, code)
    out = out:gsub("\27%[[%d;?]*[%a]", ""):gsub("\r", "")
    assert.is_truthy(out:find("> 6*7\n42\n", 1, true), out)
  end)

  it("does not fail when the history file cannot be written", function()
    local out, _, code = sh("{ printf '1+1\\n'; sleep 3; printf '\\004'; } | "
      .. "HOME=/nonexistent/blua BLUA_HISTORY= timeout 120 script -qec " .. q(q(exe)) .. " /dev/null")
    assert.are.equal(0, code)
    out = out:gsub("\27%[[%d;?]*[%a]", ""):gsub("\r", "")
    assert.is_truthy(out:find("> 1+1\n2\n", 1, true), out)
  end)
end)

describe("blua.repl.complete", function()
  local complete = require("blua.repl").complete

  local function contains(list, x)
    for _, v in ipairs(list) do
      if v == x then return true end
    end
    return false
  end

  it("completes module fields after a dotted path", function()
    local c = complete("blua.ze")
    assert.is_true(contains(c, "blua.zeros"))
    for _, v in ipairs(c) do assert.are.equal("blua.ze", v:sub(1, 7)) end
  end)

  it("completes globals and keywords", function()
    local c = complete("pri")
    assert.is_true(contains(c, "print"))
    local k = complete("fun")
    assert.is_true(contains(k, "function"))
    local env = {alpha = 1, alpine = 2, beta = 3}
    assert.are.same({"alpha", "alpine", "and"}, complete("a", env))
    assert.are.same({"alpha", "alpine"}, complete("al", env))
  end)

  it("walks nested tables and lists only names", function()
    local env = {cfg = {net = {depth = 1, width = 2, [3] = "x", ["not a name"] = 4}}}
    assert.are.same({"cfg.net.depth"}, complete("cfg.net.d", env))
    assert.are.same({"cfg.net.depth", "cfg.net.width"}, complete("cfg.net.", env))
    assert.are.same({}, complete("cfg.nope.", env))
    assert.are.same({}, complete("cfg:x.", env))
  end)

  it("completes tensor methods after ':' through the metatable", function()
    local env = {t = require("blua").ones(2, 2)}
    local c = complete("t:su", env)
    assert.is_true(contains(c, "t:sum"))
    assert.is_true(contains(c, "t:sub"))
    local all = complete("t:", env)
    assert.is_true(contains(all, "t:mm"))
    assert.is_false(contains(all, "t:__gc"))
  end)

  it("offers only callables after ':' and follows __index tables", function()
    local Class = {}
    Class.__index = Class
    function Class.run() end
    Class.speed = 3
    local obj = setmetatable({own = function() end, count = 1}, Class)
    local env = {obj = obj}
    assert.are.same({"obj:own", "obj:run"}, complete("obj:", env))
    assert.are.same({"obj.count", "obj.own", "obj.run", "obj.speed"}, complete("obj.", env))
  end)

  it("lists names an __index function provides through __fields", function()
    local lazy = setmetatable({}, {__index = function() end, __fields = {"later", "lazy_x"}})
    assert.are.same({"m.later", "m.lazy_x"}, complete("m.la", {m = lazy}))
  end)

  it("hides names starting with _ unless the word starts with _", function()
    local env = {m = {_secret = 1, __meta = 2, open = 3}}
    assert.are.same({"m.open"}, complete("m.", env))
    assert.are.same({"m._secret"}, complete("m._", env))
    assert.are.same({"m.__meta"}, complete("m.__", env))
    for _, v in ipairs(complete("blua.")) do assert.is_nil(v:match("^blua%._"), v) end
  end)

  it("survives values whose indexing raises", function()
    local bad = setmetatable({}, {__index = function() error("no") end})
    assert.are.same({}, complete("b.x.", {b = bad}))
  end)
end)
