-- Command-line options for blua scripts: GNU-style --name value / --name=value / --flag.
--   local opts = blua.cli.parse(arg, {
--     {"epochs", "integer", 20, "number of epochs"},
--     {"method", {"bregman", "lifted", "backprop"}, "bregman", "training method"},
--     {"save", "string", nil, "checkpoint path"},
--     {"quick", "flag", false, "a small smoke run"},
--   }, {usage = "blua train_mnist.lua [options]"})
-- --help (or -h) prints the usage and exits 0; a bad option raises an error without a position,
-- which the blua command prints as one line "blua: message" before exiting with status 1.
local blua = require "blua"

local cli = {}

local kinds = {integer = true, number = true, string = true, flag = true}

local function kind_name_plain(kind)
  return type(kind) == "table" and "one of " .. table.concat(kind, ", ") or kind
end

-- A spec entry is {name, kind, default, help}: kind "integer", "number", "string", "flag" or a
-- list of the allowed strings; the default (nil, or of that kind) and help are optional. A
-- mistake here (a kind spelt "int") would otherwise turn every value into a string unnoticed.
local function check_spec(who, spec)
  if type(spec) ~= "table" then error(string.format("%s: spec must be a table, got %s", who, type(spec)), 3) end
  local seen = {}
  for i, s in ipairs(spec) do
    local function bad(what) error(string.format("%s: spec[%d] %s", who, i, what), 4) end
    if type(s) ~= "table" then bad("must be a table {name, kind, default, help}, got " .. type(s)) end
    local name, kind, default, help = s[1], s[2], s[3], s[4]
    if type(name) ~= "string" or not name:match("^%w[%w_-]*$") then
      bad("needs a name of letters, digits, '-' and '_', got " .. tostring(name))
    end
    -- opts holds each option under its name with '-' as '_', beside opts.help and opts.args
    -- (the other arguments): two names for one key would overwrite each other in silence.
    local key = name:gsub("-", "_")
    if key == "help" or key == "args" then bad("names --" .. name .. ", whose opts." .. key .. " blua.cli keeps for itself") end
    if seen[key] then
      bad("names --" .. name .. (seen[key] == name and " twice" or ", which is opts." .. key .. " as --" .. seen[key] .. " is"))
    end
    seen[key] = name
    if type(kind) == "table" then
      if #kind == 0 then bad("(--" .. name .. ") lists no allowed values") end
      for _, k in ipairs(kind) do
        if type(k) ~= "string" then bad("(--" .. name .. ") lists a " .. type(k) .. " among its values") end
      end
    elseif not kinds[kind] then
      bad(string.format("(--%s) has kind %s; expected integer, number, string, flag or a list of strings", name, tostring(kind)))
    end
    if default ~= nil then
      local ok
      if kind == "integer" then ok = math.type(default) == "integer"
      elseif kind == "number" then ok = type(default) == "number"
      elseif kind == "flag" then ok = type(default) == "boolean"
      else ok = type(default) == "string" end
      if not ok then bad(string.format("(--%s) has a default of type %s that is no %s", name, math.type(default) or type(default), kind_name_plain(kind))) end
      if type(kind) == "table" then
        local listed = false
        for _, k in ipairs(kind) do listed = listed or k == default end
        if not listed then bad(string.format("(--%s) has the default '%s', which is not one of %s", name, default, table.concat(kind, ", "))) end
      end
    end
    if help ~= nil and type(help) ~= "string" then bad("(--" .. name .. ") has a help of type " .. type(help)) end
  end
end

local function kind_name(kind)
  if type(kind) == "table" then return table.concat(kind, "|") end
  return kind == "flag" and "" or kind:upper()
end

function cli.usage(spec, info)
  check_spec("blua.cli.usage", spec)
  local lines = {"usage: " .. (info and info.usage or "blua SCRIPT [options]")}
  if info and info.about then lines[#lines + 1] = info.about end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "options:"
  for _, s in ipairs(spec) do
    local name, kind, default, help = s[1], s[2], s[3], s[4]
    local left = "  --" .. name .. (kind == "flag" and "" or " " .. kind_name(kind))
    local def = (default ~= nil and kind ~= "flag") and string.format(" (default %s)", tostring(default)) or ""
    lines[#lines + 1] = string.format("%-40s %s%s", left, help or "", def)
  end
  lines[#lines + 1] = string.format("%-40s %s", "  --help", "show this help")
  return table.concat(lines, "\n")
end

local function convert(name, kind, text)
  if kind == "integer" then
    local v = math.tointeger(tonumber(text))
    if not v then return nil, string.format("--%s expects an integer, got '%s'", name, text) end
    return v
  elseif kind == "number" then
    local v = tonumber(text)
    if not v then return nil, string.format("--%s expects a number, got '%s'", name, text) end
    return v
  elseif type(kind) == "table" then
    for _, k in ipairs(kind) do if k == text then return text end end
    return nil, string.format("--%s expects one of %s, got '%s'", name, table.concat(kind, ", "), text)
  end
  return text
end

-- Parses without exiting: returns opts, or nil and a message; opts.help is set for --help.
function cli.try_parse(args, spec)
  if type(args) ~= "table" then error("blua.cli.try_parse: args must be a table, got " .. type(args), 2) end
  check_spec("blua.cli.try_parse", spec)
  for i = 1, #args do
    if type(args[i]) ~= "string" then return nil, string.format("argument %d is a %s, not a string", i, type(args[i])) end
  end
  local by_name, opts = {}, {}
  for _, s in ipairs(spec) do
    by_name[s[1]] = s
    opts[s[1]:gsub("-", "_")] = s[3]
  end
  local rest = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then
      opts.help = true
    elseif a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local s = by_name[name]
      if not s then return nil, string.format("unknown option --%s (try --help)", name) end
      local key = name:gsub("-", "_")
      if s[2] == "flag" then
        if value then return nil, string.format("--%s takes no value", name) end
        opts[key] = true
      else
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then return nil, string.format("--%s needs a value", name) end
        end
        local v, err = convert(name, s[2], value)
        if v == nil then return nil, err end
        opts[key] = v
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  opts.args = rest
  return opts
end

function cli.parse(args, spec, info)
  if info ~= nil and type(info) ~= "table" then error("blua.cli.parse: info must be a table, got " .. type(info), 2) end
  check_spec("blua.cli.parse", spec)
  local opts, err = cli.try_parse(args or {}, spec)
  if not opts then
    error(err, 0)
  end
  if opts.help then
    print(cli.usage(spec, info))
    os.exit(0)
  end
  return opts
end

blua._refuseExtra(cli, "blua.cli.", {usage = "spec [, info]", try_parse = "args, spec", parse = "args, spec [, info]"})

return cli
