#!/usr/bin/env python3
"""Live tests of LuaJIT stacks (fixtures/lua/stacks.lua) under a real luajit: the Lua frames
vmstack reads from outside must equal LuaJIT's own debug.traceback() of the same stack,
with the leaf at the exact spinning line, interpreted (-joff) and JIT-compiled.
Usage: test_luajit.py CASE  (CASE = SCENARIO_MODE, e.g. nested_joff, or a special case)"""
import os
import re
import shutil
import subprocess
import time

from vmtest import Skip, assert_running, dump_json, main, run, settle, start, stop, wait_file

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.normpath(os.path.join(HERE, "..", "..", "fixtures", "lua", "stacks.lua"))
LUAJIT = None


def luajit():
    """The interpreter of the flavour under test: Debian's luajit (GC64), Debian's luajit2
    (OpenResty's branch, stripped, unpacked by prepare.sh), or a non-GC64 build of Debian's
    luajit source (built by prepare.sh)."""
    global LUAJIT
    if LUAJIT:
        return LUAJIT
    flavour = os.environ.get("LUAJIT_FLAVOUR", "debian")
    if os.environ.get("LUAJIT"):
        LUAJIT = os.environ["LUAJIT"]
    elif flavour == "debian":
        LUAJIT = shutil.which("luajit")
        if not LUAJIT:
            raise Skip("luajit is not installed (apt-get install luajit)")
    else:
        src = os.environ["LUAJIT_SRC"]
        cp = subprocess.run(["sh", os.environ["LUAJIT_PREPARE"], src], capture_output=True,
                            text=True)
        if cp.returncode == 77:
            raise Skip("LuaJIT builds unavailable: " + cp.stderr.strip())
        assert cp.returncode == 0, cp.stderr[-2000:]
        if flavour == "luajit2":
            LUAJIT = os.path.join(src, "pkg-luajit2", "luajit")
        else:
            builds = [d for d in os.listdir(src) if d.endswith("-luajit-nogc64")]
            assert builds, os.listdir(src)
            LUAJIT = os.path.join(src, builds[0], "src", "luajit")
    return LUAJIT


def src_line(marker):
    """Line of the statement marked with the comment '-- MARKER'."""
    with open(SCRIPT) as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith("-- " + marker):
                return i
    raise AssertionError(marker)


def start_lua(scenario, jit, stdin=None, extra=()):
    """Run the fixture; return (process, traceback lines) once it is ready."""
    r, w = os.pipe()
    args = [luajit()] + ([] if jit else ["-joff"]) + [SCRIPT, str(w), scenario] + list(extra)
    p = subprocess.Popen(args, pass_fds=(w,), stdout=subprocess.DEVNULL,
                         stdin=stdin if stdin is not None else subprocess.DEVNULL)
    os.close(w)
    buf = b""
    deadline = time.monotonic() + 20
    with os.fdopen(r, "rb") as rf:
        while not buf.endswith(b"ready\n"):
            chunk = rf.readline()
            if not chunk or time.monotonic() > deadline:
                p.kill()
                raise AssertionError("fixture not ready: %r" % buf)
            buf += chunk
    lines = buf.decode().splitlines()
    tb = [l.strip() for l in lines[2:-1]]    # "stack", "stack traceback:", ..., "ready"
    # tracebacks of suspended coroutines follow as "coroutine N", "stack traceback:", ...
    p.coroutine_tbs = []
    while any(l.startswith("coroutine ") for l in tb):
        i = max(i for i, l in enumerate(tb) if l.startswith("coroutine "))
        p.coroutine_tbs.insert(0, tb[i + 2:])
        tb = tb[:i]
    settle(p.pid, 0 if scenario == "blocked" else None)
    return p, tb


def expected_from_traceback(tb):
    """LuaJIT's traceback lines as (name, file, line) triples; None for unknown parts."""
    out = []
    for l in tb:
        if l == "..." or l.startswith("[C]: at ") or l.startswith("[builtin#"):
            break   # elided levels, or an unnamed C function: compare up to here
        m = re.fullmatch(r"\[C\]: in function '([^']+)'", l)
        if m:
            out.append((m.group(1), None, None))
            continue
        m = re.fullmatch(r"(.+):(\d+): in (?:function '([^']+)'|(function <.+>)|(main chunk))", l)
        assert m, "unparsed traceback line %r" % l
        path, line, name, anon, mainc = m.groups()

        out.append((name or anon or "main chunk", path, int(line)))
    return out


def vm_frames(thread):
    return [f for f in thread["frames"] if f["kind"] in ("vm", "jit")]


