#!/usr/bin/env python3
"""Live tests of `vmstack dump` against the C fixtures (fixtures/c/threads.c): exact frame
order per thread, symbols from every kind of binary, error lines and exit codes, and the
target never left stopped. Usage: test_dump.py CASE"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from vmtest import (Skip, assert_frames, assert_running, dump_json, fixture, main, run,
                    settle, start, stop, thread_by_name, thread_states, tid_by_name)

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "c",
                   "threads.c")


def src_line(pattern):
    """Line number of the first line of threads.c matching pattern."""
    with open(SRC) as f:
        for i, line in enumerate(f, 1):
            if re.search(pattern, line):
                return i
    raise AssertionError("no line matches %r" % pattern)


# Expected frames of each thread within the fixture's own module, innermost first, with
# the source line each frame is at (the call site for callers).
EXPECTED = {
    "spinner": [("spin_c", r"spin here"), ("spin_b", r"^  spin_c\(\);"),
                ("spin_a", r"^  spin_b\(\);"), ("spinner_main", r"^  spin_a\(\);")],
    "reader": [("block_b", r"while \(read\(pipefd"), ("block_a", r"^  block_b\(\);"),
               ("reader_main", r"^  block_a\(\);")],
    "pauser": [("pause_a", r"pause here"), ("pauser_main", r"^  pause_a\(\);")],
}
# the clocker thread's leaf varies (vDSO or its own loop); case_vdso checks it


def check_threads(doc, module, lines=True, names=True):
    leader = doc["threads"][0]
    assert leader["tid"] == doc["pid"], "first thread must be the leader"
    for tname, exp in EXPECTED.items():
        t = thread_by_name(doc, tname)
        assert t["error"] is None, t
        assert t["walk_error"] is None and not t["truncated"], (tname, t["walk_error"])
        own = [f for f in t["frames"] if f["module"] == module]
        assert len(own) == len(exp), "%s: frames in %s: %s" % (tname, module,
                                                             [f["name"] for f in own])
        # our frames are contiguous, and the blocked threads sit in libc below them
        first = t["frames"].index(own[0])
        if tname != "spinner":
            assert first >= 1 and all(f["module"] == "libc.so.6" for f in t["frames"][:first]), \
                (tname, [f["name"] for f in t["frames"]])
        else:
            assert first == 0, [f["name"] for f in t["frames"]]
        for f, (fn, pat) in zip(own, exp):
            if names:
                assert f["function"] == fn, "%s: got %s want %s" % (tname, f["function"], fn)
            if lines:
                assert f["file"] and f["file"].endswith("threads.c"), f
                assert f["line"] == src_line(pat), "%s: %s line %s, want %d" % (
                    tname, fn, f["line"], src_line(pat))
        # below our frames: libc's thread start, and nothing after it
        rest = t["frames"][first + len(own):]
        assert rest and all(f["module"] == "libc.so.6" for f in rest), [f["name"] for f in rest]
    if names:
        assert_frames(leader, [r"main_wait", r"main"], module=module)


def stacks(binary, **kw):
    p = start([fixture(binary), "{fd}"])
    try:
        rc, doc, err = dump_json(p.pid)
        assert rc == 0, err
        assert doc["pid"] == p.pid and doc["ns_pid"] == p.pid
        assert len(doc["threads"]) == 5, [t["name"] for t in doc["threads"]]
        check_threads(doc, kw.pop("module", binary), **kw)
        spinner = thread_by_name(doc, "spinner")["tid"]
        assert_running(p.pid, spinner)
    finally:
        stop(p)


def case_pie():
    stacks("threads-pie")


def case_nopie():
    stacks("threads-nopie")


def case_stripped_debuglink():
    """Stripped binary whose names and lines come from the .gnu_debuglink debug file."""
    stacks("threads-pie-stripped-link")


def nm_ranges(binary):
    """{function: (start, end)} from the unstripped binary's symbol table."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT":
            res[parts[3]] = (int(parts[0], 16), int(parts[0], 16) + int(parts[1], 16))
    return res


