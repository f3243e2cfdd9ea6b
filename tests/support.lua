-- Small helpers shared by the specs (required as "tests.support" from the repo root): files,
-- running the blua command, and comparing training runs.
local support = {}

support.exe = os.getenv("BLUA_EXE") or "build/blua"

-- s quoted for the shell.
function support.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Output (stdout and stderr together) and exit status of `blua args`.
function support.run(args)
  local p = io.popen(string.format("%s %s 2>&1", support.exe, args))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- stdout, stderr and exit status of `env blua args`, stdin empty; stderr goes through a file in dir.
function support.run_split(dir, args, env)
  local errfile = dir .. "/stderr"
  local p = io.popen(string.format("%s %s %s 2>%s </dev/null", env or "", support.quote(support.exe), args,
    support.quote(errfile)))
  local out = p:read("a")
  local _, _, code = p:close()
  local f = io.open(errfile)
  local err = f:read("a")
  f:close()
  return out, err, code
end

-- The whole file as a string; an error when it cannot be opened.
function support.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function support.write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

-- The objective whose parameter gradient blua.train.gradients(method, ...) returns: the loss for
-- back-propagation, the lifted energy at the auxiliary variables X (γ = 1) for the others.
function support.objective(method, net, data, X)
  local blua = require "blua"
  if method == "backprop" then
    local _, terms = blua.metrics.energy(net, data)
    return terms[#terms]
  end
  return (blua.metrics.energy(net, data, {X = X, penalty = method == "bregman" and "bregman" or "quadratic", gamma = 1.0}))
end

-- Central differences of support.objective with step h at `per_tensor` random entries
-- (math.random) of every parameter, against grads (net:parameters() order). Entries with a
-- ReLU kink inside [v − h, v + h] make the one-sided slopes disagree and say nothing about the
-- gradient, so they are skipped. Returns the worst relative error and the entries checked.
function support.finite_differences(method, net, data, X, grads, h, per_tensor)
  local worst, checked = 0, 0
  for i, p in ipairs(net:parameters()) do
    local rows, cols = p:size()
    for _ = 1, per_tensor do
      local r, c = math.random(rows), math.random(cols)
      local v = p:get(r, c)
      p:set(r, c, v + h); local fp = support.objective(method, net, data, X)
      p:set(r, c, v - h); local fm = support.objective(method, net, data, X)
      p:set(r, c, v); local f0 = support.objective(method, net, data, X)
      local right, left = (fp - f0) / h, (f0 - fm) / h
      if math.abs(right - left) <= 0.05 * (math.abs(right) + math.abs(left)) + 1e-4 then
        local fd = (fp - fm) / (2 * h)
        local g = grads[i]:get(r, c)
        worst = math.max(worst, math.abs(fd - g) / math.max(1e-2, math.abs(fd) + math.abs(g)))
        checked = checked + 1
      end
    end
  end
  return worst, checked
end

-- A fresh directory for a spec file's scratch files, removed when the file's tests end:
-- pass busted's teardown (a spec file's own global, which modules do not see).
function support.tempdir(teardown)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. support.quote(dir)))
  teardown(function() os.execute("rm -rf " .. support.quote(dir)) end)
  return dir
end

-- Whether two networks hold the same parameters, bit for bit (as floats).
function support.same_params(a, b)
  for i, p in ipairs(a:parameters()) do
    if (p - b:parameters()[i]):abs():max() ~= 0 then return false end
  end
  return true
end

-- Trains make() with `method` on data with options o, once with the lifted trainers' C batch
-- step and once share by share (lifted.c_batch = false; on share_threads threads when given),
-- and asserts that both end with the same parameters, loss and energy in the last epoch.
function support.assert_paths_agree(method, make, data, o, share_threads)
  local blua, lifted = require "blua", require "blua.train.lifted"
  local runs = {}
  for k, c_batch in ipairs{true, false} do
    local net = make()
    lifted.c_batch = c_batch
    local threads = o.threads
    if not c_batch then o.threads = share_threads or threads end
    local ok, h = pcall(blua.train[method], net, data, o)
    o.threads = threads
    lifted.c_batch = true
    assert(ok, h)
    runs[k] = {net = net, h = h}
  end
  assert(support.same_params(runs[1].net, runs[2].net), method .. ": the parameters differ")
  local last = #runs[1].h
  assert(runs[2].h[last].loss == runs[1].h[last].loss, method .. ": the losses differ")
  assert(runs[2].h[last].energy == runs[1].h[last].energy, method .. ": the energies differ")
end

return support
