-- Small helpers shared by the specs (required as "tests.support" from the repo root): files,
-- and running the blua command.
local support = {}

support.exe = os.getenv("BLUA_EXE") or "build/blua"

-- s quoted for the shell.
function support.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Output (stdout and stderr together) and exit status of `blua args`.
function support.run(args)
  local p = io.popen(string.format("%s %s 2>&1", support.exe, args))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- stdout, stderr and exit status of `env blua args`, stdin empty; stderr goes through a file in dir.
function support.run_split(dir, args, env)
  local errfile = dir .. "/stderr"
  local p = io.popen(string.format("%s %s %s 2>%s </dev/null", env or "", support.quote(support.exe), args,
    support.quote(errfile)))
  local out = p:read("a")
  local _, _, code = p:close()
  local f = io.open(errfile)
  local err = f:read("a")
  f:close()
  return out, err, code
end

-- The whole file as a string; an error when it cannot be opened.
function support.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function support.write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

return support