def case_stripped_bare():
    """No symbols at all: frames are [module+0xoff] at the right addresses, walk still
    complete thanks to .eh_frame."""
    ranges = nm_ranges(fixture("threads-nopie"))
    p = start([fixture("threads-nopie-stripped"), "{fd}"])
    try:
        rc, doc, err = dump_json(p.pid)
        assert rc == 0, err
        for tname, exp in EXPECTED.items():
            t = thread_by_name(doc, tname)
            own = [f for f in t["frames"] if f["module"] == "threads-nopie-stripped"]
            assert len(own) == len(exp), (tname, [f["name"] for f in t["frames"]])
            for i, (f, (fn, _)) in enumerate(zip(own, exp)):
                assert f["function"] is None, f
                off = int(f["module_offset"], 16) - (0 if i == 0 and tname == "spinner" else 1)
                lo, hi = ranges[fn]
                assert lo <= off < hi, "%s: %s at %#x not in %s [%#x,%#x)" % (
                    tname, f["name"], off, fn, lo, hi)
                assert re.fullmatch(r"\[threads-nopie-stripped\+0x[0-9a-f]+\]", f["name"]), f
        assert_running(p.pid)
    finally:
        stop(p)


def host_child(parent_pid, timeout=10):
    path = "/proc/%d/task/%d/children" % (parent_pid, parent_pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path) as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.01)
    raise AssertionError("no child of %d" % parent_pid)


def case_namespace():
    """Target in its own pid and mount namespace, its binary's path hidden by a bind
    mount, symbols only in a build-id debug file inside its namespace."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        raise Skip("needs root, unshare and nsenter")
    tmp = tempfile.mkdtemp(prefix="vmstack-ns-")
    try:
        bindir = os.path.join(tmp, "bin")
        os.makedirs(bindir)
        exe = os.path.join(bindir, "nsfix")
        shutil.copy(fixture("threads-nopie-stripped"), exe)
        bid = subprocess.run(["readelf", "-n", exe], capture_output=True, text=True,
                             check=True).stdout
        m = re.search(r"Build ID: ([0-9a-f]+)", bid)
        assert m, "fixture has no build-id"
        bid = m.group(1)
        dbgroot = os.path.join(tmp, "debug")
        d = os.path.join(dbgroot, ".build-id", bid[:2])
        os.makedirs(d)
        shutil.copy(fixture("threads-nopie.debug"), os.path.join(d, bid[2:] + ".debug"))
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        os.makedirs("/usr/lib/debug", exist_ok=True)
        sh = "mount --bind %s /usr/lib/debug && exec %s {fd}" % (dbgroot, exe)
        try:
            p = start(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount",
                       "--propagation", "private", "sh", "-c", sh])
        except AssertionError as e:
            raise Skip("cannot create namespaces here: %s" % e)
        pid = None
        try:
            pid = host_child(p.pid)
            # hide the binary's path inside the target's namespace
            subprocess.run(["nsenter", "-t", str(pid), "-m", "mount", "--bind", empty, bindir],
                           check=True)
            rc, doc, err = dump_json(pid)
            assert rc == 0, err
            assert doc["pid"] == pid and doc["ns_pid"] == 1, (doc["pid"], doc["ns_pid"])
            check_threads(doc, "nsfix", lines=True)
            for t in doc["threads"]:
                assert t["ns_tid"] and t["ns_tid"] != t["tid"], t
            rc, out, err = run(["dump", "-p", str(pid)])
            assert "(pid 1 in its namespace)" in out.splitlines()[0], out.splitlines()[0]
            assert_running(pid)
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
            stop(p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_deleted_binary():
    """The binary was deleted after start: symbols still come from the mapped file."""
    tmp = tempfile.mkdtemp(prefix="vmstack-del-")
    try:
        exe = os.path.join(tmp, "delfix")
        shutil.copy(fixture("threads-pie"), exe)
        p = start([exe, "{fd}"])
        os.unlink(exe)
        try:
            rc, doc, err = dump_json(p.pid)
            assert rc == 0, err
            check_threads(doc, "delfix")
            assert doc["exe"].endswith("(deleted)"), doc["exe"]
            assert_running(p.pid)
        finally:
            stop(p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_vdso():
    """A thread inside the vDSO (clock_gettime) unwinds through the vDSO's own CFI."""
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        for _ in range(100):
            rc, doc, err = dump_json(p.pid)
            t = thread_by_name(doc, "clocker")
            if t["frames"][0]["module"] == "[vdso]":
                break
        else:
            raise AssertionError("clocker never caught in the vDSO: %s" % t["frames"])
        names = [f["name"] for f in t["frames"]]
        assert t["frames"][0]["function"] and "clock_gettime" in t["frames"][0]["function"], names
        assert t["walk_error"] is None, t["walk_error"]
        assert_frames(t, ["clock_a", "clocker_main"], module="threads-pie")
        own = [f for f in t["frames"] if f["module"] == "threads-pie"]
        assert own[0]["line"] == src_line("clock here"), own[0]
        assert not any(f["no_cfi"] for f in t["frames"]), names
    finally:
        stop(p)


