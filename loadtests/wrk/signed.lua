-- One warm leaf, signed headers rotating over the instances of WRK_SIGNED (one
-- "uuid tenant signature" line each, precomputed: wrk's Lua has no HMAC).
local path = os.getenv("WRK_PATH") or "/latest/meta-data/instance-id"
local requests = {}
local i = 0
-- Built in init: by then wrk knows the host each request must name.
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
  i = i % #requests + 1
  return requests[i]
end
dofile(os.getenv("WRK_REPORT"))
