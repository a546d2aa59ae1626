-- Shared by the scenario scripts: the dataset (BENCH_DATA, written by bench/load.py), a random
-- seed per thread, and a machine-readable summary line for bench/load.py to parse.
local common = {}

common.data = dofile(os.getenv("BENCH_DATA"))

local thread_number = 0

function common.setup(thread)
   thread_number = thread_number + 1
   thread:set("number", thread_number)
end

function common.init(args)
   -- `number` is this thread's global, set by setup() above.
   math.randomseed(os.time() * 1000 + (number or 0))
end

function common.user()
   local users = common.data.users
   return users[math.random(#users)]
end

-- The user whose notes include this id (each user's ids are one consecutive range).
function common.owner_of(id)
   local users = common.data.users
   local low, high = 1, #users
   while low <= high do
      local middle = math.floor((low + high) / 2)
      local user = users[middle]
      if id < user.first then
         high = middle - 1
      elseif id > user.last then
         low = middle + 1
      else
         return user
      end
   end
   return nil
end

function common.headers(user, extra)
   local headers = { ["Authorization"] = "Bearer " .. user.token }
   for name, value in pairs(extra or {}) do
      headers[name] = value
   end
   return headers
end

-- A new note's JSON body: a two-word title and a body of 40 words from the dataset's
-- vocabulary (about 250 bytes); `tags(words)` gives the inside of its JSON tag list.
function common.note_json(tags)
   local words = common.data.words
   local body = {}
   for i = 1, 40 do
      body[i] = words[math.random(#words)]
   end
   return string.format('{"title": "%s %s", "body": "%s", "tags": [%s]}',
      body[1], body[2], table.concat(body, " "), tags(body))
end

function common.done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
      "\"connect_errors\": %d, \"read_errors\": %d, \"write_errors\": %d, " ..
      "\"status_errors\": %d, \"timeouts\": %d, \"p50_us\": %d, \"p90_us\": %d, " ..
      "\"p99_us\": %d, \"max_us\": %d, \"mean_us\": %.1f}\n",
      summary.requests, summary.duration, summary.bytes,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end

return common