def plain(s):
    """LuaJIT's traceback drops the '@' or '=' that starts a chunk name; vmstack keeps it."""
    return re.sub(r"(^|<)[@=]", r"\1", s) if s else s


def check_against_traceback(frames, tb, leaf_line, leaf_name):
    exp = expected_from_traceback(tb)
    got = [(plain(f["name"]), plain(f["file"]), f["line"]) for f in frames]
    # the leaf: same function as the traceback's first entry, at the spinning line
    assert got[0][0] == leaf_name and got[0][2] == leaf_line, (got[0], leaf_line)
    assert exp[0][0] == leaf_name, exp[0]
    for i, (e, g) in enumerate(zip(exp[1:], got[1:]), 1):
        assert e == g, "frame %d: traceback says %s, vmstack %s\nall: %s\ntraceback: %s" % (
            i, e, g, got, exp)
    assert len(got) >= len(exp), (got, exp)


def scenario_case(scenario, jit):
    p, tb = start_lua(scenario, jit)
    try:
        rc, doc, err = dump_json(p.pid)
        assert rc == 0, err
        t = doc["threads"][0]
        assert t["vm_error"] is None and t["walk_error"] is None, (t["vm_error"], t["walk_error"])
        frames = vm_frames(t)
        check_against_traceback(frames, tb, src_line("spin here"), "spin")
        assert t["runtime"] == "luajit", t["runtime"]
        if jit:
            assert frames[0]["trace"] > 0, "leaf not reported as a JIT trace: %s" % frames[0]
            assert t["vm_state"] == "JIT trace %d" % frames[0]["trace"], t["vm_state"]
        else:
            assert all(f["trace"] == 0 for f in frames), frames
            assert t["vm_state"] == "interpreted", t["vm_state"]
        # the outermost Lua frame is the main chunk, and native frames follow it
        names = [f["name"] for f in frames]
        assert names[-1] == "main chunk", names
        last_vm = max(i for i, f in enumerate(t["frames"]) if f["kind"] != "native")
        native_below = [f["name"] for f in t["frames"][last_vm + 1:]]
        assert "lua_pcall" in native_below and "main" in native_below, native_below
        if scenario == "recurse":
            assert names.count("recurse") == 50, names
        if scenario == "loadstring":
            assert ("inner", "=chunky", 2) in [(f["name"], f["file"], f["line"]) for f in frames]
        assert_running(p.pid)
        return doc
    finally:
        stop(p)


STATES = os.path.normpath(os.path.join(HERE, "..", "..", "fixtures", "lua", "states.lua"))
STATE_SCENARIOS = ("tab", "str", "cdata", "ffi_jit", "ffi_interp", "index", "gc", "side",
                   "stitch", "gcstep", "error", "exit", "record", "coro", "sortcb")
DUMPS = 50
MISSING_MAX = 2
# the header at least one of the dumps must show (the state the scenario is about)
STATE_SEEN = {
    "tab": r"C \(.*\) from trace \d+|GC step in trace \d+",
    "str": r"C \(.*\) from trace \d+|GC step in trace \d+",
    "cdata": r"C \(.*\) from trace \d+|GC step in trace \d+",
    "ffi_jit": r"C \(.*strlen.*\) from trace \d+",
    "ffi_interp": r"in C",
    "index": r"JIT trace \d+",
    "gc": r"interpreted|in GC|in C",
    "side": r"JIT trace \d+",
    "stitch": r"in C",
    "gcstep": r"in GC",
    "error": r"in C",
    "exit": r"exiting a trace.*",
    "record": r"JIT (recording|optimising|assembling)",
    "coro": r"JIT trace \d+|interpreted",
    "sortcb": r"in C",
}


def marker_lines(path, marker):
    out = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith("-- " + marker):
                out.append(i)
    assert out, marker
    return out


