-- Helpers of the blua REPL that are plain Lua, so they can be tested without a terminal.
-- The blua command calls M.complete(text) when Tab is pressed at its prompt.
local M = {}

local keywords = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
}

local function is_name(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = debug.getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

-- Adds to names every key k (a Lua name) of table t whose value passes keep(k, value).
local function add_keys(names, t, keep)
  for k, v in next, t do
    if is_name(k) and keep(k, v) then names[k] = true end
  end
end

-- Adds the names that indexing v can reach: v's own keys when it is a table, then through its
-- metatable: the __index table (followed further), or, when __index is a function, the
-- metatable's own non-metamethod entries (where userdata such as tensors keep methods).
-- A metatable may also list names its __index function provides in __fields (a list, or a
-- function returning one); lazily loaded submodules use this.
local function add_reachable(names, v, keep, seen)
  if seen[v] then return end
  seen[v] = true
  if type(v) == "table" then add_keys(names, v, keep) end
  local mt = debug.getmetatable(v)
  if type(mt) ~= "table" then return end
  local index = rawget(mt, "__index")
  if type(index) == "table" then
    add_reachable(names, index, keep, seen)
  elseif index ~= nil then
    add_keys(names, mt, function(k, x) return not k:match("^__") and keep(k, x) end)
  end
  local fields = rawget(mt, "__fields")
  if type(fields) == "function" then
    local ok, list = pcall(fields, v)
    fields = ok and list or nil
  end
  if type(fields) == "table" then
    for _, k in ipairs(fields) do
      if is_name(k) then names[k] = true end
    end
  end
end

-- The value a dotted path names ("blua.nn" -> blua.nn), or nil. Indexing runs metamethods, so
-- lazily loaded modules appear; any error just means no value.
local function resolve(env, path)
  local v = env
  for part in (path .. "."):gmatch("([^.]*)%.") do
    if not is_name(part) then return nil end
    local ok, x = pcall(function() return v[part] end)
    if not ok or x == nil then return nil end
    v = x
  end
  return v
end

-- Names starting with "__" (metamethods, internals) only when the partial word asks for them.
local function sorted_matches(names, partial, prefix)
  local hidden = partial:sub(1, 2) ~= "__"
  local out = {}
  for k in pairs(names) do
    if k:sub(1, #partial) == partial and not (hidden and k:sub(1, 2) == "__") then
      out[#out + 1] = prefix .. k
    end
  end
  table.sort(out)
  return out
end

local function any(_, _) return true end
local function callable(_, v) return is_callable(v) end

-- Completion candidates for text, the word before the cursor: a global name or keyword
-- ("pri" -> "print"), a field after a dotted path ("blua.ze" -> "blua.zeros"), or a method
-- after ':' ("t:ad" -> "t:add"). Returns a sorted list of whole replacement words.
function M.complete(text, env)
  env = env or _G
  text = text or ""
  local path, sep, partial = text:match("^(.*)([.:])([%w_]*)$")
  if path == nil then
    if text ~= "" and not is_name(text) then return {} end
    local names = {}
    for _, k in ipairs(keywords) do names[k] = true end
    add_reachable(names, env, any, {})
    return sorted_matches(names, text, "")
  end
  if path:find(":", 1, true) then return {} end -- "a:b.c" is not an expression
  local v = resolve(env, path)
  if v == nil then return {} end
  local names = {}
  add_reachable(names, v, sep == ":" and callable or any, {})
  return sorted_matches(names, partial, path .. sep)
end

return M
