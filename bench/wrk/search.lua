-- search: GET /api/v1/notes?q=<a word of the dataset>, for a random user.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup, init, done = common.setup, common.init, common.done

function request()
   local words = common.data.words
   local word = words[math.random(#words)]
   return wrk.format("GET", "/api/v1/notes?q=" .. word, common.headers(common.user()))
end
