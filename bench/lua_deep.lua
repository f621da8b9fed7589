-- Bench fixture: d01..d30 call down to a spin loop; "ready 0xTABLE" (the counter's table) on fd arg[1].
local fd = tonumber(arg[1])   -- run with -joff to stay interpreted; without, the loop becomes a trace

local counter = { 0 }   -- counter[1] counts spins: the bench reads it to see the loop run

local function spin()
  local out = fd and io.open("/dev/fd/" .. fd, "w") or io.stdout
  out:write("ready ", tostring(counter):match("0x%x+") or "?", "\n")
  if out ~= io.stdout then out:close() else out:flush() end
  local c = counter
  while true do
    c[1] = c[1] + 1
  end
end

-- each level does work after its call: no tail calls, the stack stays 30 deep
local function d30() local r = spin(); return r end
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
