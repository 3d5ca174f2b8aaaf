-- One warm leaf, one instance: WRK_PATH as guest WRK_ADDRESS (X-Forwarded-For, trusted proxy).
local path = os.getenv("WRK_PATH") or "/latest/meta-data/instance-id"
wrk.headers["X-Forwarded-For"] = os.getenv("WRK_ADDRESS") or "10.0.0.1"
function request()
  return wrk.format("GET", path)
end
dofile(os.getenv("WRK_REPORT"))
