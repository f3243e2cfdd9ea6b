-- blua.data.csv: a user's own table of numbers becomes a data set the trainers take.
local blua = require "blua"
local write_file = require("tests.support").write_file

local tmp = os.tmpname()
teardown(function() os.remove(tmp) end)

local function message(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return tostring(err)
end

describe("blua.data.csv", function()
  it("reads a header, takes the label column by name or number, and trains", function()
    write_file(tmp, "a, b ,class\r\n0.5,1,2\n\n1,2,1\n3,4,2\n")
    local d = blua.data.csv(tmp, {label = "class"})
    assert.same({{0.5, 1}, {1, 2}, {3, 4}}, d.x:totable())
    assert.same({{2}, {1}, {2}}, d.y:totable())
    assert.equal(3, d.n)
    assert.equal(2, d.classes)
    assert.same(d.y:totable(), blua.data.csv(tmp, {label = 3}).y:totable())
    local net = blua.nn.mlp{2, 4, 2}
    assert.equal(1, #blua.train.backprop(net, d, {epochs = 1, batch = 2, verbose = false}))
  end)

  it("reads files without a header, other separators, and 0-based labels on request", function()
    write_file(tmp, "0;1;0\n2;3;1\n")
    local d = blua.data.csv(tmp, {label = 1, sep = ";", zero_based = true})
    assert.same({{1}, {3}}, d.y:totable())
    assert.same({{1, 0}, {3, 1}}, d.x:totable())
    local plain = blua.data.csv(tmp, {sep = ";"})
    assert.is_nil(plain.y)
    assert.same({2, 3}, {plain.x:size()})
  end)

  it("says what is wrong, with the line and the field", function()
    write_file(tmp, "x,y\n1,0\n2,1\n")
    assert.truthy(message(blua.data.csv, tmp, {label = "y"}):find("holds 0..1; labels are the integers 1..C (0-based labels: pass zero_based = true)", 1, true))
    assert.truthy(message(blua.data.csv, tmp, {label = "z"}):find("no column 'z'", 1, true))
    assert.truthy(message(blua.data.csv, tmp, {label = 3}):find("label must be a column 1..2", 1, true))
    assert.truthy(message(blua.data.csv, tmp, {lable = 1}):find("unknown option 'lable'", 1, true))
    write_file(tmp, "1,2\n3,x\n")
    assert.truthy(message(blua.data.csv, tmp):find("line 2 field 2 is not a number: 'x'", 1, true))
    write_file(tmp, "1,2\n3\n")
    assert.truthy(message(blua.data.csv, tmp):find("line 2 has 1 fields, the first line 2", 1, true))
    assert.truthy(message(blua.data.csv, tmp .. ".none"):find("cannot open in 'blua.data.csv'", 1, true))
  end)
end)
