-- blua.cli: parsing GNU-style options for scripts, and refusing a spec it cannot honour.
local blua = require "blua"
local cli = blua.cli

local spec = {
  {"epochs", "integer", 20, "number of epochs"},
  {"lr", "number", nil, "learning rate"},
  {"method", {"bregman", "lifted", "backprop"}, "bregman", "training method"},
  {"save", "string", nil, "checkpoint path"},
  {"quick", "flag", false, "a small smoke run"},
  {"train-size", "integer", nil, "training rows"},
}

describe("blua.cli.try_parse", function()
  it("converts each kind, takes --name value and --name=value, and keeps the rest in order", function()
    local o = assert(cli.try_parse({"a", "--epochs", "3", "--lr=0.5", "--method", "lifted", "--quick", "b",
      "--train-size=100", "--save", "x.blua"}, spec))
    assert.equal(3, o.epochs)
    assert.equal("integer", math.type(o.epochs))
    assert.equal(0.5, o.lr)
    assert.equal("lifted", o.method)
    assert.is_true(o.quick)
    assert.equal(100, o.train_size)
    assert.equal("x.blua", o.save)
    assert.same({"a", "b"}, o.args)
  end)

  it("gives the defaults when an option is absent", function()
    local o = assert(cli.try_parse({}, spec))
    assert.equal(20, o.epochs)
    assert.equal("bregman", o.method)
    assert.is_false(o.quick)
    assert.is_nil(o.lr)
  end)

  it("returns nil and a message for a bad value, an unknown option or a missing value", function()
    local cases = {
      {{"--epochs", "2.5"}, "--epochs expects an integer, got '2.5'"},
      {{"--lr", "fast"}, "--lr expects a number, got 'fast'"},
      {{"--method", "sgd"}, "--method expects one of bregman, lifted, backprop, got 'sgd'"},
      {{"--nope"}, "unknown option --nope (try --help)"},
      {{"--epochs"}, "--epochs needs a value"},
      {{"--quick=yes"}, "--quick takes no value"},
      {{"--epochs", 3}, "argument 2 is a number, not a string"},
    }
    for _, c in ipairs(cases) do
      local o, err = cli.try_parse(c[1], spec)
      assert.is_nil(o)
      assert.equal(c[2], err)
    end
  end)
end)

describe("blua.cli spec checks", function()
  local function refuses(bad_spec, want)
    for _, f in ipairs{function() return cli.try_parse({}, bad_spec) end, function() return cli.usage(bad_spec) end,
                       function() return cli.parse({}, bad_spec) end} do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(want, 1, true), tostring(err))
    end
  end

  it("refuses a kind it does not know instead of handing back strings", function()
    refuses({{"epochs", "int", 20}}, "spec[1] (--epochs) has kind int; expected integer, number, string, flag or a list of strings")
    refuses({{"m", {}}}, "spec[1] (--m) lists no allowed values")
    refuses({{"m", {"a", 2}}}, "spec[1] (--m) lists a number among its values")
  end)

  it("refuses a default of the wrong type, a bad name, a name twice and --help", function()
    refuses({{"epochs", "integer", 2.5}}, "(--epochs) has a default of type float that is no integer")
    refuses({{"quick", "flag", 0}}, "(--quick) has a default of type integer that is no flag")
    refuses({{"m", {"a", "b"}, 1}}, "(--m) has a default of type integer that is no one of a, b")
    refuses({{"--epochs", "integer"}}, "spec[1] needs a name of letters, digits, '-' and '_', got --epochs")
    refuses({{"a", "flag"}, {"a", "string"}}, "spec[2] names --a twice")
    refuses({{"help", "flag"}}, "spec[1] names --help, whose opts.help blua.cli keeps for itself")
    -- opts.args holds the other arguments, and --a-b is opts.a_b: a second owner would overwrite it
    refuses({{"args", "string", "x"}}, "spec[1] names --args, whose opts.args blua.cli keeps for itself")
    refuses({{"a-b", "string"}, {"a_b", "integer"}}, "spec[2] names --a_b, which is opts.a_b as --a-b is")
    refuses({{"m", {"a", "b"}, "c"}}, "spec[1] (--m) has the default 'c', which is not one of a, b")
    refuses({"epochs"}, "spec[1] must be a table {name, kind, default, help}, got string")
    refuses({{"a", "flag", false, 3}}, "(--a) has a help of type number")
    refuses("epochs", "spec must be a table, got string")
  end)

  it("refuses args that are not a table, info that is not a table, and extra arguments", function()
    assert.has_error(function() cli.try_parse("--quick", spec) end, "blua.cli.try_parse: args must be a table, got string")
    assert.has_error(function() cli.parse({}, spec, "usage") end, "blua.cli.parse: info must be a table, got string")
    assert.has_error(function() cli.parse({}, spec, {}, {}) end,
      "blua.cli.parse: (args, spec [, info]) expected, got 1 more argument")
    assert.has_error(function() cli.try_parse({}, spec, {}) end,
      "blua.cli.try_parse: (args, spec) expected, got 1 more argument")
    assert.has_error(function() cli.usage(spec, {}, 1) end,
      "blua.cli.usage: (spec [, info]) expected, got 1 more argument")
  end)

  it("lists every option with its kind and default in the usage", function()
    local u = cli.usage(spec, {usage = "blua x.lua [options]", about = "does x"})
    assert.truthy(u:find("usage: blua x.lua [options]\ndoes x\n", 1, true))
    assert.truthy(u:find("--epochs INTEGER", 1, true))
    assert.truthy(u:find("(default 20)", 1, true))
    assert.truthy(u:find("--method bregman|lifted|backprop", 1, true))
    assert.truthy(u:find("--help", 1, true))
  end)
end)