def case_nocfi():
    """Inner frames built without unwind tables: the frame-pointer chain carries the walk
    (and says so), back into frames with CFI, to the natural end of the stack."""
    p = start([fixture("nocfi"), "{fd}"])
    try:
        settle(p.pid, None)   # "ready" is written just before the spin
        rc, doc, err = dump_json(p.pid)
        assert rc == 0, err
        t = doc["threads"][0]
        assert t["walk_error"] is None, t["walk_error"]
        assert_frames(t, ["nocfi_b", "nocfi_a", "with_cfi", "main"], module="nocfi")
        flags = [(f["name"], f["no_cfi"]) for f in t["frames"][:4]]
        assert flags == [("nocfi_b", False), ("nocfi_a", True), ("with_cfi", True),
                         ("main", False)], flags
        assert t["frames"][0]["line"] == 12 and t["frames"][0]["file"].endswith("nocfi_part.c")
        assert_running(p.pid)
    finally:
        stop(p)


def case_thread_churn():
    """Threads start and exit while the dump runs: those that vanish are shown as exited,
    never as errors, and the process runs on, untraced."""
    p = start([fixture("churn"), "{fd}"])
    try:
        seen_exited = 0
        for _ in range(30):
            rc, doc, err = dump_json(p.pid)
            assert doc["threads"][0]["tid"] == p.pid
            for t in doc["threads"][1:]:
                if t["state"] == "exited":
                    seen_exited += 1
                    continue
                assert t["error"] is None, t
                names = [f["name"] for f in t["frames"]]
                if t["walk_error"] is None:
                    assert t["frames"][-1]["module"] == "libc.so.6", names
                else:
                    # a thread caught in its first instructions (clone3 in the child, before
                    # its first frame) has stale data where a return address would be: the
                    # walk must stop there, not wander through it
                    assert t["walk_error"] == "return address outside executable code", t
                    assert len(names) <= 3 and names[0] in ("clone3", "start_thread"), names
            assert rc == (1 if any(t["walk_error"] for t in doc["threads"]) else 0), (rc, err)
        assert_running(p.pid)
        print("threads seen exiting mid-dump: %d" % seen_exited)
    finally:
        stop(p)


