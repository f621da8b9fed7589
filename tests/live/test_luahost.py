#!/usr/bin/env python3
"""Live tests of a C host embedding the shared libluajit (fixtures/luahost/host.c): two
lua_States in two threads, lua-a spinning in Lua, lua-b blocked in read() below a
C -> Lua -> C -> Lua nesting. Per thread, the exact mixed stack: the Lua frames equal
LuaJIT's own debug.traceback() of the same stack, the C frames sit between them in order.
Usage: test_luahost.py CASE
  jit          JIT on (lua-a spins in a trace), lua-a created first
  joff         JIT off (lua-a spins in the interpreter)
  jit_b_first  JIT on, lua-b created first (its thread is walked before lua-a's)"""
import json
import os
import re
import select
import subprocess
import time

from vmtest import Skip, assert_running, main, run, stop, tid_by_name

LUAJIT_MOD = r"libluajit-5\.1\.so\.2(\.[0-9.]+)?"   # the mapped file: its real name
LIBC = "libc.so.6"


def host():
    d = os.environ.get("LUAHOST")
    if not d:
        raise Skip("LUAHOST is not set (build/fixtures/luahost)")
    path = os.path.join(d, "host")
    if not os.path.exists(path):
        raise Skip("%s not built (libluajit-5.1-dev missing?)" % path)
    return path


def start_host(flags):
    """Run the host; return (process, {thread name: traceback lines}) once it is ready.
    Protocol: per thread "thread NAME", debug.traceback's lines, "ready"; then "ready"."""
    r, w = os.pipe()
    p = subprocess.Popen([host(), str(w)] + flags, pass_fds=(w,), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL)
    os.close(w)
    buf = b""
    deadline = time.monotonic() + 10
    try:
        while True:
            tbs, done = parse(buf.decode())
            if done:
                break
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                raise AssertionError("host not ready: %r" % buf)
            chunk = os.read(r, 4096)
            if not chunk:
                raise AssertionError("host closed its ready pipe (rc %s): %r" % (p.poll(), buf))
            buf += chunk
    except BaseException:
        stop(p)
        raise
    finally:
        os.close(r)
    return p, tbs


def parse(text):
    tbs, cur, done = {}, None, False
    for line in text.split("\n")[:-1]:
        if cur is None and line.startswith("thread "):
            cur = tbs.setdefault(line[7:], [])
        elif cur is not None:
            if line == "ready":
                cur = None
            else:
                cur.append(line)
        elif line == "ready":
            done = True
    # drop debug.traceback's "stack" and "stack traceback:" lines
    return {k: [l.strip() for l in v[2:]] for k, v in tbs.items()}, done and len(tbs) == 2


def settle(pid, tid, want_syscall):
    """The thread writes its traceback just before it spins (want_syscall None) or blocks
    in that syscall: wait until the kernel shows it there, twice 5 ms apart."""
    deadline = time.monotonic() + 5
    settled = 0
    while settled < 2:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            s = f.read().split()
        want = "running" if want_syscall is None else str(want_syscall)
        settled = settled + 1 if s and s[0] == want else 0
        assert time.monotonic() < deadline, "thread %d never settled: %s" % (tid, s)
        time.sleep(0.005)


def plain(s):
    """LuaJIT's traceback drops the '@' or '=' that starts a chunk name; vmstack keeps it."""
    return re.sub(r"(^|<)[@=]", r"\1", s) if s else s


def expected_from_traceback(tb):
    """The frames LuaJIT's traceback names, innermost first: ('lua', name, file, line) or
    ('c', name) for a C function called from Lua."""
    out = []
    for l in tb:
        m = re.fullmatch(r"\[C\]: in function '([^']+)'", l)
        if m:
            out.append(("c", m.group(1)))
            continue
        m = re.fullmatch(r"(.+):(\d+): in (?:function '([^']+)'|(function <.+>)|(main chunk))", l)
        assert m, "unexpected traceback line %r (all: %s)" % (l, tb)
        path, line, name, anon, mainc = m.groups()
        out.append(("lua", name or anon or mainc, path, int(line)))
    return out


def describe(f):
    if f["kind"] == "native":
        return ("native", f["function"] or f["name"], f["module"])
    return (f["kind"], plain(f["name"]), plain(f["file"]), f["line"])


