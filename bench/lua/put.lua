-- PUT of SIZE-byte objects under PREFIX, cycling over NKEYS keys (a new request string
-- per request, built in Lua). Arguments after "--": SIZE NKEYS PREFIX, then
-- "Name: value" headers.
-- done() prints one line "BENCHJSON {...}" that bench/wrk.py parses.

local counter = 0
local nkeys = 1000
local prefix = "/bench/put-"
local body = ""

function init(args)
  local size = tonumber(args[1] or "1024")
  nkeys = tonumber(args[2] or "1000")
  prefix = args[3] or prefix
  body = string.rep("0123456789abcdef", math.ceil(size / 16)):sub(1, size)
  wrk.headers["Content-Type"] = "application/octet-stream"
  for i = 4, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    if name then
      wrk.headers[name] = value
    end
  end
end

function request()
  counter = counter + 1
  return wrk.format("PUT", prefix .. (counter % nkeys), nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, ' ..
    '"p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
