-- Draws the "hand-made" digit pictures of tests/data/ (dark ink on a light page, off centre,
-- larger than MNIST's 28 x 28), as a user's drawing program would save them. Run from the
-- repository root: blua tests/data/draw_digits.lua
local W, H = 96, 120

-- Ink of a pen of radius r along a polyline, on a page of grey level `paper`.
local function draw(strokes, r, paper)
  local rows = {}
  for y = 1, H do
    rows[y] = {}
    for x = 1, W do
      local d = math.huge
      for _, s in ipairs(strokes) do
        for k = 1, #s - 1 do
          local ax, ay, bx, by = s[k][1], s[k][2], s[k + 1][1], s[k + 1][2]
          local vx, vy = bx - ax, by - ay
          local t = math.max(0, math.min(1, ((x - ax) * vx + (y - ay) * vy) / (vx * vx + vy * vy)))
          d = math.min(d, math.sqrt((x - ax - t * vx) ^ 2 + (y - ay - t * vy) ^ 2))
        end
      end
      local ink = math.max(0, math.min(1, r + 0.5 - d)) -- anti-aliased edge
      rows[y][x] = paper * (1 - ink) + 0.05 * ink
    end
  end
  return blua.tensor(rows)
end

local function ellipse(cx, cy, rx, ry)
  local p = {}
  for k = 0, 40 do
    local a = 2 * math.pi * k / 40
    p[#p + 1] = {cx + rx * math.cos(a), cy + ry * math.sin(a)}
  end
  return p
end

local digits = {
  ["hand-0.png"] = draw({ellipse(40, 58, 20, 32)}, 4, 1.0),
  ["hand-1.png"] = draw({{{58, 22}, {50, 98}}}, 4, 0.95),
  ["hand-7.png"] = draw({{{28, 24}, {72, 24}, {44, 100}}}, 4, 1.0),
  ["hand-4.png"] = draw({{{54, 20}, {26, 72}, {74, 72}}, {{60, 48}, {58, 104}}}, 4, 0.9),
  ["hand-3.png"] = draw({{{30, 30}, {50, 22}, {66, 34}, {52, 56}, {40, 58}, {54, 60}, {68, 78}, {52, 98}, {30, 92}}}, 4, 1.0),
}
for name, t in pairs(digits) do blua.image.save("tests/data/" .. name, t) end
