-- wrk script of swarmlab-ops bench and loadtest: WRK_METHOD (GET or POST with
-- an empty JSON body) and, at the end, one line "WRK_JSON {...}" with the counts and the p50/p95/p99
-- and max latency (ms) from wrk's own histogram, which its table does not print.
local method = os.getenv("WRK_METHOD") or "GET"
wrk.method = method
if method == "POST" then
  wrk.body = "{}"
  wrk.headers["Content-Type"] = "application/json"
end
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.timeout + summary.errors.status
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
