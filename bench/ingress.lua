-- wrk script for bench/ingress.py: replays precomputed signed deliveries, one each.
-- Args (after --): path of a file with one "delivery<TAB>signature<TAB>event<TAB>body" per line.
local reqs, n, idx = {}, 0, 0
answered, accepted, created, wrapped = 0, 0, 0, 0 -- globals: done() reads them with thread:get()
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local d, s, e, b = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
    n = n + 1
    reqs[n] = wrk.format("POST", "/webhook", {
      ["Content-Type"] = "application/json",
      ["User-Agent"] = "GitHub-Hookshot/bench",
      ["X-GitHub-Event"] = e,
      ["X-GitHub-Delivery"] = d,
      ["X-Hub-Signature-256"] = s,
    }, b)
  end
end

function request()
  idx = idx + 1
  if idx > n then
    idx = 1 -- ran out: later requests repeat deliveries (answered 200 by pact-bot)
    wrapped = 1
  end
  return reqs[idx]
end

function response(status, headers, body)
  answered = answered + 1
  if status >= 200 and status < 300 then
    accepted = accepted + 1
  end
  if status == 202 then
    created = created + 1
  end
end

function done(summary, latency, requests)
  local acc, ans, cre, wra = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    acc = acc + t:get("accepted")
    ans = ans + t:get("answered")
    cre = cre + t:get("created")
    wra = wra + t:get("wrapped")
  end
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "answered": %d, "accepted": %d, "created": %d, "wrapped": %d, "duration_us": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d, "errors_status": %d, "errors_connect": %d, ' ..
    '"errors_read": %d, "errors_write": %d, "errors_timeout": %d}\n',
    summary.requests, ans, acc, cre, wra, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
