-- How long OpenMP threads should wait before they sleep, side by side in one run: each waiting
-- behaviour runs in a child process (libgomp reads it once, at start-up), on an idle machine
-- and with one competing busy process pinned to core 0.
--   kernels   20 000 calls of t:add on a 128 x 784 tensor from Lua, 2 threads (microseconds
--             per call): a parallel region per call, with a little Lua between two of them
--   lua path  one Bregman epoch of the 784-784-784-784-784 autoencoder of
--             scripts/autoencoder.lua (L1 term on its code) on MNIST rows (seconds): the lifted
--             trainers' path that calls kernels one by one from Lua, 2 threads
-- against the same work on 1 thread on the idle machine. The behaviours: "sleep at once"
-- (OMP_WAIT_POLICY=passive), "blua's default" (nothing set: passive after a spin of
-- GOMP_SPINCOUNT rounds) and "spin" (OMP_WAIT_POLICY=active, libgomp's spinning).
--   blua scripts/bench/waiting.lua [--rows 4096] [--contention yes|no]
local blua = require "blua"

local o = blua.cli.parse(arg, {
  {"rows", "integer", 4096, "training rows of the lua-path epoch"},
  {"contention", {"yes", "no"}, "yes", "also run with one competing busy process"},
  {"child", "string", "", "(internal) run one workload and print its time"},
  {"threads", "integer", 2, "(internal) threads of the child"},
}, {usage = "blua scripts/bench/waiting.lua [options]"})

local function kernels()
  local a, b = blua.rand(128, 784), blua.rand(128, 784)
  local n = 20000
  local t0 = blua.clock()
  for _ = 1, n do a:add(1e-6, b) end
  return (blua.clock() - t0) / n * 1e6
end

local function lua_path()
  local x = blua.data.subset(blua.data.mnist("train"), 1, o.rows).x
  blua.manualSeed(1)
  local acts = {"relu", "relu", {name = "soft_threshold", params = {lambda = 0.1}}}
  local net = blua.nn.mlp{784, 784, 784, 784, 784, output = "identity", activation = acts}
  local best = math.huge
  blua.train.bregman(net, {x = x, y = x}, {epochs = 2, verbose = false, l1 = {[3] = 0.1},
    on_epoch = function(_, stats) best = math.min(best, stats.seconds) end})
  return best
end

if o.child ~= "" then
  blua.setNumThreads(o.threads)
  print(string.format("%.6f", (o.child == "kernels" and kernels or lua_path)()))
  return
end

local exe = arg[-1] or "blua"
local script = arg[0]
local clean = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u BLUA_SET_WAIT_POLICY "
local behaviours = {
  {"sleep at once", clean .. "OMP_WAIT_POLICY=passive "},
  {"blua's default", clean},
  {"spin", clean .. "OMP_WAIT_POLICY=active "},
}

local function child(env, workload, threads)
  local cmd = string.format("%s'%s' '%s' --child %s --threads %d --rows %d 2>&1", env, exe, script, workload,
    threads, o.rows)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local t = tonumber(out:match("([%d.]+)%s*$"))
  if not t then error("child failed: " .. cmd .. "\n" .. out, 0) end
  return t
end

local workloads = {{"kernels", "us per call"}, {"lua path", "s per epoch"}}
local function name_of(w) return w == "lua path" and "lua_path" or w end

local reference = {}
for _, w in ipairs(workloads) do reference[w[1]] = child(clean, name_of(w[1]), 1) end

local function report(condition)
  for _, w in ipairs(workloads) do
    for _, b in ipairs(behaviours) do
      local t = child(b[2], name_of(w[1]), 2)
      print(string.format("%-9s %-15s %-14s 2 threads %9.3f %s = %5.2fx 1 thread idle", w[1], condition, b[1], t,
        w[2], t / reference[w[1]]))
    end
  end
end

print(string.format("1 thread, idle machine: kernels %.3f us per call, lua path %.3f s per epoch",
  reference.kernels, reference["lua path"]))
report("idle")
if o.contention == "yes" then
  local taskset = os.execute("command -v taskset >/dev/null 2>&1") and "taskset -c 0 " or ""
  local p = assert(io.popen(taskset .. "sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "could not start the busy process")
  local ok, err = pcall(report, "busy process")
  os.execute("kill " .. pid)
  if not ok then error(err, 0) end
end
