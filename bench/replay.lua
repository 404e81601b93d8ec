-- Replays pre-signed webhook requests with wrk: thread N sends BENCH_DIR/lane-N.req in
-- order on its one connection (run with -tT -cT), then writes BENCH_DIR/done-N and stops.
-- done() prints one line "BENCH_JSON {...}": per-lane counts and times, and latencies.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")
local function now()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) * 1e-6
end

local dir = os.getenv("BENCH_DIR")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  threads[#threads + 1] = thread
  counter = counter + 1
end

function init(args)
  local f = assert(io.open(dir .. "/lane-" .. id .. ".req", "rb"))
  local data = f:read("*a")
  f:close()
  reqs = {}
  local pos = 1
  while pos <= #data do
    local nl = string.find(data, "\n", pos, true)
    local n = tonumber(string.sub(data, pos, nl - 1))
    reqs[#reqs + 1] = string.sub(data, nl + 1, nl + n)
    pos = nl + n + 1
  end
  count, sent, responses, failed, extra, first, last = #reqs, 0, 0, 0, 0, 0, 0
  bad = {}
  -- wrk calls thread 0's request() once right after init, only to check the request
  -- parses (script_verify_request); that call must not use up an event
  verifying = (id == 0)
end

function request()
  if verifying then
    verifying = false
    return reqs[1]
  end
  if sent >= count then -- not reached: response() stops the thread after the last one
    extra = extra + 1
    return wrk.format("GET", "/healthz")
  end
  sent = sent + 1
  if first == 0 then first = now() end
  return reqs[sent]
end

function response(status, headers, body)
  responses = responses + 1
  last = now()
  if status < 200 or status > 299 then
    failed = failed + 1
    if #bad < 1000 then bad[#bad + 1] = responses end
  end
  if responses >= count then
    local f = io.open(dir .. "/done-" .. id, "w")
    f:write("done")
    f:close()
    wrk.thread:stop()
  end
end

local function list(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = string.format("%d", v) end
  return "[" .. table.concat(out, ",") .. "]"
end

function done(summary, latency, requests)
  local lanes = {}
  for _, t in ipairs(threads) do
    lanes[#lanes + 1] = string.format(
      '{"id":%d,"count":%d,"sent":%d,"responses":%d,"failed":%d,"extra":%d,'
        .. '"first":%.6f,"last":%.6f,"bad":%s}',
      t:get("id"), t:get("count"), t:get("sent"), t:get("responses"), t:get("failed"),
      t:get("extra"), t:get("first"), t:get("last"), list(t:get("bad")))
  end
  local pct = {}
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    pct[#pct + 1] = string.format('"%s":%d', tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"lanes":[%s],"latency_us":{%s,"mean":%.1f,"max":%d},'
      .. '"requests":%d,"duration_us":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    table.concat(lanes, ","), table.concat(pct, ","), latency.mean, latency.max,
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
