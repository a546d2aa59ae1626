-- list-page: GET /api/v1/notes?limit=50, following each answer's cursor to the user's last page,
-- then starting over with another user. The ids on a page say whose page it is.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup, init, done = common.setup, common.init, common.done

local next_pages = {}

function request()
   local page = table.remove(next_pages)
   if page then
      local path = "/api/v1/notes?limit=50&cursor=" .. page.cursor
      return wrk.format("GET", path, common.headers(page.user))
   end
   return wrk.format("GET", "/api/v1/notes?limit=50", common.headers(common.user()))
end

function response(status, headers, body)
   if status ~= 200 then
      return
   end
   local cursor = body:match('"next":"([^"]+)"}$')
   local first_id = tonumber(body:match('"id":(%d+)'))
   local user = first_id and common.owner_of(first_id)
   if cursor and user and #next_pages < 1000 then
      next_pages[#next_pages + 1] = { user = user, cursor = cursor }
   end
end
