-- Overhead bench workload: d01..d30 call down to a loop of fixed CPU-bound work units.
-- Prints "UNITS MONO_NS CPU_S RUN_NS WAIT_NS" after each batch (~10 ms): units done so far,
-- CLOCK_MONOTONIC (the clock of Python's time.monotonic), os.clock(), and from
-- /proc/self/schedstat the time on a CPU and waiting for one (-1 -1 without it).
-- Run with -joff to stay interpreted.
local ffi = require("ffi")
ffi.cdef [[
struct vms_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk, struct vms_timespec *ts);
]]
local ts = ffi.new("struct vms_timespec")
local function mono_ns()
  ffi.C.clock_gettime(1, ts)   -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e9 + tonumber(ts.tv_nsec)
end

local function schedstat()
  local f = io.open("/proc/self/schedstat")
  local l = f and f:read("*l")
  if f then f:close() end
  return l and l:match("^%d+ %d+") or "-1 -1"
end

-- one unit: 1000 steps of an LCG, the same work every time
local x = 1
local function unit()
  local v = x
  for _ = 1, 1000 do
    v = (v * 1103515245 + 12345) % 2147483648
  end
  x = v
end

local function work()
  local out = io.stdout
  -- batch size: double until a batch takes >= 10 ms
  local batch = 1
  while true do
    local t0 = mono_ns()
    for _ = 1, batch do unit() end
    if mono_ns() - t0 >= 1e7 then break end
    batch = batch * 2
  end
  local done = 0
  while true do
    for _ = 1, batch do unit() end
    done = done + batch
    out:write(done, " ", string.format("%.0f", mono_ns()), " ", os.clock(), " ", schedstat(), "\n")
    out:flush()
  end
end

-- each level does work after its call: no tail calls, the stack stays 30 deep
local function d30() local r = work(); return r end
local function d29() local r = d30(); return r end
local function d28() local r = d29(); return r end
local function d27() local r = d28(); return r end
local function d26() local r = d27(); return r end
local function d25() local r = d26(); return r end
local function d24() local r = d25(); return r end
local function d23() local r = d24(); return r end
local function d22() local r = d23(); return r end
local function d21() local r = d22(); return r end
local function d20() local r = d21(); return r end
local function d19() local r = d20(); return r end
local function d18() local r = d19(); return r end
local function d17() local r = d18(); return r end
local function d16() local r = d17(); return r end
local function d15() local r = d16(); return r end
local function d14() local r = d15(); return r end
local function d13() local r = d14(); return r end
local function d12() local r = d13(); return r end
local function d11() local r = d12(); return r end
local function d10() local r = d11(); return r end
local function d09() local r = d10(); return r end
local function d08() local r = d09(); return r end
local function d07() local r = d08(); return r end
local function d06() local r = d07(); return r end
local function d05() local r = d06(); return r end
local function d04() local r = d05(); return r end
local function d03() local r = d04(); return r end
local function d02() local r = d03(); return r end
local function d01() local r = d02(); return r end

d01()
