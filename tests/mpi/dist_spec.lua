-- blua.dist across two ranks (ctest runs this file under mpirun -np 2). Every rank runs every
-- test, so collectives pair up; assertions compare against values each rank can compute.
local blua = require "blua"
local dist = blua.dist

local rank, size = dist.rank(), dist.size()

describe("blua.dist under mpirun", function()
  it("numbers the ranks from 0", function()
    assert.equal(2, size)
    assert.is_true(rank == 0 or rank == 1)
    assert.is_true(dist.active())
    assert.truthy(dist.describe():find(string.format("rank %d of 2", rank), 1, true))
    local ranks = blua.zeros(1, 2)
    ranks:set(1, rank + 1, 1)
    dist.allreduce({ranks})
    assert.equal(1, ranks:get(1, 1))
    assert.equal(1, ranks:get(1, 2))
  end)

  it("sums a list of tensors of any shapes in one allreduce", function()
    blua.manualSeed(7)                       -- the same draws on both ranks
    local base = {blua.randn(3, 5), blua.randn(7), blua.randn(1, 1), blua.zeros(0, 4)}
    local mine = {}
    for i, t in ipairs(base) do mine[i] = t:clone():mul(rank + 1) end -- rank r holds (r+1) t
    dist.allreduce(mine)
    for i, t in ipairs(base) do
      local want = t:clone():mul(3)                                  -- 1 t + 2 t
      if t:nElement() > 0 then assert.is_true((mine[i] - want):norm() <= 1e-6 * (want:norm() + 1)) end
    end
    local m = blua.tensor{{rank, -rank}}
    dist.allreduce({m}, "max")
    assert.equal(1, m:get(1, 1))
    assert.equal(0, m:get(1, 2))
    dist.allreduce({m:fill(rank)}, "min")
    assert.equal(0, m:get(1, 1))
  end)

  it("gives every rank the same bits", function()
    blua.manualSeed(100 + rank)              -- different data on each rank
    local t = blua.randn(50, 50)
    dist.allreduce({t})
    local copy = t:clone()
    dist.broadcast({copy}, 0)
    assert.equal(0, (copy - t):norm())
  end)

  it("broadcasts from any root and refuses lists of different sizes", function()
    local a, b = blua.zeros(2, 2):fill(rank + 10), blua.zeros(3):fill(rank + 20)
    dist.broadcast({a, b}, 1)
    assert.equal(44, a:sum())
    assert.equal(63, b:sum())
    local odd = rank == 0 and blua.zeros(3) or blua.zeros(4)
    assert.has_error(function() dist.broadcast({odd}, 0) end,
      "size mismatch in 'dist.broadcast': the ranks' lists hold between 3 and 4 elements")
    assert.has_error(function() dist.broadcast({a}, 2) end, "bad argument #2 to 'dist.broadcast' (root 2 out of range 0..1)")
  end)

  it("reduce-scatters and all-gathers a list by segments", function()
    -- 3*5 + 7 + 1 + 0 + 11 = 34 elements: rank 0 owns 1..17, rank 1 18..34 (across tensors)
    assert.same({1, 17}, {dist.segment(34, 0)})
    assert.same({18, 17}, {dist.segment(34, 1)})
    assert.same({1, 2}, {dist.segment(3, 0)})
    assert.same({3, 1}, {dist.segment(3, 1)})
    assert.same({2, 0}, {dist.segment(1, 1)})
    blua.manualSeed(8)
    local parts = {}
    for r = 0, 1 do parts[r] = {blua.randn(3, 5), blua.randn(7), blua.randn(1, 1), blua.zeros(0, 4), blua.randn(11)} end
    local mine = {}
    for i, t in ipairs(parts[rank]) do mine[i] = t:clone() end
    dist.reduce_scatter(mine)
    local first, count = dist.segment(34)
    local at = 0
    for i, t in ipairs(mine) do
      local got, own, sum = t:view(-1), parts[rank][i]:view(-1), (parts[0][i] + parts[1][i]):view(-1)
      for j = 1, t:nElement() do
        local want = (at + j >= first and at + j < first + count) and sum or own
        assert.equal(want:get(j), got:get(j))
      end
      at = at + t:nElement()
    end
    -- the owners' segments to everyone: now every rank holds the whole sum, bit for bit
    dist.allgather(mine)
    for i, t in ipairs(mine) do
      if t:nElement() > 0 then assert.equal(0, (t - (parts[0][i] + parts[1][i])):abs():max()) end
    end
    dist.reduce_scatter({})
    dist.allgather({blua.zeros(0)})
    assert.has_error(function() dist.allgather({mine[1]:t()}) end,
      "non-contiguous tensor in 'dist.allgather': item 1; pass t:contiguous() or a clone")
  end)

  it("sends and receives tensors, checking their sizes", function()
    local other = 1 - rank
    local out = blua.zeros(2, 3):fill(rank + 1)
    local got = blua.zeros(3, 2)
    if rank == 0 then
      dist.send(out, other, 5)
      dist.recv(got, other, 5)
    else
      dist.recv(got, other, 5)
      dist.send(out, other, 5)
    end
    assert.equal(6 * (other + 1), got:sum())
    if rank == 0 then
      dist.send(blua.zeros(4), 1)
    else
      assert.has_error(function() dist.recv(blua.zeros(5), 0) end,
        "size mismatch in 'dist.recv': rank 0 sent 4 elements, the tensor is 5")
    end
    assert.has_error(function() dist.send(out, rank) end,
      string.format("bad argument #2 to 'dist.send' (rank %d cannot send to itself)", rank))
    assert.has_error(function() dist.send(out, 1, 40000) end, "bad argument #3 to 'dist.send' (tag 40000 out of range 0..32767)")
    assert.has_error(function() dist.allreduce({out:t()}) end,
      "non-contiguous tensor in 'dist.allreduce': item 1; pass t:contiguous() or a clone")
    dist.barrier()
  end)
end)
