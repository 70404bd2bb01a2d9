-- wrk script for scripts/load.sh. Arguments after `--`: MODE IDS_FILE THREADS
--   cached    GET /v1/firms/{first id}/partners, the same request every time
--   partners  GET /v1/firms/{id}/partners?k=K over every id of IDS_FILE (one id
--             per line); each thread takes every THREADS-th id, and k goes up by one
--             after each full pass, so no request repeats: every one is a cache miss
--   networks  POST /v1/networks with one anchor (the same rotation) and an
--             opportunity text, 5-8 members, at least one SME, 3 alternatives
-- done() prints one tab-separated RESULT line that load.sh turns into its table,
-- and counts statuses and `x-cache` outcomes so a run that was not what it claims
-- to be (errors, unexpected hits) shows up.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local products = {
  "solar inverters and battery storage", "offshore wind turbine foundations",
  "precision machining of aerospace parts", "biodegradable food packaging",
  "cloud software for logistics planning", "contract manufacturing of generic drugs",
  "semiconductor test equipment", "low-carbon cement and building materials",
  "electric vehicle charging infrastructure", "cold-chain transport of fresh produce",
  "medical imaging devices", "recycling of lithium-ion batteries", "hydrogen electrolysers",
  "smart grid metering and analytics", "plant-based dairy alternatives", "cybersecurity services for banks",
}
local markets = {
  "for European utilities", "for hospitals in Asia", "for small retailers", "for the automotive supply chain",
  "for municipal housing renovation", "for mining companies", "for export to North America",
  "for a regional cluster of food producers",
}

local ids = {}
local nthreads
mode = nil -- global, so done() can read it from a thread
local counter = 0
local cached_request
statuses, hits, misses, others = 0, 0, 0, 0

local function json_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function init(args)
  mode = args[1] or "cached"
  local file = assert(io.open(args[2] or "ids.txt"), "cannot open the ids file")
  for line in file:lines() do
    if #line > 0 then ids[#ids + 1] = line end
  end
  file:close()
  assert(#ids > 0, "the ids file is empty")
  nthreads = tonumber(args[3] or "1")
  wrk.headers["Accept"] = "application/json"
  if mode == "cached" then
    cached_request = wrk.format("GET", "/v1/firms/" .. ids[1] .. "/partners?k=20")
  end
end

function request()
  if mode == "cached" then
    return cached_request
  end
  local n = tid + counter * nthreads
  counter = counter + 1
  local id = ids[(n % #ids) + 1]
  local pass = math.floor(n / #ids)
  if mode == "partners" then
    return wrk.format("GET", "/v1/firms/" .. id .. "/partners?k=" .. (20 + pass % 180))
  end
  local text = products[(n % #products) + 1] .. " " .. markets[(math.floor(n / #products) % #markets) + 1]
  local body = '{"anchor":[' .. json_string(id) .. '],"opportunity":' .. json_string(text)
    .. ',"size":{"min":5,"max":8},"require":{"sme":1},"alternatives":3'
    .. (pass > 0 and (',"k_candidates":' .. (100 + pass % 400)) or "") .. "}"
  return wrk.format("POST", "/v1/networks", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status ~= 200 then
    statuses = statuses + 1
    if statuses <= 3 then
      io.stderr:write("status " .. status .. ": " .. body:sub(1, 300) .. "\n")
    end
  end
  local cache = headers["x-cache"] or headers["X-Cache"]
  if cache == "hit" then
    hits = hits + 1
  elseif cache == "miss" then
    misses = misses + 1
  else
    others = others + 1
  end
end

function done(summary, latency, requests)
  local bad, hit, miss, other = 0, 0, 0, 0
  local mode = threads[1] and threads[1]:get("mode") or "?"
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("statuses")
    hit = hit + thread:get("hits")
    miss = miss + thread:get("misses")
    other = other + thread:get("others")
  end
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT\t%s\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\n",
    mode, summary.requests / seconds,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    summary.requests, bad, errors, hit, miss, other))
end
