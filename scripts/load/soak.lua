-- wrk script for scripts/soak.sh. Arguments after `--`: IDS_FILE
-- A mix of what portals and managers send: search (40 %), partners (40 %),
-- shortlists (10 %) and networks (10 %), over every firm id of IDS_FILE and a
-- few opportunity texts, so that most requests repeat (as real traffic does) but
-- the cache keeps meeting new keys. done() prints one tab-separated RESULT line:
-- requests, 2xx, 4xx, 5xx, socket errors, p50, p99, max (ms).

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local words = { "dairy", "cold chain", "robotics", "housing", "battery", "software", "sensors", "timber",
  "hydrogen", "logistics", "packaging", "wind", "health", "textiles", "recycling", "machining" }
local opportunities = {
  "low-carbon housing: timber construction, heat pumps, energy renovation",
  "assistive-living homes for the elderly: sensors, care robotics, housing",
  "food value chain: organic dairy farming, cheese processing, cold-chain logistics and retail",
  "low-emission vehicles and charging",
}
-- PACE_MS (environment): each connection waits this long before its next
-- request, so the offered load is fixed (about connections x 1000 / PACE_MS per
-- second) instead of as fast as the server answers; 0 = no pause.
local pace_ms = tonumber(os.getenv("PACE_MS") or "0") or 0
local ids = {}
local counter = 0
s2, s4, s5 = 0, 0, 0

function init(args)
  local file = assert(io.open(args[1] or "ids.txt"), "cannot open the ids file")
  for line in file:lines() do
    if #line > 0 then ids[#ids + 1] = line end
  end
  file:close()
  assert(#ids > 0, "the ids file is empty")
  math.randomseed(os.time() + tonumber(tid or 0))
end

function request()
  counter = counter + 1
  local pick = math.random(100)
  local id = ids[math.random(#ids)]
  if pick <= 40 then
    local word = words[math.random(#words)]:gsub(" ", "%%20")
    return wrk.format("GET", "/v1/firms?q=" .. word .. "&limit=" .. math.random(5, 20))
  elseif pick <= 80 then
    return wrk.format("GET", "/v1/firms/" .. id .. "/partners?k=" .. math.random(5, 20))
  elseif pick <= 90 then
    local body = '{"opportunity": "' .. opportunities[math.random(#opportunities)] .. '", "k": ' .. math.random(5, 15) .. '}'
    return wrk.format("POST", "/v1/shortlists", { ["Content-Type"] = "application/json" }, body)
  else
    local body = '{"anchor": ["' .. id .. '"], "opportunity": "' .. opportunities[math.random(#opportunities)] ..
      '", "size": {"min": 5, "max": 7}, "alternatives": 1}'
    return wrk.format("POST", "/v1/networks", { ["Content-Type"] = "application/json" }, body)
  end
end

function delay()
  return pace_ms
end

function response(status, headers, body)
  if status >= 500 then
    s5 = s5 + 1
  elseif status >= 400 then
    s4 = s4 + 1
  else
    s2 = s2 + 1
  end
end

function done(summary, latency, requests)
  local t2, t4, t5 = 0, 0, 0
  for _, thread in ipairs(threads) do
    t2 = t2 + thread:get("s2")
    t4 = t4 + thread:get("s4")
    t5 = t5 + thread:get("s5")
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\n", summary.requests, t2, t4, t5, errors,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
