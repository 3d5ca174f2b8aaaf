-- Every request a new instance: walks the "uuid tenant signature" lines of WRK_SIGNED once
-- (each instance asked once), then stops; wrk's -d bounds it too. The few requests already
-- in flight when the list runs out repeat its last instance.
local path = os.getenv("WRK_PATH") or "/latest/meta-data/instance-id"
local requests = {}
local sent, answered = 0, 0
function init(args)
  for line in io.lines(os.getenv("WRK_SIGNED")) do
    local uuid, tenant, signature = line:match("(%S+) (%S+) (%S+)")
    requests[#requests + 1] = wrk.format("GET", path, {
      ["Host"] = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port),
      ["X-Instance-ID"] = uuid, ["X-Tenant-ID"] = tenant, ["X-Instance-ID-Signature"] = signature,
    })
  end
end
function request()
  sent = math.min(sent + 1, #requests)
  return requests[sent]
end
function response(status, headers, body)
  answered = answered + 1
  if answered >= #requests then wrk.thread:stop() end
end
dofile(os.getenv("WRK_REPORT"))
