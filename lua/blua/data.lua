-- blua.data: the MNIST and Fashion-MNIST data sets, any IDX file, subsets, batches, one-hot.
--
-- A data set is a plain table {x = N×784 tensor in [0, 1], y = N×1 tensor of labels 1..10
-- (digit or class d is label d+1), n = N, classes = 10, name = "mnist/train"}.
--
-- Where data sets are looked for:
--   1. $BLUA_DATA, when set (a folder holding mnist/ and fashion/): then only there;
--   otherwise
--   2. in a source checkout, <repo>/data, found from this file's own location
--      (lua/blua/data.lua → ../../data), so it works from any working directory;
--   3. in an installed blua (this file at <prefix>/share/lua/5.4/blua/data.lua),
--      <prefix>/share/blua/data, where the installed scripts/fetch-data writes.
-- scripts/fetch-data fills the same folder (or $BLUA_DATA).
local blua = require "blua"

local data = {}

-- blua._idx raising at the caller's level, without this file's position in the message.
local function read_idx(level, path, scale, shift, max_elements)
  local ok, t, info = pcall(blua._idx, path, scale, shift, max_elements)
  if not ok then error((tostring(t):gsub("^[^\n]-:%d+: ", "")), level + 1) end
  return t, info
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- "a/b/../c" → "a/c", so messages show plain folder names.
local function tidy(path)
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  return (path:sub(1, 1) == "/" and "/" or "") .. table.concat(parts, "/")
end

-- The data folder and the fetch-data script of this copy of blua: installed or a checkout.
local function home()
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) ~= "@" then return nil end
  local here = dirname(src:sub(2))                          -- .../lua/blua
  if here:find("/share/lua/5%.4/blua$") then               -- installed
    local share = tidy(here .. "/../../..")
    return share .. "/blua/data", share .. "/blua/scripts/fetch-data"
  end
  local repo = tidy(here .. "/../..")
  return repo .. "/data", repo .. "/scripts/fetch-data"
end

-- Candidate data roots: $BLUA_DATA alone when set, else this copy's data folder.
local function roots()
  local env = os.getenv("BLUA_DATA")
  if env and env ~= "" then return {env} end
  local dir = home()
  return {dir}
end

data.roots = roots

local sets = {
  mnist = {folder = "mnist", title = "MNIST"},
  fashion = {folder = "fashion", title = "Fashion-MNIST"},
}
local files = {
  train = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000},
  test = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000},
}

