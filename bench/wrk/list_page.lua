-- list-page: GET /api/v1/notes?limit=50, following each answer's next page to the user's last
-- page, then starting over with another user. The ids on a page say whose page it is.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup, init, done = common.setup, common.init, common.done

local next_pages = {}

function request()
   local page = table.remove(next_pages)
   if page then
      return wrk.format("GET", page.path, common.headers(page.user))
   end
   return wrk.format("GET", "/api/v1/notes?limit=50", common.headers(common.user()))
end

-- The app ends a page with its cursor, {..., "next":"<cursor>"}; DRF's CursorPagination (the
-- DRF peer) starts it with a link, {"next":"http://host/api/v1/notes?cursor=...", ...}.
local function next_path(body)
   local cursor = body:match('"next":"([^"]+)"}$')
   if cursor then
      return "/api/v1/notes?limit=50&cursor=" .. cursor
   end
   return body:match('^{"next":"https?://[^/"]+(/[^"]+)"')
end

function response(status, headers, body)
   if status ~= 200 then
      return
   end
   local path = next_path(body)
   local first_id = tonumber(body:match('"id":(%d+)'))
   local user = first_id and common.owner_of(first_id)
   if path and user and #next_pages < 1000 then
      next_pages[#next_pages + 1] = { user = user, path = path }
   end
end
