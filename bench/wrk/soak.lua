-- soak: a steady mix, paced below saturation (python -m bench --soak). Each connection waits
-- BENCH_SOAK_DELAY_MS before each request. Run with as many wrk threads as connections: each
-- thread then drives one connection, so a response always belongs to the thread's last request.
--   50% read one note, 20% a list page (following cursors), 15% search, 15% write; every note
--   written is deleted by the connection's next request, so the data stays the same size.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup, init, done = common.setup, common.init, common.done

local pace_ms = tonumber(os.getenv("BENCH_SOAK_DELAY_MS") or "20")
local json = { ["Content-Type"] = "application/json" }

local last = { kind = nil, user = nil }
local to_delete = nil -- { user, id }: the note this connection wrote last, not yet deleted
local next_page = nil -- { user, cursor }

function delay()
   return pace_ms
end

local function write_request(user)
   local payload = common.note_json(function() return '"soak"' end)
   return wrk.format("POST", "/api/v1/notes", common.headers(user, json), payload)
end

function request()
   if to_delete then
      local victim = to_delete
      to_delete = nil
      last = { kind = "delete" }
      return wrk.format("DELETE", "/api/v1/notes/" .. victim.id, common.headers(victim.user))
   end
   local roll = math.random()
   if roll < 0.5 then
      local user = common.user()
      last = { kind = "read" }
      return wrk.format("GET", "/api/v1/notes/" .. math.random(user.first, user.last),
                        common.headers(user))
   elseif roll < 0.7 then
      local page = next_page
      next_page = nil
      last = { kind = "list" }
      if page then
         return wrk.format("GET", "/api/v1/notes?limit=50&cursor=" .. page.cursor,
                           common.headers(page.user))
      end
      return wrk.format("GET", "/api/v1/notes?limit=50", common.headers(common.user()))
   elseif roll < 0.85 then
      local words = common.data.words
      last = { kind = "search" }
      return wrk.format("GET", "/api/v1/notes?q=" .. words[math.random(#words)],
                        common.headers(common.user()))
   end
   local user = common.user()
   last = { kind = "write", user = user }
   return write_request(user)
end

function response(status, headers, body)
   if last.kind == "write" and status == 201 then
      local id = body:match('"id":(%d+)')
      if id then
         to_delete = { user = last.user, id = id }
      end
   elseif last.kind == "list" and status == 200 then
      local cursor = body:match('"next":"([^"]+)"}$')
      local first_id = tonumber(body:match('"id":(%d+)'))
      local user = first_id and common.owner_of(first_id)
      if cursor and user then
         next_page = { user = user, cursor = cursor }
      end
   end
end