-- The path of name (raw or .gz) under one of the roots, or nil and the folders tried.
local function find(folder, name)
  local tried = {}
  for _, root in ipairs(roots()) do
    local dir = root .. "/" .. folder
    for _, candidate in ipairs({dir .. "/" .. name, dir .. "/" .. name .. ".gz"}) do
      if exists(candidate) then return candidate end
    end
    tried[#tried + 1] = dir
  end
  return nil, tried
end

-- Loaded sets, shared while someone holds them: repeated calls cost nothing, and the memory
-- goes back once no script refers to a set any more.
local cache = setmetatable({}, {__mode = "v"})

local function load_set(which, split, fname)
  if split ~= "train" and split ~= "test" then
    error(("bad split in '%s': %s (use \"train\" or \"test\")"):format(fname, tostring(split)), 3)
  end
  local key = which .. "/" .. split
  local hit = cache[key]
  if hit then return hit end
  local set, names = sets[which], files[split]
  local ipath, tried = find(set.folder, names[1])
  local lpath = ipath and find(set.folder, names[2])
  if not ipath or not lpath then
    local _, fetch = home()
    error(("data set not found in '%s': the %s %s files are missing (looked in %s). Download and " ..
      "verify them with %s (BLUA_DATA=DIR %s fills DIR instead), or set BLUA_DATA to a folder " ..
      "holding mnist/ and fashion/"):format(fname, set.title, split, table.concat(tried or roots(), ", "),
      fetch or "scripts/fetch-data", fetch or "scripts/fetch-data"), 3)
  end
  -- Pixels 0..255 become [0, 1]; labels 0..9 become 1..10. Both done while converting.
  local x, xi = read_idx(3, ipath, 1 / 255)
  local y, yi = read_idx(3, lpath, 1, 1)
  local n = xi.dims[1]
  if xi.type ~= "ubyte" or xi.dims[2] ~= 28 or xi.dims[3] ~= 28 or #xi.dims ~= 3 then
    error(("bad data set in '%s': %s is not N×28×28 unsigned bytes"):format(fname, ipath), 3)
  end
  if yi.type ~= "ubyte" or #yi.dims ~= 1 or yi.dims[1] ~= n then
    error(("bad data set in '%s': %s does not hold %d byte labels"):format(fname, lpath, n), 3)
  end
  if y:min() < 1 or y:max() > 10 then
    error(("bad data set in '%s': %s has labels outside 0..9"):format(fname, lpath), 3)
  end
  local d = {x = x, y = y, n = n, classes = 10, name = key}
  cache[key] = d
  return d
end

--- blua.data.mnist(split): split "train" (60000 samples) or "test" (10000).
function data.mnist(split)
  local d = load_set("mnist", split, "blua.data.mnist")
  return d
end

--- blua.data.fashion(split): Fashion-MNIST, same shapes and labels as MNIST.
function data.fashion(split)
  local d = load_set("fashion", split, "blua.data.fashion")
  return d
end

--- blua.data.idx(path [, {max_elements = n}]): any IDX file, raw or .gz, as a tensor of its
--- values (rows = first dimension, columns = the product of the others). A second result
--- describes the file: {type = "ubyte"|"sbyte"|"short"|"int"|"float"|"double", dims = {...},
--- compressed = bool}. max_elements refuses, before reading the data, a file whose header
--- declares more elements (a guard against decompression bombs from untrusted files).
function data.idx(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'blua.data.idx' (string expected, got %s)"):format(type(path)), 2)
  end
  local max
  if opts ~= nil then
    if type(opts) ~= "table" then
      error(("bad argument #2 to 'blua.data.idx' (table of options expected, got %s)"):format(type(opts)), 2)
    end
    for k in pairs(opts) do
      if k ~= "max_elements" then
        error(("blua.data.idx: unknown option '%s' (accepted: max_elements)"):format(tostring(k)), 2)
      end
    end
    max = opts.max_elements
    if max ~= nil and math.type(max) ~= "integer" and not (type(max) == "number" and max == math.floor(max)) then
      error(("blua.data.idx: max_elements must be a positive integer, got %s"):format(tostring(max)), 2)
    end
  end
  local t, info = read_idx(2, path, nil, nil, max) -- not a tail call: error levels count this frame
  return t, info
end

local function check_set(d, fname)
  if type(d) ~= "table" or not blua.isTensor(d.x) or not blua.isTensor(d.y) then
    error(("bad argument #1 to '%s' (data set {x = tensor, y = tensor, n = N} expected)"):format(fname), 3)
  end
  local n = d.n or d.x:size(1)
  if d.x:size(1) ~= n or d.y:size(1) ~= n then
    error(("size mismatch in '%s': x has %d rows, y %d, n = %d"):format(fname, d.x:size(1), d.y:size(1), n), 3)
  end
  return n
end

local function copy_fields(d, sub)
  for k, v in pairs(d) do
    if sub[k] == nil and k ~= "x" and k ~= "y" and k ~= "n" and k ~= "name" then sub[k] = v end
  end
  return sub
end

--- blua.data.subset(d, first, count): rows first .. first+count-1 (1-based) as views that
--- share storage with d.
function data.subset(d, first, count)
  local n = check_set(d, "blua.data.subset")
  if math.type(first) ~= "integer" or math.type(count) ~= "integer" then
    error("bad argument to 'blua.data.subset' (integer first and count expected)", 2)
  end
  if first < 1 or count < 1 or first > n or count > n - first + 1 then -- no sum that can wrap
    local last = count <= math.maxinteger - first and first + count - 1 or math.maxinteger
    error(("out of range in 'blua.data.subset': rows %d..%d of a set of %d"):format(first, last, n), 2)
  end
  return copy_fields(d, {
    x = d.x:narrow(1, first, count),
    y = d.y:narrow(1, first, count),
    n = count,
    name = ("%s[%d..%d]"):format(d.name or "data", first, first + count - 1),
  })
end

--- blua.data.onehot(y, classes): N×classes tensor with a 1 in column y[i] of row i.
function data.onehot(y, classes)
  if not blua.isTensor(y) then
    error("bad argument #1 to 'blua.data.onehot' (tensor of labels expected)", 2)
  end
  local ok, t = pcall(blua._onehot, y, classes or 10)
  if ok then return t end
  local msg = tostring(t):gsub("^[^\n]-:%d+: ", "")
  if msg:find("bad label", 1, true) and y:nElement() > 0 and y:min() == 0 then
    -- the usual cause: 0-based labels from another tool
    msg = msg .. " (labels are 1-based: class 1 is the first; add 1 to 0-based labels, y:add(1))"
  end
  error(msg, 2)
end

local batch_options = {shuffle = true, seed = true, copy = true, drop_last = true}

--- blua.data.batches(d, batch_size [, opts]) → iterator of (xb, yb, indices, k) where indices
--- is a table of the batch's 1-based row numbers in d and k the batch number.
--- opts.shuffle (default true): a new random order of rows on every call; the order comes from
---   opts.seed when given (same seed, same order), else from the global generator
---   (blua.manualSeed). Shuffled batches are copies gathered by row.
--- opts.copy (default false): unshuffled batches are views of d unless copy is true.
--- opts.drop_last (default false): skip a final batch smaller than batch_size.
function data.batches(d, batch_size, opts)
  local n = check_set(d, "blua.data.batches")
  if math.type(batch_size) ~= "integer" or batch_size < 1 then
    error(("bad argument #2 to 'blua.data.batches' (positive integer batch size expected, got %s)")
      :format(tostring(batch_size)), 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not batch_options[k] then
      error(("bad option in 'blua.data.batches': unknown option '%s' (known: shuffle, seed, copy, drop_last)")
        :format(tostring(k)), 2)
    end
  end
  local shuffle = opts.shuffle ~= false
  local order
  if shuffle then
    if opts.seed ~= nil and math.type(opts.seed) ~= "integer" then
      error("bad option in 'blua.data.batches': seed must be an integer", 2)
    end
    order = blua._permutation(n, opts.seed)
  end
  local last = opts.drop_last and n - n % batch_size or n
  local first, k = 1, 0
  return function()
    if first > last then return nil end
    local count = math.min(batch_size, last - first + 1)
    local idx = {}
    if order then
      table.move(order, first, first + count - 1, 1, idx)
    else
      for i = 1, count do idx[i] = first + i - 1 end
    end
    local xb, yb
    if order then
      xb, yb = d.x:indexRows(idx), d.y:indexRows(idx)
    else
      xb, yb = d.x:narrow(1, first, count), d.y:narrow(1, first, count)
      if opts.copy then xb, yb = xb:clone(), yb:clone() end
    end
    first = first + count
    k = k + 1
    return xb, yb, idx, k
  end
end

-- ---------------------------------------------------------------------------------------
-- denoising: centring and corrupted copies

--- blua.data.centre(d [, mean]) → a copy of d whose x has the column mean subtracted, with the
--- field mean (1 x d) that was used. Give the training set's mean to centre a test set the same
--- way. y and the other fields are kept (shared, not copied). blua.data.center is the same.
function data.centre(d, mean)
  local n = check_set(d, "blua.data.centre")
  local cols = d.x:dim() == 2 and d.x:size(2) or 1
  if mean == nil then
    mean = d.x:sumRows():mul(1 / n)
  elseif not blua.isTensor(mean) or mean:nElement() ~= cols then
    error(("size mismatch in 'blua.data.centre': mean must be a 1 x %d tensor"):format(cols), 2)
  end
  mean = mean:contiguous():view(1, cols)
  return copy_fields(d, {x = d.x:clone():addRow(mean, -1), y = d.y, n = n, mean = mean,
    name = (d.name or "data") .. " (centred)"})
end
data.center = data.centre

--- blua.data.uncentre(t, mean) → t + mean on every row (a new tensor): back to the image scale.
--- mean may be a data set that carries one (from blua.data.centre). blua.data.uncenter is the same.
function data.uncentre(t, mean)
  if type(mean) == "table" then mean = mean.mean end
  if not blua.isTensor(t) or not blua.isTensor(mean) then
    error("bad argument to 'blua.data.uncentre' (a tensor and the mean tensor expected)", 2)
  end
  return t:clone():addRow(mean:contiguous():view(1, mean:nElement()))
end
data.uncenter = data.uncentre

--- blua.data.noisy(d, sigma [, {seed = n}]) → a denoising set {x = d.x + σ·N(0, 1), y = d.x (the
--- clean rows, as targets), labels = d.y, n, mean = d.mean}. With a seed the noise reseeds the
--- runtime's generator (blua.manualSeed(seed)), so the same seed gives the same noise.
function data.noisy(d, sigma, opts)
  local n = check_set(d, "blua.data.noisy")
  if type(sigma) ~= "number" or not (sigma >= 0 and sigma < math.huge) then
    error(("bad argument #2 to 'blua.data.noisy' (non-negative noise level expected, got %s)"):format(tostring(sigma)), 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "seed" then error(("bad option in 'blua.data.noisy': unknown option '%s' (known: seed)"):format(tostring(k)), 2) end
  end
  if opts.seed ~= nil then
    if math.type(opts.seed) ~= "integer" then error("bad option in 'blua.data.noisy': seed must be an integer", 2) end
    blua.manualSeed(opts.seed)
  end
  local r, c = d.x:size()
  local x = blua.randn(r, c):mul(sigma):add(d.x)
  return {x = x, y = d.x:clone(), labels = d.y, n = n, mean = d.mean, sigma = sigma,
    name = ("%s + noise %g"):format(d.name or "data", sigma)}
end

-- ---------------------------------------------------------------------------------------
-- Your own data: CSV files

local csv_options = {label = true, header = true, sep = true, zero_based = true}

-- The fields of one CSV line (no quoting: numeric files only; spaces around fields allowed).
local function split_line(line, sep)
  local fields = {}
  for f in (line .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do fields[#fields + 1] = f:match("^%s*(.-)%s*$") end
  return fields
end

--- blua.data.csv(path [, opts]) → a data set {x = N x d, y = N x 1 labels, n, classes, name}
--- from a file of numbers. opts: label (the label column: a 1-based number, or a header name;
--- without it the set has x only), header (true: the first line names the columns; default:
--- true when the first line is not numeric), sep (default ","), zero_based (true: labels
--- 0..C-1 in the file become 1..C). Labels must be the integers 1..C otherwise.
function data.csv(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'blua.data.csv' (path expected, got %s)"):format(type(path)), 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not csv_options[k] then
      error(("bad option in 'blua.data.csv': unknown option '%s' (known: header, label, sep, zero_based)"):format(tostring(k)), 2)
    end
  end
  local sep = opts.sep or ","
  local f, err = io.open(path, "r")
  if not f then error(("cannot open in 'blua.data.csv': %s"):format(err), 2) end
  local lines = {}
  for line in f:lines() do
    line = line:gsub("\r$", "")
    if line:match("%S") then lines[#lines + 1] = line end
  end
  f:close()
  if #lines == 0 then error(("bad file in 'blua.data.csv': %s has no data"):format(path), 2) end
  local first = split_line(lines[1], sep)
  local header = opts.header
  if header == nil then header = tonumber(first[1]) == nil end
  local names = header and first or nil
  local label = opts.label
  if type(label) == "string" then
    if not names then error(("bad option in 'blua.data.csv': label '%s' names a column, but the file has no header"):format(label), 2) end
    for i, n in ipairs(names) do if n == label then label = i break end end
    if type(label) == "string" then
      error(("bad option in 'blua.data.csv': no column '%s' in %s (columns: %s)"):format(label, path, table.concat(names, ", ")), 2)
    end
  elseif label ~= nil and (math.type(label) ~= "integer" or label < 1 or label > #first) then
    error(("bad option in 'blua.data.csv': label must be a column 1..%d or a header name, got %s"):format(#first, tostring(label)), 2)
  end
  local xs, ys = {}, {}
  for i = header and 2 or 1, #lines do
    local fields = split_line(lines[i], sep)
    if #fields ~= #first then
      error(("bad file in 'blua.data.csv': %s line %d has %d fields, the first line %d"):format(path, i, #fields, #first), 2)
    end
    local row = {}
    for j, text in ipairs(fields) do
      local v = tonumber(text)
      if v == nil then
        error(("bad file in 'blua.data.csv': %s line %d field %d is not a number: '%s'"):format(path, i, j, text), 2)
      end
      if j == label then ys[#ys + 1] = {v} else row[#row + 1] = v end
    end
    xs[#xs + 1] = row
  end
  if #xs == 0 then error(("bad file in 'blua.data.csv': %s has a header but no rows"):format(path), 2) end
  local set = {x = blua.tensor(xs), n = #xs, name = path}
  if label then
    local y = blua.tensor(ys)
    if opts.zero_based then y:add(1) end
    local lo, hi = y:min(), y:max()
    if lo < 1 or y:clone():floor():add(-1, y):abs():max() ~= 0 then
      error(("bad labels in 'blua.data.csv': %s column %d holds %s..%s; labels are the integers 1..C%s"):format(
        path, label, tostring(lo), tostring(hi), lo == 0 and " (0-based labels: pass zero_based = true)" or ""), 2)
    end
    set.y, set.classes = y, math.tointeger(hi)
  end
  return set
end

-- An argument past the last is an error, not dropped (a second options table, a seed meant for
-- another call).
blua._refuseExtra(data, "blua.data.", {roots = "", mnist = "split", fashion = "split", idx = "path [, opts]",
  subset = "d, first, count", onehot = "y [, classes]", batches = "d, size [, opts]", centre = "d [, mean]",
  center = "d [, mean]", uncentre = "t, mean", uncenter = "t, mean", noisy = "d, sigma [, opts]",
  csv = "path [, opts]"})

return data
