-- W8: replays the request sequence benchmarks/site_workload.py drew (Zipf over the URLs'
-- ranks, an Accept header per request from the browser mix), so that the service and thumbor
-- get the same requests in the same order, and the draws are tested in Python.
-- args: <paths file, rank order> <picks file, "rank accept" per line, 0-based>
--       <Accept strings file> <wrk threads>.
-- Thread k (1-based) takes picks k, k+T, k+2T…: together the threads walk the sequence in
-- order (but for the first thread's first pick: wrk calls request() once to check the script
-- before connecting). Appended to stats.lua by bench.py, whose init() it extends.

local stats_init = init

function init(args)
  stats_init(args)
  local paths, headers = {}, {}
  for line in io.lines(args[1]) do
    if line ~= "" then table.insert(paths, line) end
  end
  for line in io.lines(args[3]) do
    if line ~= "" then table.insert(headers, {["Accept"] = line}) end
  end
  local nthreads = tonumber(args[4]) or 1
  local me = id or 1
  mine_paths, mine_headers = {}, {}
  local i = 0
  for line in io.lines(args[2]) do
    local rank, accept = line:match("^(%d+) (%d+)$")
    if rank then
      if i % nthreads == me - 1 then
        local path, header = paths[tonumber(rank) + 1], headers[tonumber(accept) + 1]
        assert(path and header, "a pick past the paths or the Accept strings")
        table.insert(mine_paths, path)
        table.insert(mine_headers, header)
      end
      i = i + 1
    end
  end
  assert(#mine_paths > 0, "no picks for this thread")
  counter = 0
end

function request()
  counter = counter + 1
  local k = (counter - 1) % #mine_paths + 1
  return wrk.format("GET", mine_paths[k], mine_headers[k])
end
