-- GET workloads: every request asks for the same transform of a DIFFERENT stored original
-- (byte-different copies of one photograph, identical pixels), so the service's single-flight
-- (identical concurrent requests rendered once) cannot merge them: each request is one render.
-- args: <file with one path per line> <wrk threads>. Thread k (1-based) cycles through the
-- lines k, k+T, k+2T…, so two threads never ask for the same path at the same time.
-- Appended to stats.lua by bench.py, whose init() it extends.

local stats_init = init

function init(args)
  stats_init(args)
  local nthreads = tonumber(args[2]) or 1
  local me = id or 1
  mine = {}
  local i = 0
  for line in io.lines(args[1]) do
    if line ~= "" then
      if i % nthreads == me - 1 then
        table.insert(mine, line)
      end
      i = i + 1
    end
  end
  assert(#mine > 0, "no paths for this thread")
  counter = 0
end

function request()
  counter = counter + 1
  return wrk.format("GET", mine[(counter - 1) % #mine + 1])
end
