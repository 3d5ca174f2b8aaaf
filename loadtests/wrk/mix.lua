-- A realistic mix: most requests are agents re-reading a few leaves of already-booted
-- instances (WRK_HOT of them); the rest are boot-sequence paths of any of WRK_INSTANCES.
local instances = tonumber(os.getenv("WRK_INSTANCES") or "1000")
local hot = math.min(tonumber(os.getenv("WRK_HOT") or "100"), instances)
local hot_share = tonumber(os.getenv("WRK_HOT_SHARE") or "0.8")
local agent_paths = {"/latest/meta-data/instance-id", "/openstack/latest/meta_data.json",
  "/openstack/latest/user_data", "/latest/meta-data/local-ipv4"}
local boot_paths = {}
for p in string.gmatch(os.getenv("WRK_BOOT") or "/latest/meta-data/", "[^,]+") do
  boot_paths[#boot_paths + 1] = p
end
local function address(n)  -- the same numbering as loadtests/seed.py (LuaJIT: no // or >>)
  local net, host = math.floor(n / 250), n % 250
  return string.format("10.%d.%d.%d", math.floor(net / 256) % 256, net % 256, host + 1)
end
math.randomseed(tonumber(os.getenv("WRK_SEED") or "1"))
function request()
  local path, n
  if math.random() < hot_share then
    n, path = math.random(0, hot - 1), agent_paths[math.random(#agent_paths)]
  else
    n, path = math.random(0, instances - 1), boot_paths[math.random(#boot_paths)]
  end
  return wrk.format("GET", path, {["X-Forwarded-For"] = address(n)})
end
dofile(os.getenv("WRK_REPORT"))
