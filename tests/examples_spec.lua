-- Every example runs to completion with the blua command.
describe("examples", function()
  local exe = os.getenv("BLUA_EXE") or "build/blua"
  local have_mnist = pcall(require("blua").data.mnist, "test")
  for _, name in ipairs{"custom_activation.lua", "custom_loop.lua"} do
    it(name .. " runs", function()
      if name == "custom_loop.lua" and not have_mnist then
        pending("MNIST is not fetched (scripts/fetch-data)")
        return
      end
      local p = io.popen(string.format("%s examples/%s 2>&1", exe, name))
      local out = p:read("a")
      local ok = p:close()
      assert.is_true(ok, out)
      assert.truthy(#out > 0)
    end)
  end
end)