def states_case(scenario):
    """fixtures/lua/states.lua keeps the CPU in one VM state (JIT code calling allocators,
    GC steps, FFI calls from traces and from the interpreter, metamethods, finalizers,
    side traces, stitching, trace exits, recording, coroutines, error throwing, C calling
    back into Lua). Each of DUMPS one-shot dumps must show the Lua stack: the work
    function at a line of its own, then the main chunk at the call line, exact."""
    first = marker_lines(STATES, "BEGIN " + scenario)[0]
    last = marker_lines(STATES, "END " + scenario)[0]
    call = marker_lines(STATES, "CALL")[0]
    p = start([luajit(), STATES, "{fd}", scenario], stdin=subprocess.DEVNULL)
    try:
        settle(p.pid, None)
        states, partial, seen, inexacts, missing, between = {}, [], 0, 0, [], 0
        for k in range(DUMPS):
            rc, doc, err = dump_json(p.pid)
            t = doc["threads"][0]
            frames = vm_frames(t)
            got = [(f["name"], plain(f["file"]), f["line"]) for f in frames]
            where = "dump %d: %s\nstate %r, vm_error %r, walk_error %r" % (
                k, got, t["vm_state"], t["vm_error"], t["walk_error"])
            work = [g for g in got if g[0] == "fn" and g[1] == STATES]
            if got == [("main chunk", STATES, call)] and t["vm_state"] == "interpreted":
                between += 1   # the main chunk's own loop, between two calls: right too
                continue
            if not got or got[-1] != ("main chunk", STATES, call) or not work:
                missing.append(where)
                continue
            # the innermost frame of a guessed entry (header: "... not known") has no line
            inexact = "not known" in (t["vm_state"] or "") or "not exact" in (t["vm_state"] or "")
            assert (work[-1][2] is None and inexact) or first <= (work[-1][2] or 0) <= last, where
            inexacts += inexact
            seen += bool(re.fullmatch(STATE_SEEN[scenario], t["vm_state"] or ""))
            st = re.sub(r"\d+", "N", re.sub(r"\(.*\)", "(...)", t["vm_state"] or "-"))
            states[st] = states.get(st, 0) + 1
            if rc != 0:
                partial.append(where)
        print("%s: %s; %d of %d without their Lua stack, %d between calls" % (
            scenario, states, len(missing), DUMPS, between))
        assert between * 10 <= DUMPS, between
        # every one, but for rare ones: none was missing in 2,250 dumps over the three
        # builds on an idle machine; on a loaded one 2 of 50 were seen once (non-GC64,
        # FFI calls from the interpreter: being looked into)
        assert len(missing) <= MISSING_MAX, missing
        # a sample's Lua stack is always there; the native stack may rarely end early
        assert len(partial) <= DUMPS // 50, partial
        # the state the scenario is about was met, and guesses stay the exception
        assert seen, (STATE_SEEN[scenario], states)
        if scenario != "exit":   # (the exit handler's innermost frames are never known)
            assert inexacts * 100 <= 40 * DUMPS, states
        assert_running(p.pid)
    finally:
        stop(p)


