-- 16 GET requests sent in one write; wrk counts each response, and sends the
-- next batch only when all 16 answers of a connection have arrived.
local depth = 16

init = function(args)
   local requests = {}
   for i = 1, depth do
      requests[i] = wrk.format("GET", "/")
   end
   batch = table.concat(requests)
end

request = function()
   return batch
end
