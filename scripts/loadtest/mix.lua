-- wrk script: the demo's read mix under Zipf(s) popularity, plus writes.
-- Each wrk thread draws from its own generator, seeded from LOADTEST_SEED and the thread's
-- number, so a run with the same seed sends the same sequence (as far as it gets in its time).
--   40 % GET /users/{id}          (Zipf over the users)
--   29 % GET /users/{id}/orders   (Zipf over the users)
--   29 % GET /resources/freight/{id} (Zipf over the freight)
--    2 % PUT /users/{id}           (Zipf over the users; a new email each time)
-- The shares other than the writes' are fixed; LOADTEST_WRITE_PCT changes the writes'.

local seed = tonumber(os.getenv("LOADTEST_SEED") or "42")
local s = tonumber(os.getenv("LOADTEST_ZIPF_S") or "1.0")
local users = tonumber(os.getenv("LOADTEST_USERS") or "100")
local freight = tonumber(os.getenv("LOADTEST_FREIGHT") or "500")
local write_share = tonumber(os.getenv("LOADTEST_WRITE_PCT") or "2") / 100
-- Each connection may wait this long before its next request (a client's think time; default
-- 0: a closed loop at fixed concurrency, which on two shared cores includes the queue in front
-- of a saturated CPU in every latency).
local think_ms = tonumber(os.getenv("LOADTEST_THINK_MS") or "0")

local threads_made = 0

function setup(thread)
  threads_made = threads_made + 1
  thread:set("thread_no", threads_made)
end

-- The cumulative distribution of Zipf(s) over 1..n: rank k has weight 1 / k^s.
local function zipf_cdf(n)
  local c, total = {}, 0
  for k = 1, n do
    total = total + 1 / (k ^ s)
    c[k] = total
  end
  for k = 1, n do
    c[k] = c[k] / total
  end
  return c
end

local function draw(c)
  local u = math.random()
  local lo, hi = 1, #c
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if c[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

local user_cdf, freight_cdf
local writes = 0

function init(args)
  math.randomseed(seed * 1000 + (thread_no or 0))
  user_cdf = zipf_cdf(users)
  freight_cdf = zipf_cdf(freight)
end

function request()
  local r = math.random()
  if r < write_share then
    writes = writes + 1
    local id = draw(user_cdf)
    -- The email changes, never the name: the stale-read check writes names, and a concurrent
    -- writer of the same name would look like a stale read.
    local body = string.format('{"email":"user%d.rev%d-%d@example.com"}', id, thread_no or 0, writes)
    return wrk.format("PUT", "/users/" .. id, { ["Content-Type"] = "application/json" }, body)
  end
  local rest = (r - write_share) / (1 - write_share)
  if rest < 0.41 then
    return wrk.format("GET", "/users/" .. draw(user_cdf))
  elseif rest < 0.705 then
    return wrk.format("GET", "/users/" .. draw(user_cdf) .. "/orders")
  else
    return wrk.format("GET", "/resources/freight/" .. draw(freight_cdf))
  end
end

if think_ms > 0 then
  function delay()
    return think_ms
  end
end

-- One machine-readable line for the report (latencies in microseconds).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOADTEST_JSON {"requests":%d,"duration_us":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"mean_us":%.1f,' ..
    '"errors_status":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
