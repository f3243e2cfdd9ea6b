-- Small file helpers shared by the specs (required as "tests.support" from the repo root).
local support = {}

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
