-- The L1 option in the C batch steps, against a build without it, side by side in one run: one
-- epoch of the 784-784-784-784-784 denoising autoencoder of scripts/autoencoder.lua (L1 term
-- α = 0.1 on its code, layer 3) on 4096 centred, noisy Fashion-MNIST images (σ = 0.3), Bregman
-- and back-propagation, 1 and 2 threads. Each measurement is a child process (the faster of two
-- epochs); the builds take turns, `--reps` rounds, and the table gives the best of the rounds
-- (bursts of load from other processes only add time) and their ratios, with the medians
-- after them. "no L1" is this build without the option: the cost of the L1 term itself.
-- `--model cnn`: the CNN of blua.experiment.cnn on MNIST rows instead, L1 terms α = 0.001 on
-- its first convolution's output and 0.01 on its 128-wide dense layer.
--   blua scripts/bench/l1_c_path.lua --base /path/to/other/blua [--reps 5] [--rows 4096] [--model cnn]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"base", "string", "", "the blua executable of the build to compare with"},
  {"reps", "integer", 5, "rounds of measurements"},
  {"rows", "integer", 4096, "training images"},
  {"model", {"autoencoder", "cnn"}, "autoencoder", "the network"},
  {"child", "string", "", "(internal) run one epoch of this method and print its time"},
  {"threads", "integer", 2, "(internal) threads of the child"},
  {"l1", {"yes", "no"}, "yes", "(internal) the L1 term in the child"},
}, {usage = "blua scripts/bench/l1_c_path.lua --base BLUA [options]"})

if o.child ~= "" then
  local train, net, l1
  if o.model == "cnn" then
    train = blua.data.subset(blua.data.mnist("train"), 1, o.rows)
    blua.manualSeed(1)
    net, l1 = blua.experiment.cnn(), {[1] = 0.001, [3] = 0.01}
  else
    local clean = blua.data.centre(blua.data.subset(blua.data.fashion("train"), 1, o.rows))
    train = blua.data.noisy(clean, 0.3, {seed = 1})
    blua.manualSeed(1)
    local acts = {"relu", "relu", {name = "soft_threshold", params = {lambda = 0.1}}}
    net, l1 = blua.nn.mlp{784, 784, 784, 784, 784, output = "identity", activation = acts}, {[3] = 0.1}
  end
  local h = blua.train[o.child](net, train, {epochs = 2, verbose = false, eval_train = false, threads = o.threads,
    l1 = o.l1 == "yes" and l1 or nil})
  print(string.format("%.6f", math.min(h[1].seconds, h[2].seconds)))
  os.exit(0)
end

if o.base == "" then error("--base: the blua executable to compare with is required", 0) end
local self_exe = arg[-1]
local script = arg[0]

local function measure(exe, method, threads, l1)
  local cmd = string.format("%s %s --child %s --threads %d --rows %d --l1 %s --model %s", exe, script, method, threads,
    o.rows, l1, o.model)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return assert(tonumber(out:match("([%d.]+)%s*$")), "no time from: " .. cmd .. "\n" .. out)
end

local configs = {}
for _, method in ipairs{"bregman", "backprop"} do
  for _, threads in ipairs{1, 2} do configs[#configs + 1] = {method = method, threads = threads} end
end
local times = {}
for _ = 1, o.reps do
  for i, c in ipairs(configs) do
    times[i] = times[i] or {base = {}, new = {}, plain = {}}
    local t = times[i]
    t.base[#t.base + 1] = measure(o.base, c.method, c.threads, "yes")
    t.new[#t.new + 1] = measure(self_exe, c.method, c.threads, "yes")
    t.plain[#t.plain + 1] = measure(self_exe, c.method, c.threads, "no")
  end
end

local function median(list)
  local s = {table.unpack(list)}
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

local function best(list) return math.min(table.unpack(list)) end

print(string.format("%s, %d images, %d rounds, seconds per epoch: best of the rounds (median)", o.model, o.rows, o.reps))
print("| method | threads | L1, before (s) | L1, this build (s) | before / this | no L1, this build (s) | L1 / no L1 |")
print("|---|---|---|---|---|---|---|")
for i, c in ipairs(configs) do
  local t = times[i]
  local b, n, p = best(t.base), best(t.new), best(t.plain)
  print(string.format("| %s | %d | %.3f (%.3f) | %.3f (%.3f) | %.2f (%.2f) | %.3f (%.3f) | %.2f (%.2f) |", c.method,
    c.threads, b, median(t.base), n, median(t.new), b / n, median(t.base) / median(t.new), p, median(t.plain), n / p,
    median(t.new) / median(t.plain)))
end
