-- Helpers of the blua REPL that are plain Lua, so they can be tested without a terminal.
-- The blua command calls M.complete(text) when Tab is pressed at its prompt, and M.pretty(v)
-- to print a table that has no __tostring of its own.
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

-- Names starting with "_" (metamethods, internals such as blua._affine) only when the partial
-- word starts with "_" too; "__" names only when it starts with "__".
local function sorted_matches(names, partial, prefix)
  local out = {}
  for k in pairs(names) do
    local hidden = (k:sub(1, 1) == "_" and partial:sub(1, 1) ~= "_")
      or (k:sub(1, 2) == "__" and partial:sub(1, 2) ~= "__")
    if k:sub(1, #partial) == partial and not hidden then
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

-- ---------------------------------------------------------------- printing values

local function pretty_key(k)
  if is_name(k) then return k end
  if type(k) == "string" then return "[" .. string.format("%q", k) .. "]" end
  return "[" .. tostring(k) .. "]"
end

local function pretty_scalar(v)
  if type(v) == "string" then return string.format("%q", v) end
  if math.type(v) == "float" then return string.format("%.6g", v) end
  local mt = debug.getmetatable(v)
  if type(v) == "userdata" and mt and mt.__name == "blua.Tensor" then
    -- inside a table, a tensor is its size line only
    local last = tostring(v):match("([^\n]*)$")
    return last
  end
  return tostring(v)
end

-- Keys in a stable order: the list part 1..n first, then numbers, then strings, then others.
local function sorted_keys(t)
  local n, keys = #t, {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  local rank = {number = 1, string = 2}
  table.sort(keys, function(a, b)
    local ra, rb = rank[type(a)] or 3, rank[type(b)] or 3
    if ra ~= rb then return ra < rb end
    if ra == 3 then return tostring(a) < tostring(b) end
    return a < b
  end)
  return n, keys
end

local MAX_ITEMS, MAX_DEPTH, WIDTH = 40, 4, 78

local format_value

-- A table as Lua-like text: on one line when it fits, else one entry per line, indented.
local function format_table(t, indent, seen, depth)
  if seen[t] then return "{...} -- cycle" end
  if depth > MAX_DEPTH then return "{...}" end
  seen[t] = true
  local n, keys = sorted_keys(t)
  local items, count = {}, 0
  local function add(text)
    count = count + 1
    if count <= MAX_ITEMS then items[#items + 1] = text end
  end
  for i = 1, n do add(format_value(t[i], indent .. "  ", seen, depth + 1)) end
  for _, k in ipairs(keys) do add(pretty_key(k) .. " = " .. format_value(t[k], indent .. "  ", seen, depth + 1)) end
  if count > MAX_ITEMS then items[#items + 1] = string.format("... (%d more)", count - MAX_ITEMS) end
  seen[t] = nil
  if #items == 0 then return "{}" end
  local one = "{" .. table.concat(items, ", ") .. "}"
  if #one + #indent <= WIDTH and not one:find("\n") then return one end
  return "{\n" .. indent .. "  " .. table.concat(items, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
end

format_value = function(v, indent, seen, depth)
  if type(v) == "table" and not (debug.getmetatable(v) and debug.getmetatable(v).__tostring) then
    return format_table(v, indent, seen, depth)
  end
  return pretty_scalar(v)
end

-- The REPL's text for a value: tables spelled out (nested up to 4 levels, 40 entries each,
-- cycles marked), everything else as tostring gives it.
function M.pretty(v)
  if type(v) ~= "table" then return tostring(v) end
  return format_value(v, "", {}, 1)
end

return M