def case_record_mix():
    """record on a program that splits its CPU between a table builder, a string renderer
    and FFI calls (most of it C called from JIT code: allocation, GC steps, string
    interning): each one's share of the samples within 3 points of its real CPU time
    (os.clock in the program), and errors at most 1% of the samples."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="vmstack-mix-")
    truth = os.path.join(tmp, "truth")
    p = start([luajit(), STATES, "{fd}", "mix", truth], stdin=subprocess.DEVNULL)
    try:
        wait_file(truth, p)
        with open(truth) as f:
            before = list(map(float, f.read().split()))
        out = os.path.join(tmp, "p.folded")
        rc, _, err = run(["record", "-p", str(p.pid), "-r", "499", "-d", "8", "-o", out])
        assert rc == 0, err
        with open(truth) as f:
            after = list(map(float, f.read().split()))
        m = re.search(r"^Wrote .* \((\d+) samples, (\d+) errors, \d+ late\)$", err, re.M)
        assert m, err
        samples, errors = int(m.group(1)), int(m.group(2))
        assert samples > 1000 and errors * 100 <= samples, err
        cut = re.search(r"(\d+) samples have their VM frames but a native stack cut short", err)
        assert not cut or int(cut.group(1)) * 100 <= samples, err
        names = ("build", "render", "ffi")
        ranges = [(marker_lines(STATES, "BEGIN " + n)[0], marker_lines(STATES, "END " + n)[0])
                  for n in names]
        got = [0, 0, 0]
        with open(out) as f:
            for line in f:
                stack, count = line.rsplit(" ", 1)
                for fr in stack.split(";"):
                    mm = re.fullmatch(r"fn@(.*):(\d+)", fr)
                    if mm and mm.group(1) == STATES:
                        for k, (a, b) in enumerate(ranges):
                            if a <= int(mm.group(2)) <= b:
                                got[k] += int(count)
        tot = sum(got)
        assert tot > samples * 0.9, (got, samples)
        spent = [y - x for x, y in zip(before, after)]
        want = [100.0 * v / sum(spent) for v in spent]
        share = [100.0 * v / tot for v in got]
        print("profile %s, in-process %s, %s" % ([round(v, 1) for v in share],
                                                 [round(v, 1) for v in want], err.strip()))
        for k in range(3):
            assert abs(share[k] - want[k]) <= 3.0, (names[k], share, want)
        assert_running(p.pid)
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def case_record_jp():
    """record against LuaJIT's own profiler in the same run: luajit -jp=lm0 samples the mix
    (table builder, string renderer, FFI calls) from inside while record samples it from
    outside; each work function's share (by its lines) agrees within 4 points."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="vmstack-jp-")
    jp = os.path.join(tmp, "jp.txt")
    names = ("build", "render", "ffi")
    ranges = [(marker_lines(STATES, "BEGIN " + n)[0], marker_lines(STATES, "END " + n)[0])
              for n in names]
    env = dict(os.environ)
    here = os.path.dirname(luajit())
    if os.path.isdir(os.path.join(here, "jit")):   # a build in its source tree
        env["LUA_PATH"] = os.path.join(here, "?.lua") + ";;"
    with open(jp, "w") as jpf:
        p = start([luajit(), "-jp=lm0", STATES, "{fd}", "jp", "14"], stdin=subprocess.DEVNULL,
                  stdout=jpf, env=env)
    try:
        out = os.path.join(tmp, "p.folded")
        rc, _, err = run(["record", "-p", str(p.pid), "-r", "499", "-d", "8", "-o", out])
        assert rc == 0, err
        assert_running(p.pid)
        p.wait(timeout=120)
        got = [0, 0, 0]
        with open(out) as f:
            for line in f:
                stack, count = line.rsplit(" ", 1)
                lua = [fr for fr in stack.split(";") if re.fullmatch(r".*@.*:\d+", fr)]
                mm = lua and re.fullmatch(r"fn@(.*):(\d+)", lua[-1])
                if mm and mm.group(1) == STATES:
                    for k, (a, b) in enumerate(ranges):
                        if a <= int(mm.group(2)) <= b:
                            got[k] += int(count)
        want = [0, 0, 0]
        with open(jp) as f:
            text = f.read()
        for pct, line in re.findall(r"(\d+)%\s+states\.lua:(\d+)", text):
            for k, (a, b) in enumerate(ranges):
                if a <= int(line) <= b:
                    want[k] += int(pct)
        assert sum(want) >= 90 and sum(got) > 1000, (text, got)
        share = [100.0 * v / sum(got) for v in got]
        want = [100.0 * v / sum(want) for v in want]
        print("profile %s, luajit -jp %s" % ([round(v, 1) for v in share],
                                             [round(v, 1) for v in want]))
        for k in range(3):
            assert abs(share[k] - want[k]) <= 4.0, (names[k], share, want)
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


CASES = {}
for sc in ("nested", "recurse", "sort", "vararg", "loadstring", "xpcall", "lines16", "lines32",
           "metamethod"):
    for mode, jit in (("joff", False), ("jit", True)):
        CASES["%s_%s" % (sc, mode)] = (lambda s, j: lambda: scenario_case(s, j))(sc, jit)
for sc in STATE_SCENARIOS:
    CASES["states_" + sc] = (lambda s: lambda: states_case(s))(sc)


def case_blocked():
    """Blocked in C (io.read on a pipe) below Lua frames: libc's read at the leaf, then
    the io.read builtin and the Lua callers, exact."""
    r, w = os.pipe()
    try:
        p, tb = start_lua("blocked", False, stdin=r)
        try:
            rc, doc, err = dump_json(p.pid)
            assert rc == 0, err
            t = doc["threads"][0]
            assert t["frames"][0]["module"] == "libc.so.6", t["frames"][0]
            frames = vm_frames(t)
            assert frames[0]["name"] == "read" and frames[0]["vm_kind"] == "builtin", frames[0]
            check_against_traceback(frames[1:], tb, src_line("block here"), "block")
            assert_running(p.pid)
        finally:
            stop(p)
    finally:
        os.close(r)
        os.close(w)


