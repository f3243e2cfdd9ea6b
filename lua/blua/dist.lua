-- Communication between the processes of a distributed run (MPI_COMM_WORLD).
--
--   mpirun -np 2 blua script.lua       -- blua.dist.size() == 2, ranks 0 and 1
--   blua script.lua                    -- size() == 1: every call below is a no-op
--
-- Ranks are numbered from 0, as MPI, mpirun's messages and torch.distributed number them
-- (they are names of processes, not positions in a Lua list). Tensors travel as their float32
-- contents and must be contiguous. The MPI backend lives in the blua executable (runtime/
-- ldist.c); a stock lua5.4 with the blua module, or a build without MPI, gets the
-- single-process communicator, and asking it for more than one process is an error that says
-- so. docs/design.md, "Distributed training", has the design.
local blua = require "blua"

local dist = {}

local loader = package.preload["blua.mpi"]
local mpi = loader and loader("blua.mpi")
if mpi and not mpi.running() then mpi = nil end -- built with MPI, but not started by mpirun

-- Processes the launcher started, as its environment says (also without MPI in this build).
local function launched_size()
  return tonumber(os.getenv("OMPI_COMM_WORLD_SIZE") or os.getenv("PMI_SIZE") or "1") or 1
end

local function no_mpi_message()
  return "this build of blua has no MPI support (install libopenmpi-dev and rebuild: scripts/bootstrap, scripts/build)"
end

--- true when this build of blua can run over MPI (it may still run as a single process).
function dist.available() return loader ~= nil end

--- A line that says how this process communicates, for logs and `blua -v`.
function dist.describe()
  if mpi then return string.format("rank %d of %d (%s)", mpi.rank(), mpi.size(), mpi.library()) end
  if loader then return "single process (MPI available: start with mpirun -np N)" end
  return "single process (" .. no_mpi_message() .. ")"
end

-- A build without MPI started as several processes would run N independent copies that all
-- write the same files: refuse it on first use.
local function single(fname)
  local n = launched_size()
  if n > 1 and not loader then
    error(string.format("blua.dist.%s: started as one of %d processes, but %s", fname, n, no_mpi_message()), 3)
  end
end

local function check_list(fname, list)
  if type(list) ~= "table" then
    error(string.format("bad argument #1 to 'dist.%s' (a list of tensors expected, got %s)", fname, type(list)), 3)
  end
  for i = 1, #list do
    if not blua.isTensor(list[i]) then
      error(string.format("bad argument to 'dist.%s' (item %d is not a tensor)", fname, i), 3)
    end
    if not list[i]:isContiguous() then
      error(string.format("non-contiguous tensor in 'dist.%s': item %d; pass t:contiguous() or a clone", fname, i), 3)
    end
  end
end

local function check_rank(fname, r, what, argn)
  if math.type(r) ~= "integer" then
    error(string.format("bad argument #%d to 'dist.%s' (%s: integer expected, got %s)", argn, fname, what,
      math.type(r) or type(r)), 3)
  end
  if r < 0 or r >= dist.size() then
    error(string.format("bad argument #%d to 'dist.%s' (%s %d out of range 0..%d)", argn, fname, what, r, dist.size() - 1), 3)
  end
end

--- This process's rank, 0 .. size() - 1.
function dist.rank()
  if mpi then return mpi.rank() end
  single("rank")
  return 0
end

--- The number of processes of the job; 1 without mpirun.
function dist.size()
  if mpi then return mpi.size() end
  single("size")
  return 1
end

--- true when several processes take part (size() > 1).
function dist.active() return dist.size() > 1 end

--- Waits until every rank has arrived.
function dist.barrier()
  if mpi then return mpi.barrier() end
  single("barrier")
end

--- allreduce({t1, t2, ...}[, op]): in place, every tensor becomes the sum over the ranks
-- ("max" and "min" also work). The list travels as one buffer: one MPI call per list.
function dist.allreduce(list, op)
  check_list("allreduce", list)
  if op ~= nil and op ~= "sum" and op ~= "max" and op ~= "min" then
    error(string.format("bad argument #2 to 'dist.allreduce' (invalid option '%s': sum, max or min)", tostring(op)), 2)
  end
  if mpi then return mpi.allreduce(list, op) end
  single("allreduce")
  return list
