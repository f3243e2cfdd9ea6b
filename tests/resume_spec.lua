-- Resuming through the API: a run stopped after some epochs, saved with blua.save and loaded
-- again, continues to exactly the weights of the uninterrupted run (fixed thread count), for
-- every trainer and optimiser. What crosses batches must all be in the checkpoint: the
-- network, the optimiser state (moments, momentum buffers, step count) and the warm starts of
-- the X-step power iterations; the batch order and the schedule follow from seed and epoch.
local blua = require "blua"

local function data(n, seed)
  blua.manualSeed(seed)
  local x = blua.randn(n, 5)
  local y = blua.zeros(n, 1)
  for i = 1, n do y:set(i, 1, (x:get(i, 1) * x:get(i, 2) > 0) and 2 or 1) end
  return {x = x, y = y, n = n}
end

local function fresh()
  blua.manualSeed(11)
  return blua.nn.mlp{5, 12, 12, 2}
end

local function bits_equal(a, b)
  local pa, pb = a:parameters(), b:parameters()
  for i = 1, #pa do
    if (pa[i] - pb[i]):abs():max() ~= 0 then return false end
  end
  return true
end

local d = data(90, 2) -- 90 rows in batches of 16: the last batch of each epoch is short

-- opts of a run; the resumed half and the straight run share them
local function run_opts(extra)
  local o = {epochs = 3, batch = 16, verbose = false, threads = 2, test = d}
  for k, v in pairs(extra) do o[k] = v end
  return o
end

local cases = {
  {"bregman", {}}, {"lifted", {}}, {"backprop", {}},
  {"bregman", {optimizer = "nesterov", lr = 1e-2}}, {"lifted", {optimizer = "sgd", lr = 1e-2}},
  {"bregman", {optimizer = "proxgrad"}}, {"bregman", {inner = 2, tau = 0.5, schedule = "exponential"}},
  {"backprop", {optimizer = "sgd", lr = 1e-2, weight_decay = 1e-3}},
}

describe("a resumed run", function()
  for _, c in ipairs(cases) do
    local method, extra = c[1], c[2]
    local name = method
    for k, v in pairs(extra) do name = name .. " " .. k .. "=" .. tostring(v) end
    it("equals the uninterrupted one bit for bit: " .. name, function()
      local straight = fresh()
      local hs = blua.train[method](straight, d, run_opts(extra))
      -- stopped after epoch 1 (on_epoch returning false), saved, loaded, resumed for 2 and 3
      local net, state = fresh(), {}
      local o = run_opts(extra)
      o.optim_state = state
      o.on_epoch = function(e) return e < 1 end
      blua.train[method](net, d, o)
      local path = os.tmpname()
      blua.save(path, {net = net, optim_state = state})
      local ck = blua.load(path)
      os.remove(path)
      assert.is_false(bits_equal(ck.net, straight))
      o = run_opts(extra)
      o.optim_state, o.start_epoch = ck.optim_state, 2
      local hr = blua.train[method](ck.net, d, o)
      assert.is_true(bits_equal(ck.net, straight), name)
      assert.equal(hs[3].loss, hr[2].loss)
      assert.equal(hs[3].test_acc, hr[2].test_acc)
    end)
  end

  it("from a checkpoint without power-iteration vectors (older files) still resumes", function()
    local net, state = fresh(), {}
    blua.train.bregman(net, d, run_opts{optim_state = state, on_epoch = function(e) return e < 1 end})
    state.power = nil -- as written before the warm starts were kept
    local o = run_opts{optim_state = state, start_epoch = 2}
    local h = blua.train.bregman(net, d, o)
    assert.equal(2, #h)
    assert.is_table(state.power) -- kept from now on
  end)

  it("refuses a malformed optimiser state, naming the entry, before any step", function()
    local net, state = fresh(), {}
    blua.train.bregman(net, d, run_opts{optim_state = state, on_epoch = function(e) return e < 1 end})
    local before = net:clone()
    local function try(method, edit, want)
      local copy = {power = {}}
      for k, s in pairs(state) do
        if type(k) == "number" then copy[k] = {t = s.t, m = s.m and {table.unpack(s.m)}, v = s.v and {table.unpack(s.v)}} end
      end
      for k, v in pairs(state.power) do copy.power[k] = v end
      edit(copy)
      local ok, err = pcall(function()
        local h = blua.train[method](net, d, run_opts{optim_state = copy, start_epoch = 2})
        return h
      end)
      assert.is_false(ok)
      assert.is_truthy(err:find(want, 1, true), err)
      assert.is_truthy(err:find("resume_spec.lua", 1, true), err) -- at the caller's line
      assert.is_true(bits_equal(net, before))
    end
    try("bregman", function(c) c[1] = 5 end, "blua.train.bregman: optim_state[1] must be a table (block 1's state), got number")
    try("bregman", function(c) c[2].t = -1 end, "optim_state[2].t must be a step count (an integer in 0..2^62 - 1), got -1")
    try("bregman", function(c) c[2].t = 0.5 end, "optim_state[2].t must be a step count (an integer in 0..2^62 - 1), got 0.5")
    try("bregman", function(c) c[2].t = math.maxinteger end,
      "optim_state[2].t must be a step count (an integer in 0..2^62 - 1), got 9223372036854775807")
    try("backprop", function(c) c[1].t = 0 / 0 end, "optim_state[1].t must be a step count")
    try("backprop", function(c) c[1].m = "x" end, "blua.train.backprop: optim_state[1].m must be a list of tensors, got string")
    try("bregman", function(c) c[1].m[1] = blua.zeros(3, 3) end,
      "optim_state[1].m[1] must be a tensor of its parameter's shape 5x12, got 3x3")
    try("lifted", function(c) c[3].v[2] = nil end, "optim_state[3].v[2] must be a tensor of its parameter's shape 1x2, got nil")
    try("bregman", function(c)
      local t = blua.zeros(1, 12)
      getmetatable(t).__close(t)
      c[1].v[2] = t
    end, "optim_state[1].v[2] must be a tensor of its parameter's shape 1x12, got a closed tensor")
    try("bregman", function(c) c.power = 1 end, "blua.train.bregman: optim_state.power must be a table, got number")
    try("bregman", function(c) c.power[7] = blua.zeros(1, 12) end,
      "optim_state.power has the key 7; it keeps one vector per hidden layer (1..2)")
    try("bregman", function(c) c.power[1] = blua.zeros(1, 5) end, "optim_state.power[1] must be a live 1x12 tensor, got 1x5")
  end)
end)