def case_cmodule_names():
    """A function of a stripped Lua C module (vmcmod.so) spinning in C: it has no symbol,
    so the mixed view shows it by its package.loaded name in place of its native frame
    ([vmcmod.so+0x...]), then its Lua caller at the call line; --lua-only the same."""
    cmod = os.environ.get("CMOD_DIR")
    if not cmod or not os.path.exists(os.path.join(cmod, "vmcmod.so")):
        raise Skip("vmcmod.so not built")
    src = ("package.cpath = %r .. '/?.so;' .. package.cpath\n"
           "local m = require 'vmcmod'\n"
           "local function caller(fd) m.burn(fd) end\n"
           "caller(tonumber(arg[1]))\n") % cmod
    import tempfile
    tmp = tempfile.mkdtemp(prefix="vmstack-cmod-")
    script = os.path.join(tmp, "cmod.lua")
    with open(script, "w") as f:
        f.write(src)
    p = start([luajit(), script, "{fd}"], stdin=subprocess.DEVNULL)
    try:
        for extra in ((), ("--lua-only",)):
            rc, doc, err = dump_json(p.pid, *extra)
            assert rc == 0, err
            fr = doc["threads"][0]["frames"]
            got = [(f["kind"], f["name"], f.get("vm_kind"), f.get("line")) for f in fr[:3]]
            assert got == [("vm", "vmcmod.burn", "cfunc", None), ("vm", "caller", "function", 3),
                           ("vm", "main chunk", "function", 4)], (extra, got)
            assert fr[0]["module"] == "vmcmod.so", fr[0]
        assert_running(p.pid)
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def case_hostile_names():
    """A chunk whose file name holds ESC, BEL, a newline, an invalid byte and a C1 control
    (U+009B, CSI), run by an executable whose path holds them too, in a thread that names
    itself with them (which sets the process's name as well): the text dump shows every
    one escaped, never raw, and no line is forged."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="vmstack-names-")
    bad = b"h\x1b]0;x\x07\n\xff\xc2\x9b"
    path = os.path.join(tmp.encode(), bad + b".lua")
    with open(path, "wb") as f:
        f.write(b"local ffi = require('ffi')\n"
                b"ffi.cdef('int prctl(int, const char *, ...);')\n"
                b"ffi.C.prctl(15, '\\27[2J\\nThread 1 \\194\\155')\n"   # PR_SET_NAME
                b"local w = io.open('/dev/fd/' .. arg[1], 'w') w:write('ready\\n') w:close()\n"
                b"local function spin() local x = 0 while true do x = x + 1 end end\nspin()\n")
    exe = luajit()
    with open(exe, "rb") as f:
        elf = f.read(4) == b"\x7fELF"
    if elf:
        # the executable under a hostile name (a copy: /proc/PID/exe resolves links)
        d = os.path.join(tmp.encode(), bad)
        os.mkdir(d)
        exe = os.path.join(d, b"lj\x1b[1m")
        shutil.copy(luajit(), exe)
        exe = os.fsdecode(exe)
    p = start([exe, os.fsdecode(path), "{fd}"], stdin=subprocess.DEVNULL)
    try:
        cp = subprocess.run([os.environ["VMSTACK"], "dump", "-p", str(p.pid)],
                            capture_output=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        raw = [c for c in cp.stdout if c >= 0x80 or (c < 0x20 and c != 0x0a)]
        assert not raw, cp.stdout
        # (the chunk name's control bytes escaped, not blanked)
        assert b"/h\\x1b]0;x\\x07\\x0a\\xff\\xc2\\x9b.lua:6) [luajit]" in cp.stdout, cp.stdout
        lines = cp.stdout.split(b"\n")
        assert lines[0].startswith(b'Process %d "\\x1b[2J\\x0aThread' % p.pid), lines[0]
        # (15 bytes of it: the kernel cuts a name inside the U+009B)
        assert lines[1].startswith(b'Thread %d "\\x1b[2J\\x0aThread 1 \\xc2"' % p.pid), lines[1]
        if elf:
            assert b"h\\x1b]0;x\\x07\\x0a\\xff\\xc2\\x9b/lj\\x1b[1m" in lines[0], lines[0]
        assert sum(1 for l in lines if l.startswith(b"Thread ")) == 1, cp.stdout
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def case_deep():
    """5,000 Lua calls deep: a dump shows 4,096 Lua frames, says where it cut and exits 1;
    with --max-depth 10000 every frame, exit 0."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="vmstack-deep-")
    path = os.path.join(tmp, "deep.lua")
    with open(path, "w") as f:
        f.write("local function f(n)\n"
                "  if n == 0 then\n"
                "    local w = io.open('/dev/fd/' .. arg[1], 'w') w:write('ready\\n') w:close()\n"
                "    while true do end\n"
                "  end\n"
                "  return f(n - 1) + 1\n"
                "end\n"
                "f(5000)\n")
    p = start([luajit(), path, "{fd}"], stdin=subprocess.DEVNULL)
    try:
        for extra, rc_want, want in (([], 1, 4096), (["--max-depth", "10000"], 0, 5002)):
            cp = subprocess.run([os.environ["VMSTACK"], "dump", "-p", str(p.pid)] + extra,
                                capture_output=True, text=True, timeout=120)
            assert cp.returncode == rc_want, (extra, cp.returncode, cp.stderr)
            lua = [l for l in cp.stdout.splitlines() if l.endswith("[luajit]")]
            assert len(lua) == want, (extra, len(lua))
            rc, doc, err = dump_json(p.pid, *extra)
            assert doc["threads"][0]["truncated"] == (rc_want == 1), doc["threads"][0]["truncated"]
            cut = "(luajit frames cut at the depth limit; raise --max-depth)" in cp.stdout
            assert cut == (rc_want == 1), cp.stdout[-500:]
            if not cut:
                assert lua[-1].startswith("  #") and "main chunk" in lua[-1], lua[-1]
                assert sum(1 for l in lua if ":6)" in l) == 5000, lua[:3]
        assert_running(p.pid)
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def case_locals():
    """dump -l: every Lua frame's local variables, varargs and upvalues, named and valued as
    the VM itself lists them at the same positions (debug.getlocal and debug.getupvalue in
    the fixture): strings escaped, numbers as tostring writes them, tables previewed,
    functions by where they are defined; text and JSON; with --coroutines, a suspended
    coroutine's frames too."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="vmstack-locals-")
    truth_path = os.path.join(tmp, "truth")
    fx = os.path.join(os.path.dirname(SCRIPT), "locals.lua")
    p = start([luajit(), fx, "{fd}", truth_path], stdin=subprocess.PIPE)
    try:
        rc, doc, err = dump_json(p.pid, "-l", "--coroutines")
        assert rc == 0, err
        rc, longdoc, err = dump_json(p.pid, "-l", "--max-string", "5000")
        assert rc == 0, err
        cp = subprocess.run([os.environ["VMSTACK"], "dump", "-l", "-p", str(p.pid)],
                            capture_output=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        assert_running(p.pid)
    finally:
        stop(p)
    with open(truth_path) as f:
        every = []   # (kind, linedefined, [(kind, name, value)])
        for line in f.read().splitlines():
            if line.startswith("frame ") or line.startswith("coroutine "):
                kind, n = line.split()
                every.append((kind, int(n), []))
            elif line.startswith("local "):
                name, value = line[6:].split("\t", 1)
                every[-1][2].append(("local", name, value))
            elif line.startswith("vararg\t"):
                every[-1][2].append(("vararg", "(*vararg)", line[7:]))
            else:
                name, value = line[8:].split("\t", 1)
                every[-1][2].append(("upvalue", name, value))
    shutil.rmtree(tmp, ignore_errors=True)
    blocks = [(n, v) for k, n, v in every if k == "frame"]
    coblocks = [(n, v) for k, n, v in every if k == "coroutine"]
    frames = [f for f in doc["threads"][0]["frames"]
              if f["kind"] == "vm" and f["vm_kind"] == "function"]
    assert [f["name"] for f in frames] == ["leaf", "middle", "main chunk"], frames
    for fr, (line, want) in zip(frames, blocks):
        got = [(v["kind"], v["name"], v["value"]) for v in fr.get("locals", [])]
        # (a light userdata's address, as the VM prints it, needs its segment table: the
        # type is compared)
        norm = lambda xs: [(k, n, "userdata" if v.startswith("userdata ") else v)
                           for k, n, v in xs]
        assert norm(got) == norm(want), (fr["name"], got, want)
    # the suspended coroutine: its frames' variables, as debug.getlocal(co, ...) lists them
    cos = [c for c in doc["coroutines"]
           if any(f.get("name") == "worker" for f in c["frames"])]
    assert len(cos) == 1, doc["coroutines"]
    cf = [f for f in cos[0]["frames"] if f["kind"] == "vm" and f["vm_kind"] == "function"]
    assert len(cf) == len(coblocks), (cf, coblocks)
    for fr, (line, want) in zip(cf, coblocks):
        got = [(v["kind"], v["name"], v["value"]) for v in fr.get("locals", [])]
        assert got == want, (fr["name"], got, want)
    leaf = {v["name"]: v for v in frames[0]["locals"] if v["kind"] == "local"}
    assert leaf["weight"]["type"] == "string" and leaf["weight"]["length"] == 1, leaf["weight"]
    assert leaf["long"]["length"] == 6000 and leaf["t"]["length"] == 6, (leaf["long"], leaf["t"])
    assert leaf["t"]["address"].startswith("0x"), leaf["t"]
    # large tables counted whole; a long string shown as far as --max-string says
    assert leaf["bigh"]["length"] == 600000 and leaf["biga"]["length"] == 1100000, leaf["bigh"]
    long5000 = next(v for f in longdoc["threads"][0]["frames"] for v in f.get("locals", [])
                    if v["name"] == "long")["value"]
    assert long5000 == '"' + "ab" * 2500 + '\u2026" (6000 bytes)', long5000[-40:]
    # the text form: one line per variable under its frame, nothing raw from the process
    text = cp.stdout.decode("utf-8")   # (strict: no invalid UTF-8)
    assert not [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) < 0xa0], text
    lines = text.splitlines()
    i = next(k for k, l in enumerate(lines) if " leaf (" in l)
    assert lines[i + 1] == '        node = ' + want_node(blocks), lines[i + 1]
    assert '        weight = "0"' in lines, lines
    assert any(l.startswith("        upvalues: leaf = function <") for l in lines), lines


def want_node(blocks):
    return next(v for k, n, v in blocks[0][1] if n == "node")


def case_builtin_names():
    """A builtin called by another builtin has no caller bytecode to name it (LuaJIT's own
    traceback says "[builtin#N]"): its name comes from package.loaded."""
    p, tb = start_lua("pcallsort", False)
    try:
        rc, doc, err = dump_json(p.pid)
        assert rc == 0, err
        frames = vm_frames(doc["threads"][0])
        check_against_traceback(frames, tb, src_line("spin here"), "spin")
        got = [(f["name"], f["vm_kind"]) for f in frames[2:4]]
        assert got == [("table.sort", "builtin"), ("pcall", "builtin")], got
    finally:
        stop(p)


def case_stripped():
    """Bytecode saved without debug info (luajit -b -s): frames with no lines and no names,
    but the walk goes through them, exact around them."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="vmstack-bc-")
    try:
        out = os.path.join(tmp, "mod.luac")
        src = os.path.join(os.path.dirname(SCRIPT), "stripped_mod.lua")
        # the saving interpreter must use the same frame format (GC64 or not) as the target
        lj = luajit()
        env = dict(os.environ)
        if lj.endswith("src/luajit"):
            env["LUA_PATH"] = os.path.join(os.path.dirname(lj), "?.lua") + ";;"
        elif not lj.endswith("/luajit") or "pkg-luajit2" in lj:
            lj = shutil.which("luajit")
        subprocess.run([lj, "-b", "-s", src, out], check=True, env=env)
        p, tb = start_lua("stripped", False, extra=[out])
        try:
            rc, doc, err = dump_json(p.pid)
            assert rc == 0, err
            frames = vm_frames(doc["threads"][0])
            assert frames[0]["line"] == src_line("spin here"), frames[0]
            mod = [f for f in frames if f["file"] == "@" + out]
            assert len(mod) == 3 and all(f["line"] is None for f in mod), frames
            assert frames[1:4] == mod, frames
            assert frames[-1]["name"] == "main chunk", frames[-1]
            assert frames[4]["line"] == int(tb[4].split(":")[1]), (frames[4], tb[4])
            # -l: no variable names in stripped bytecode: its slots, and that said
            rc, doc, err = dump_json(p.pid, "-l")
            assert rc == 0, err
            mod = [f for f in vm_frames(doc["threads"][0]) if f["file"] == "@" + out]
            chunk = mod[-1]["locals"]   # the module's main chunk: spin in its slot 1
            assert chunk[0] == {"kind": "note", "name": "", "type": None,
                                "value": "no variable names: stripped bytecode"}, chunk
            assert chunk[1]["name"] == "(slot 1)" and chunk[1]["type"] == "function", chunk
            assert_running(p.pid)
        finally:
            stop(p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_coroutines():
    """--coroutines: every suspended coroutine's stack, exact against LuaJIT's
    debug.traceback(co) of each."""
    p, tb = start_lua("coroutines", False)
    try:
        rc, doc, err = dump_json(p.pid, "--coroutines")
        assert rc == 0, err
        cos = doc["coroutines"]
        assert len(cos) == 3 == len(p.coroutine_tbs), (cos, p.coroutine_tbs)
        for co, ctb in zip(cos, p.coroutine_tbs):
            assert co["state"] == "suspended" and co["runtime"] == "luajit", co
            exp = expected_from_traceback(ctb)
            got = [(plain(f["name"]), plain(f["file"]), f["line"]) for f in co["frames"]]
            assert got == exp, (got, exp)
        # the running thread is unaffected, and without the option there is no list
        check_against_traceback(vm_frames(doc["threads"][0]), tb, src_line("spin here"), "spin")
        rc, doc, err = dump_json(p.pid)
        assert rc == 0 and doc["coroutines"] == [], doc["coroutines"]
        assert_running(p.pid)
    finally:
        stop(p)


def case_unknown_build():
    """A LuaJIT build no layout table describes (here: built without the JIT, so its
    GG_State has no jit_State) is refused with a clear line, never walked with the wrong
    offsets: lua-stack exits 2, vmstack dump warns and shows native frames only."""
    src = os.environ.get("LUAJIT_SRC")
    if not src:
        raise Skip("LUAJIT_SRC not set")
    cp = subprocess.run(["sh", os.environ["LUAJIT_PREPARE"], src], capture_output=True, text=True)
    if cp.returncode == 77:
        raise Skip("LuaJIT builds unavailable: " + cp.stderr.strip())
    assert cp.returncode == 0, cp.stderr[-2000:]
    builds = [d for d in os.listdir(src) if d.endswith("-luajit-nojit")]
    assert builds, os.listdir(src)
    global LUAJIT
    LUAJIT = os.path.join(src, builds[0], "src", "luajit")
    p, tb = start_lua("nested", False)
    try:
        lua_stack = os.path.join(os.path.dirname(os.environ["VMSTACK"]), "lua-stack")
        cp = subprocess.run([lua_stack, "-p", str(p.pid)], capture_output=True, text=True)
        assert cp.returncode == 2 and cp.stdout == "", (cp.returncode, cp.stdout)
        assert re.fullmatch(r"lua-stack: unsupported: LuaJIT in luajit: a build the \S+ layout "
                            r"does not fit \(no dispatch table at G\+\d+ for G=0x[0-9a-f]+\); "
                            r"it is not supported\n", cp.stderr), cp.stderr
        rc, doc, err = dump_json(p.pid)
        assert rc == 1 and "warning: LuaJIT in luajit: a build" in err, (rc, err)
        t = doc["threads"][0]
        assert all(f["kind"] == "native" for f in t["frames"]), t["frames"]
        assert t["vm_error"] == "unsupported runtime version or build", t
        assert_running(p.pid)
    finally:
        stop(p)


def case_views():
    """lua-stack: mixed by default, --lua-only keeps Lua frames, -n only native ones."""
    p, tb = start_lua("nested", False)
    try:
        rc, out, err = run(["dump", "-p", str(p.pid)])
        assert rc == 0, err
        lines = out.splitlines()
        assert re.fullmatch(r'Thread %d "luajit" \(running, luajit: interpreted\)' % p.pid,
                            lines[1]), lines[1]
        assert re.fullmatch(r"  #0  spin \(@%s:%d\) \[luajit\]" % (re.escape(SCRIPT),
                            src_line("spin here")), lines[2]), lines[2]
        assert re.match(r"  #1  leaf \(@.*stacks\.lua:\d+\) \[luajit\]", lines[3]), lines[3]
        rc2, out2, _ = run(["dump", "-p", str(p.pid)], executable=None)
        lua_stack = os.path.join(os.path.dirname(os.environ["VMSTACK"]), "lua-stack")
        cp = subprocess.run([lua_stack, "-p", str(p.pid)], capture_output=True, text=True)
        assert cp.returncode == 0 and cp.stdout == out, (cp.stderr, cp.stdout, out)
        cp = subprocess.run([lua_stack, "--lua-only", "-p", str(p.pid)], capture_output=True,
                            text=True)
        assert cp.returncode == 0, cp.stderr
        body = [l for l in cp.stdout.splitlines()[2:]]
        assert all(l.endswith("[luajit]") for l in body), body
        rc, out, err = run(["dump", "-n", "-p", str(p.pid)])
        assert rc == 0 and "[luajit]" not in out and "lua_pcall" in out, out
        assert_running(p.pid)
    finally:
        stop(p)


def case_no_lua_vm():
    """lua-stack on a process without LuaJIT: one line, exit 2."""
    p = subprocess.Popen(["sleep", "60"])
    try:
        lua_stack = os.path.join(os.path.dirname(os.environ["VMSTACK"]), "lua-stack")
        cp = subprocess.run([lua_stack, "-p", str(p.pid)], capture_output=True, text=True)
        assert cp.returncode == 2, cp
        assert cp.stderr == "lua-stack: no Lua VM found in process %d\n" % p.pid, cp.stderr
        assert cp.stdout == ""
    finally:
        stop(p)


CASES.update({k[5:]: v for k, v in globals().items() if k.startswith("case_")})

if __name__ == "__main__":
    raise SystemExit(main(CASES))
