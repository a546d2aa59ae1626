-- write: POST /api/v1/notes, a new note of about 250 bytes for a random user.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup, init, done = common.setup, common.init, common.done

local json = { ["Content-Type"] = "application/json" }

function request()
   local words = common.data.words
   local body = {}
   for i = 1, 40 do
      body[i] = words[math.random(#words)]
   end
   local payload = string.format(
      '{"title": "%s %s", "body": "%s", "tags": ["bench", "%s"]}',
      body[1], body[2], table.concat(body, " "), body[3])
   return wrk.format("POST", "/api/v1/notes", common.headers(common.user(), json), payload)
end
