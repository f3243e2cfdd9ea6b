-- Every example runs to completion with the blua command.
describe("examples", function()
  local exe = os.getenv("BLUA_EXE") or "build/blua"
  local have_mnist = pcall(require("blua").data.mnist, "test")
  local have_fashion = pcall(require("blua").data.fashion, "test")
  local picture = os.tmpname()
  teardown(function() os.remove(picture) end)
  -- name, arguments (small runs), data set needed
  for _, e in ipairs{{"custom_activation.lua", ""}, {"custom_loop.lua", "", have_mnist},
                     {"cnn_fashion.lua", "1 bregman 300", have_fashion},
                     {"denoise.lua", "1000 2 " .. picture, have_fashion}} do
    local name = e[1]
    it(name .. " runs", function()
      if e[3] == false then
        pending("the data set is not fetched (scripts/fetch-data)")
        return
      end
      local p = io.popen(string.format("%s examples/%s %s 2>&1", exe, name, e[2]))
      local out = p:read("a")
      local ok = p:close()
      assert.is_true(ok, out)
      assert.truthy(#out > 0)
    end)
  end
end)
