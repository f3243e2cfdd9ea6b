-- Command-line options for blua scripts: GNU-style --name value / --name=value / --flag.
--   local opts = blua.cli.parse(arg, {
--     {"epochs", "integer", 20, "number of epochs"},
--     {"method", {"bregman", "lifted", "backprop"}, "bregman", "training method"},
--     {"save", "string", nil, "checkpoint path"},
--     {"quick", "flag", false, "a small smoke run"},
--   }, {usage = "blua train_mnist.lua [options]"})
-- --help (or -h) prints the usage and exits 0; a bad option raises an error without a position,
-- which the blua command prints as one line "blua: message" before exiting with status 1.
local cli = {}

local function kind_name(kind)
  if type(kind) == "table" then return table.concat(kind, "|") end
  return kind == "flag" and "" or kind:upper()
end

function cli.usage(spec, info)
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

return cli