end

--- broadcast({t1, ...}, root): every rank's tensors get the contents of root's (default 0).
function dist.broadcast(list, root)
  check_list("broadcast", list)
  root = root == nil and 0 or root
  check_rank("broadcast", root, "root", 2)
  if mpi then return mpi.broadcast(list, root) end
  return list
end

--- segment(total[, rank[, size]]): the part of a flat vector of `total` elements that `rank`
-- (default this one) of `size` owns in reduce_scatter and allgather: returns the first
-- element (1-based) and the count. Contiguous, in rank order, sizes differing by at most one
-- (the earlier ranks take the extra elements).
function dist.segment(total, rank, size)
  size = size or dist.size()
  rank = rank or dist.rank()
  local args = {total, rank, size}
  for i = 1, 3 do -- (not ipairs: it would stop at a missing total and check nothing)
    local v = args[i]
    if math.type(v) ~= "integer" then
      error(string.format("bad argument #%d to 'dist.segment' (integer expected, got %s)", i, math.type(v) or type(v)), 2)
    end
  end
  if total < 0 then error(string.format("bad argument #1 to 'dist.segment' (total %d is negative)", total), 2) end
  if size < 1 then error(string.format("bad argument #3 to 'dist.segment' (size %d: at least 1 expected)", size), 2) end
  if rank < 0 or rank >= size then
    error(string.format("bad argument #2 to 'dist.segment' (rank %d out of range 0..%d)", rank, size - 1), 2)
  end
  local base, extra = total // size, total % size
  return rank * base + math.min(rank, extra) + 1, base + (rank < extra and 1 or 0)
end

--- reduce_scatter({t1, t2, ...}): the list, read as one flat vector, is summed over the ranks
-- on this rank's segment only (dist.segment of the total element count), added in rank order
-- ((x0 + x1) + x2) + ... as one process adds the same parts; the rest keeps this rank's
-- values. Every rank must pass tensors of the same sizes. With allgather, the two halves of an
-- all-reduce, for a sharded optimiser step (train/stepper.lua).
function dist.reduce_scatter(list)
  check_list("reduce_scatter", list)
  if mpi then return mpi.reduce_scatter(list) end
  single("reduce_scatter")
  return list
end

--- allgather({t1, t2, ...}): every rank's segment of the list (read as one flat vector) gets
-- the contents of the rank that owns it.
function dist.allgather(list)
  check_list("allgather", list)
  if mpi then return mpi.allgather(list) end
  single("allgather")
  return list
end

--- send(t, dest[, tag]) and recv(t, src[, tag]): point to point; recv fills t in place and
-- needs the same number of elements as were sent.
function dist.send(t, dest, tag)
  if not blua.isTensor(t) then error("bad argument #1 to 'dist.send' (tensor expected)", 2) end
  check_rank("send", dest, "destination", 2)
  if mpi then return mpi.send(t, dest, tag) end
  error("dist.send: a single process has no other rank to send to", 2)
end

function dist.recv(t, src, tag)
  if not blua.isTensor(t) then error("bad argument #1 to 'dist.recv' (tensor expected)", 2) end
  check_rank("recv", src, "source", 2)
  if mpi then return mpi.recv(t, src, tag) end
  error("dist.recv: a single process has no other rank to receive from", 2)
end

--- Ends the whole job at once with a message naming this rank (MPI_Abort); on a single
-- process it raises the message as an error instead.
function dist.abort(msg)
  if mpi and mpi.size() > 1 then mpi.abort(tostring(msg)) end
  error(msg, 2)
end

--- Checks a request for distributed training ("data", "layer" or false) and returns the mode
-- to use, or false for a plain single-process run. `who` names the caller in messages.
function dist.mode(who, distributed)
  if distributed == nil or distributed == false then return false end
  if distributed ~= "data" and distributed ~= "layer" then
    error(string.format("%s: unknown distributed mode '%s' (accepted: data, layer)", who, tostring(distributed)), 3)
  end
  if not loader then error(string.format("%s: distributed = '%s' asked for, but %s", who, distributed, no_mpi_message()), 3) end
  return distributed
end

return dist
