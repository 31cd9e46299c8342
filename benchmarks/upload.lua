-- W6: PUT /images with a different body every request, so that the content-addressed store
-- really stores (201) instead of answering "already there" (200).
-- args: <jpeg file> <run nonce>. The body is the JPEG with a COM segment (FF FE) inserted
-- right after SOI carrying "<nonce> <thread> <counter>": every decoder skips comments, so
-- the pixels are identical while the bytes (and the SHA-256 id) differ.
-- Appended to stats.lua by bench.py, whose init() it extends.

local stats_init = init

function init(args)
  stats_init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  assert(data:sub(1, 2) == "\255\216", "not a JPEG")
  soi, rest = data:sub(1, 2), data:sub(3)
  nonce = args[2] or tostring(os.time())
  counter = 0
end

function request()
  counter = counter + 1
  local text = string.format("progimage-bench %s %d %d", nonce, id or 0, counter)
  local n = #text + 2
  local com = "\255\254" .. string.char(math.floor(n / 256), n % 256) .. text
  return wrk.format("PUT", "/images", {["Content-Type"] = "image/jpeg"}, soi .. com .. rest)
end
