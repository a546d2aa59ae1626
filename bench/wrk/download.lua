-- download: GET BENCH_DOWNLOAD_PATH again and again, with BENCH_DOWNLOAD_TOKEN as the bearer
-- token when set (the app's download), without when not (nginx's own static file).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup, init, done = common.setup, common.init, common.done

local path = os.getenv("BENCH_DOWNLOAD_PATH")
local token = os.getenv("BENCH_DOWNLOAD_TOKEN") or ""
local headers = {}
if token ~= "" then
   headers["Authorization"] = "Bearer " .. token
end

function request()
   return wrk.format("GET", path, headers)
end
