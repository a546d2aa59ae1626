-- read-one: GET /api/v1/notes/{id}, a random note of a random user, with that user's token.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup, init, done = common.setup, common.init, common.done

function request()
   local user = common.user()
   local id = math.random(user.first, user.last)
   return wrk.format("GET", "/api/v1/notes/" .. id, common.headers(user))
end