def case_text():
    """The text form carries the same stacks in the documented shape."""
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        rc, out, err = run(["dump", "-p", str(p.pid)])
        assert rc == 0, err
        assert " at " not in out, "file:line only with -s"
        rc, out, err = run(["dump", "-s", "-p", str(p.pid)])
        assert rc == 0, err
        lines = out.splitlines()
        assert re.fullmatch(r'Process %d "threads-pie" .*/threads-pie' % p.pid, lines[0]), lines[0]
        i = next(i for i, l in enumerate(lines) if '"spinner"' in l)
        assert re.fullmatch(r'Thread \d+ "spinner" \(running\)', lines[i]), lines[i]
        assert re.fullmatch(r'  #0  spin_c\+0x[0-9a-f]+ \(threads-pie\) at \S*threads\.c:%d'
                            % src_line("spin here"), lines[i + 1]), lines[i + 1]
        assert re.match(r'  #1  spin_b\+0x[0-9a-f]+ \(threads-pie\)', lines[i + 2]), lines[i + 2]
        i = next(i for i, l in enumerate(lines) if '"reader"' in l)
        assert re.fullmatch(r'Thread \d+ "reader" \(sleeping\)', lines[i]), lines[i]
        assert_running(p.pid)
    finally:
        stop(p)


def case_truncated():
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        rc, doc, err = dump_json(p.pid, "--max-depth", "2")
        assert rc == 1, "truncation is a partial result (exit 1), got %d" % rc
        t = thread_by_name(doc, "spinner")
        assert t["truncated"] and len(t["frames"]) == 2, t
        rc, out, _ = run(["dump", "-p", str(p.pid), "--max-depth", "2"])
        assert "(truncated at 2 frames; raise --max-depth)" in out, out
    finally:
        stop(p)