def check_frames(thread, expected):
    """expected: per frame, a tuple matched against describe(frame): strings as anchored
    regexes, anything else by equality. The frames after them must all be libc's."""
    got = [describe(f) for f in thread["frames"]]
    msg = "\ngot:      %s\nexpected: %s" % (got, expected)
    assert len(got) > len(expected), "too few frames" + msg
    for i, (g, e) in enumerate(zip(got, expected)):
        ok = len(g) == len(e) and all(
            re.fullmatch(ev, gv or "") if isinstance(ev, str) else ev == gv
            for gv, ev in zip(g, e))
        assert ok, "frame %d is %s, want %s%s" % (i, g, e, msg)
    rest = got[len(expected):]
    assert all(g[0] == "native" and g[2] == LIBC for g in rest), "below the host: %s%s" % (
        rest, msg)


def lua_part(tb_frames):
    """Expected frames for traceback entries: Lua ones as VM frames, C ones as the host's
    native frames (the mixed view keeps the native frame of a C function)."""
    out = []
    for e in tb_frames:
        if e[0] == "c":
            out.append(("native", re.escape(e[1]), "host"))
        else:
            out.append(("vm", re.escape(e[1]), re.escape(e[2]), e[3]))
    return out


BOTTOM = [("native", "lua_pcall", LUAJIT_MOD), ("native", "lua_thread", "host")]


def host_case(jit, b_first):
    flags = ([] if jit else ["joff"]) + (["b_first"] if b_first else [])
    p, tbs = start_host(flags)
    try:
        tid_a, tid_b = tid_by_name(p.pid, "lua-a"), tid_by_name(p.pid, "lua-b")
        if (tid_b < tid_a) != b_first:
            raise Skip("tids not in creation order (a %d, b %d)" % (tid_a, tid_b))
        settle(p.pid, tid_a, None)
        settle(p.pid, tid_b, 0)

        exp_a = expected_from_traceback(tbs["lua-a"])
        exp_b = expected_from_traceback(tbs["lua-b"])
        # LuaJIT's own view: the fixture is what it claims to be
        assert [e[1] for e in exp_a] == ["spin", "leaf", "mid", "top_level", "main chunk"], exp_a
        assert [e[1] for e in exp_b] == ["block", "deep", "function <host_b.lua:6>",
                                         "host_call_back", "upper", "outer", "main chunk"], exp_b
        assert all(e[2] == "script_a" for e in exp_a), exp_a

        rc, out, err = run(["dump", "-j", "-p", str(p.pid)])
        assert rc in (0, 1) and out, "vmstack dump rc %d: %s" % (rc, err)
        doc = json.loads(out)
        threads = {t["name"]: t for t in doc["threads"]}
        assert sorted(threads) == ["host", "lua-a", "lua-b"], sorted(threads)
        for name in ("lua-a", "lua-b"):
            t = threads[name]
            errs = (t["error"], t["walk_error"], t["vm_error"])
            assert errs == (None, None, None), (name, errs, [describe(f) for f in t["frames"]])

        # lua-a: spin (at the spinning line, which the traceback names) ... main chunk,
        # then lua_pcall in libluajit and the host's thread function
        check_frames(threads["lua-a"], lua_part(exp_a) + BOTTOM)
        vf = [f for f in threads["lua-a"]["frames"] if f["kind"] != "native"]
        assert (vf[0]["trace"] > 0) == jit, vf[0]
        assert all(f["trace"] == 0 for f in vf[1:]), vf

        # lua-b: read, host_block, block .. callback, host_call_back, upper .. main chunk
        check_frames(threads["lua-b"], [("native", r"(__)?(libc_)?read", LIBC),
                                        ("native", "host_block", "host")] +
                     lua_part(exp_b) + BOTTOM)

        assert rc == 0, "vmstack dump rc %d: %s" % (rc, err)

        # main: native only
        m = threads["host"]
        assert all(f["kind"] == "native" for f in m["frames"]), [describe(f) for f in m["frames"]]
        assert "main" in [f["function"] for f in m["frames"]], [describe(f) for f in m["frames"]]

        lua_stack = os.path.join(os.path.dirname(os.environ["VMSTACK"]), "lua-stack")
        cp = subprocess.run([lua_stack, "-p", str(p.pid)], capture_output=True, text=True,
                            timeout=60)
        assert cp.returncode == 0, (cp.returncode, cp.stderr, cp.stdout)
        assert re.search(r"^  #0  spin \(=script_a:\d+\)", cp.stdout, re.M), cp.stdout
        assert re.search(r"^  #2  block \(@host_b\.lua:\d+\)", cp.stdout, re.M), cp.stdout

        assert_running(p.pid, expect_spinning_tid=tid_a)
    finally:
        stop(p)


CASES = {
    "jit": lambda: host_case(True, False),
    "joff": lambda: host_case(False, False),
    "jit_b_first": lambda: host_case(True, True),
}

if __name__ == "__main__":
    raise SystemExit(main(CASES))
