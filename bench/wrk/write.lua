-- write: POST /api/v1/notes, a new note of about 250 bytes for a random user.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup, init, done = common.setup, common.init, common.done

local json = { ["Content-Type"] = "application/json" }

function request()
   local payload = common.note_json(function(words) return '"bench", "' .. words[3] .. '"' end)
   return wrk.format("POST", "/api/v1/notes", common.headers(common.user(), json), payload)
end