def case_group_stopped():
    """A process stopped with SIGSTOP is shown and stays stopped (job control intact)."""
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        os.kill(p.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while set(thread_states(p.pid).values()) != {"T"}:
            assert time.monotonic() < deadline, thread_states(p.pid)
            time.sleep(0.01)
        rc, doc, err = dump_json(p.pid)
        assert rc == 0, err
        assert_frames(thread_by_name(doc, "spinner"), ["spin_c", "spin_b", "spin_a"],
                      module="threads-pie")
        time.sleep(0.2)
        assert set(thread_states(p.pid).values()) == {"T"}, thread_states(p.pid)
        os.kill(p.pid, signal.SIGCONT)
        assert_running(p.pid, thread_by_name(doc, "spinner")["tid"])
    finally:
        stop(p)


# -- errors ------------------------------------------------------------------------------

def expect_error(args, code, pattern):
    rc, out, err = run(args)
    assert rc == code, "exit %d, want %d (%s)" % (rc, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, "want one error line, got %r" % err
    assert re.search(pattern, lines[0]), "%r does not match /%s/" % (lines[0], pattern)
    assert out == "", out


def case_no_such_pid():
    p = subprocess.Popen(["true"])
    p.wait()   # reaped: the pid is free now
    expect_error(["dump", "-p", str(p.pid)], 2, r"^vmstack: no such process: %d$" % p.pid)


def case_kernel_thread():
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        flags = int(s[s.rindex(")") + 2:].split()[6])
        if flags & 0x00200000:
            expect_error(["dump", "-p", d], 2, r"is a kernel thread")
            return
    raise Skip("no kernel thread visible in this pid namespace")


def case_permission_denied():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        raise Skip("needs root and setpriv to run vmstack as another user")
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        tmp = tempfile.mkdtemp(prefix="vmstack-perm-")
        os.chmod(tmp, 0o755)
        exe = os.path.join(tmp, "vmstack")
        shutil.copy(os.environ["VMSTACK"], exe)
        os.chmod(exe, 0o755)
        cp = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "--inh-caps=-all", exe, "dump", "-p", str(p.pid)],
                            capture_output=True, text=True, timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
        assert cp.returncode == 2, (cp.returncode, cp.stderr)
        lines = cp.stderr.strip().splitlines()
        assert len(lines) == 1, cp.stderr
        assert re.match(r"vmstack: cannot attach to %d: (Operation not permitted|Permission "
                        r"denied) \(.*CAP_SYS_PTRACE.*\)$" % p.pid, lines[0]), lines[0]
        assert_running(p.pid)
    finally:
        stop(p)


def case_already_traced():
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        tr = start([fixture("tracer"), str(p.pid), "{fd}"])
        try:
            expect_error(["dump", "-p", str(p.pid)], 2,
                         r"^vmstack: cannot attach to %d: it is already traced by another "
                         r"process" % p.pid)
        finally:
            stop(tr)
        assert_running(p.pid)
    finally:
        stop(p)


def case_usage():
    for args, pat in [
        (["dump"], r"no target: give -p PID"),
        (["dump", "-p", "abc"], r"invalid PID 'abc'"),
        (["dump", "-p", "-5"], r"invalid PID '-5'"),
        (["dump", "-p", "5x"], r"invalid PID '5x'"),
        (["dump", "-p", "99999999999"], r"invalid PID"),
        (["dump", "-p", "1", "--max-depth", "0"], r"invalid --max-depth '0'"),
        (["dump", "-p", "1", "--bogus"], r"unknown option '--bogus'"),
        (["dump", "-p"], r"option '-p' needs a value"),
        (["dump", "-p", "1", "extra"], r"unexpected argument 'extra'"),
        (["frobnicate"], r"unknown verb 'frobnicate'"),
    ]:
        expect_error(args, 64, pat)
    rc, out, err = run(["--help"])
    assert rc == 0 and "Exit status:" in out and "64  usage error" in out, out


# -- the target outlives whatever happens to vmstack ------------------------------------

def held_dump(extra_env, sig=None):
    """Run dump with its test seam holding a thread stopped; deliver sig meanwhile."""
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        env = dict(os.environ, VMSTACK_TEST_HOLD_MS="20000", **extra_env)
        vm = subprocess.Popen([os.environ["VMSTACK"], "dump", "-p", str(p.pid)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if sig is not None:
            deadline = time.monotonic() + 10
            while "t" not in thread_states(p.pid).values():
                assert time.monotonic() < deadline, "vmstack never stopped a thread"
                assert vm.poll() is None, vm.communicate()
                time.sleep(0.005)
            vm.send_signal(sig)
        out, err = vm.communicate(timeout=30)
        assert_running(p.pid, tid_by_name(p.pid, "spinner"))
        return vm.returncode, out, err
    finally:
        stop(p)


def case_sigint_while_stopped():
    rc, out, err = held_dump({}, signal.SIGINT)
    assert rc == 1 and "interrupted" in err, (rc, err)


def case_sigterm_while_stopped():
    rc, out, err = held_dump({}, signal.SIGTERM)
    assert rc == 1 and "interrupted" in err, (rc, err)


def case_sigkill_while_stopped():
    rc, out, err = held_dump({}, signal.SIGKILL)
    assert rc == -signal.SIGKILL, rc


def case_crash_while_stopped():
    rc, out, err = held_dump({"VMSTACK_TEST_CRASH": "1"})
    assert rc == -signal.SIGSEGV, (rc, err)


def case_target_exits():
    """The target dies while vmstack holds one of its threads: one clear line, exit 2."""
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        env = dict(os.environ, VMSTACK_TEST_HOLD_MS="300")
        vm = subprocess.Popen([os.environ["VMSTACK"], "dump", "-p", str(p.pid)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while "t" not in thread_states(p.pid).values():
            assert time.monotonic() < deadline, "vmstack never stopped a thread"
            time.sleep(0.005)
        p.kill()
        out, err = vm.communicate(timeout=30)
        assert vm.returncode == 2, (vm.returncode, err)
        assert err.strip() == "vmstack: target %d exited while being read" % p.pid, err
    finally:
        stop(p)


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}

if __name__ == "__main__":
    raise SystemExit(main(CASES))
