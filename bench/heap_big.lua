-- Benchmark target: a LuaJIT heap of about N small tables, then blocked.
-- Usage: luajit heap_big.lua READY_FD N
local fd, n = arg[1], tonumber(arg[2])
big = {}
for i = 1, n do big[i] = { i } end
collectgarbage("collect")
local f = assert(io.open("/dev/fd/" .. fd, "w"))
f:write(string.format("%d\nready\n", math.floor(collectgarbage("count") * 1024)))
f:close()
if io.read() == nil then while true do end end
