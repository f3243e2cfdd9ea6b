-- Torch7's functional forms (torch.exp(t), torch.cmul(a, b), torch.sum(t, 2), ...) as blua.*
-- module functions, for code ported from Torch7. Each is a thin wrapper over the tensor method
-- of the same name, takes Torch7's argument order (the tensor first, then the method's own
-- arguments), never changes its arguments and refuses arguments past its last, naming
-- blua.<name>. Three ways to get a new result:
--   copy:  the method works in place, so it runs on a clone (blua.exp(t) is t:clone():exp());
--   call:  the method already returns new tensors or numbers (blua.sum(t, 2) is t:sum(2));
--   scaled: Torch7's torch.addmm([beta,] M, [alpha,] a, b) and the like: the numbers stand
--          around the summand M, which is cloned: M:clone():addmm(beta, alpha, a, b);
--   view:  the method returns a view, which is copied, so the result never shares memory
--          with the argument (blua.t(m) is m:t():clone(); Torch7's torch.t shares it).
-- A name blua already uses for something else (blua.dist, the distributed-runs module) is not
-- taken: install leaves it alone and returns the names it skipped.

local functional = {}

-- {name, way, most arguments, usage}; usage names every argument, the tensor first.
functional.list = {
  -- elementwise, in place on a clone
  {"add", "copy", 3, "t, u | t, a | t, a, u"},
  {"sub", "copy", 2, "t, u | t, a"},
  {"mul", "copy", 2, "t, a"},
  {"div", "copy", 2, "t, a"},
  {"cmul", "copy", 2, "t, u"},
  {"cdiv", "copy", 2, "t, u"},
  {"cmax", "copy", 2, "t, u | t, a"},
  {"cmin", "copy", 2, "t, u | t, a"},
  {"pow", "copy", 2, "t, a"},
  {"clamp", "copy", 3, "t [, lo [, hi]]"},
  {"abs", "copy", 1, "t"},
  {"exp", "copy", 1, "t"},
  {"log", "copy", 1, "t"},
  {"log1p", "copy", 1, "t"},
  {"sqrt", "copy", 1, "t"},
  {"square", "copy", 1, "t"},
  {"neg", "copy", 1, "t"},
  {"sign", "copy", 1, "t"},
  {"floor", "copy", 1, "t"},
  {"ceil", "copy", 1, "t"},
  {"round", "copy", 1, "t"},
  {"tanh", "copy", 1, "t"},
  {"sigmoid", "copy", 1, "t"},
  {"sin", "copy", 1, "t"},
  {"cos", "copy", 1, "t"},
  {"tan", "copy", 1, "t"},
  {"asin", "copy", 1, "t"},
  {"acos", "copy", 1, "t"},
  {"atan", "copy", 1, "t"},
  {"sinh", "copy", 1, "t"},
  {"cosh", "copy", 1, "t"},
  {"frac", "copy", 1, "t"},
  {"cinv", "copy", 1, "t"},
  {"reciprocal", "copy", 1, "t"},
  {"fmod", "copy", 2, "t, a"},
  {"remainder", "copy", 2, "t, a"},
  {"atan2", "copy", 2, "t, u"},
  {"lerp", "copy", 3, "t, u, w"},
  {"csub", "copy", 2, "t, u | t, a"},
  {"renorm", "copy", 4, "t, p, dim, maxnorm"},
  {"gt", "copy", 2, "t, a"},
  {"ge", "copy", 2, "t, a"},
  {"lt", "copy", 2, "t, a"},
  {"le", "copy", 2, "t, a"},
  {"eq", "copy", 2, "t, a"},
  {"ne", "copy", 2, "t, a"},
  -- methods that already make new results
  {"mm", "call", 2, "a, b"},
  {"dot", "call", 2, "a, b"},
  {"clone", "call", 1, "t"},
  {"sum", "call", 2, "t [, dim]"},
  {"mean", "call", 2, "t [, dim]"},
  {"prod", "call", 2, "t [, dim]"},
  {"max", "call", 2, "t [, dim]"},
  {"min", "call", 2, "t [, dim]"},
  {"var", "call", 3, "t [, dim [, biased]]"},
  {"std", "call", 3, "t [, dim [, biased]]"},
  {"norm", "call", 1, "t"},
  {"cumsum", "call", 2, "t, dim"},
  {"cumprod", "call", 2, "t, dim"},
  {"sort", "call", 3, "t [, d [, descending]]"},
  {"topk", "call", 4, "t, k [, d [, largest]]"},
  {"median", "call", 2, "t [, dim]"},
  {"mode", "call", 2, "t [, dim]"},
  {"kthvalue", "call", 3, "t, k [, dim]"},
  {"index", "call", 3, "t, d, indices"},
  {"gather", "call", 3, "t, d, index"},
  {"maskedSelect", "call", 2, "t, mask"},
  {"tril", "call", 2, "t [, k]"},
  {"triu", "call", 2, "t [, k]"},
  {"trace", "call", 1, "t"},
  {"repeatTensor", "call", 9, "t, n1, n2, ... | t, {n1, n2, ...}"},
  {"equal", "call", 2, "a, b"},
  -- sums with products, on a clone of the summand; Torch7's numbers around it
  {"addmm", "scaled", 5, "[beta,] M, [alpha,] a, b"},
  {"addmv", "scaled", 5, "[beta,] y, [alpha,] m, x"},
  {"addr", "scaled", 5, "[beta,] M, [alpha,] x, y"},
  {"baddbmm", "scaled", 5, "[beta,] M, [alpha,] a, b"},
  {"addbmm", "scaled", 5, "[beta,] M, [alpha,] a, b"},
  {"addcmul", "copy", 4, "t, [v,] a, b"},
  {"addcdiv", "copy", 4, "t, [v,] a, b"},
  -- views, copied
  {"t", "view", 1, "t"},
  {"transpose", "view", 3, "t, d1, d2"},
  {"squeeze", "view", 2, "t [, d]"},
  {"reshape", "view", 9, "t, n1, n2, ... | t, {n1, n2, ...}"},
}

-- Torch7 names blua keeps for another meaning (not wrapped here).
functional.left_alone = {dist = "blua.dist is the distributed-runs module; use a:dist(b [, p])"}

-- A function taking the results of a protected call of the method `name`: it returns them, or
-- raises the error again at the line that called blua.<name> (reached by tail calls, so level
-- 2), without the wrapper's position and naming blua.<name> where the message names the method.
local function finisher(name, who)
  local quoted = "'" .. name .. "'"
  return function(ok, ...)
    if ok then return ... end
    local msg = ...
    if type(msg) == "string" then
      msg = msg:gsub("^[^\n]-%.lua:%d+: ", "")
      local at = msg:find(quoted, 1, true)
      if at then msg = msg:sub(1, at) .. who .. msg:sub(at + #quoted - 1) end
    end
    error(msg, 2)
  end
end

local function make(blua, tensor_mt, name, way, most, usage)
  local who = "blua." .. name
  local finish = finisher(name, who)
  local function first(t)
    if not blua.isTensor(t) and getmetatable(t) ~= tensor_mt then -- (a closed tensor: the method says so)
      error(string.format("bad argument #1 to '%s' (blua.Tensor expected, got %s)", who, type(t)), 3)
    end
    return t
  end
  local function method(t) return t[name] end
  if way == "copy" then
    return function(t, ...)
      blua._noExtra(who, usage, nil, select(most, ...))
      local r = first(t):clone()
      return finish(pcall(method(r), r, ...))
    end
  elseif way == "call" then
    return function(t, ...)
      blua._noExtra(who, usage, nil, select(most, ...))
      return finish(pcall(method(first(t)), t, ...))
    end
  elseif way == "scaled" then
    local function is_tensor(v) return blua.isTensor(v) or (v ~= nil and getmetatable(v) == tensor_mt) end
    return function(...)
      blua._noExtra(who, usage, nil, select(most + 1, ...))
      local args = table.pack(...)
      local i, beta, alpha = 1, 1, 1
      if type(args[1]) == "number" then beta, i = args[1], 2 end
      local m = args[i]
      if type(args[i + 1]) == "number" then alpha, i = args[i + 1], i + 1 end
      local a, b = args[i + 1], args[i + 2]
      if i + 2 ~= args.n or not is_tensor(m) or not is_tensor(a) or not is_tensor(b) then
        local got = {}
        for k = 1, args.n do got[k] = is_tensor(args[k]) and "tensor" or type(args[k]) end
        local extra = args.n == 4 and is_tensor(args[1]) and is_tensor(args[4]) and is_tensor(args[2]) and
          "; Torch7's form with a result tensor first is not taken" or ""
        error(string.format("%s: (%s) expected, got (%s)%s", who, usage, table.concat(got, ", "), extra), 2)
      end
      local r = m:clone()
      return finish(pcall(r[name], r, beta, alpha, a, b))
    end
  elseif name == "reshape" then -- a view of a private clone is a tensor of its own
    return function(t, ...)
      blua._noExtra(who, usage, nil, select(most, ...))
      local r = first(t):clone()
      return finish(pcall(r.reshape, r, ...))
    end
  end
  local function copied(ok, v, ...)
    if ok then return true, v:clone(), ... end
    return ok, v, ...
  end
  return function(t, ...)
    blua._noExtra(who, usage, nil, select(most, ...))
    return finish(copied(pcall(method(first(t)), t, ...)))
  end
end

-- Adds the functions to blua (the module table) where the name is free; `taken(name)` says
-- whether blua holds or loads something under it. Returns the names skipped.
function functional.install(blua, taken)
  local skipped, tensor_mt = {}, getmetatable(blua.zeros(1))
  for _, f in ipairs(functional.list) do
    local name, way, most, usage = f[1], f[2], f[3], f[4]
    if taken(name) then
      skipped[#skipped + 1] = name
    else
      blua[name] = make(blua, tensor_mt, name, way, most, usage)
    end
  end
  return skipped
end

return functional
