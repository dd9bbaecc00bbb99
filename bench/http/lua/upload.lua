-- A 1 MiB POST body on every request. The app reads all of it and answers its
-- length; every answer is checked, so a server that cut the body short shows
-- up as wrong answers rather than as a flattering figure.
local size = 1024 * 1024
local expected = tostring(size)
local threads = {}

wrk.method = "POST"
wrk.body = string.rep("x", size)
wrk.headers["Content-Type"] = "application/octet-stream"

setup = function(thread)
   table.insert(threads, thread)
end

init = function(args)
   wrong = 0
end

response = function(status, headers, body)
   if status ~= 200 or body ~= expected then
      wrong = wrong + 1
   end
end

done = function(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do
      total = total + thread:get("wrong")
   end
   io.write(string.format("Wrong answers: %d\n", total))
end
