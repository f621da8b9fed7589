"""Shared helpers for live tests: start fixtures that signal ready, run vmstack, check
that targets are never left stopped. A failed precondition is a skip (exit 77)."""
import json
import os
import re
import signal
import subprocess
import sys
import time

SKIP = 77
VMSTACK = os.environ.get("VMSTACK", "vmstack")
FIXTURES = os.environ.get("FIXTURES", ".")


class Skip(Exception):
    pass


def fixture(name):
    return os.path.join(FIXTURES, name)


def start(argv, ready_timeout=20, **kw):
    """Start argv with a pipe whose write end number is substituted for '{fd}' in argv;
    return the Popen once the child wrote 'ready'."""
    r, w = os.pipe()
    argv = [a.replace("{fd}", str(w)) for a in argv]
    # fixtures must not hold the test's stdout: a stray one would keep the runner waiting
    kw.setdefault("stdout", subprocess.DEVNULL)
    p = subprocess.Popen(argv, pass_fds=(w,), **kw)
    os.close(w)
    deadline = time.monotonic() + ready_timeout
    buf = b""
    os.set_blocking(r, False)
    while b"ready" not in buf:
        if time.monotonic() > deadline or p.poll() is not None:
            p.kill()
            raise AssertionError("fixture %s did not become ready (%r)" % (argv, buf))
        try:
            chunk = os.read(r, 64)
            if not chunk:
                p.kill()
                raise AssertionError("fixture %s closed its ready pipe" % argv)
            buf += chunk
        except BlockingIOError:
            import select
            select.select([r], [], [], 0.05)
    os.close(r)
    return p


def wait_file(path, p, timeout=20):
    """Wait until the fixture p (still running) has written path (e.g. its truth file)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline and p.poll() is None, "no %s from %s" % (path, p.args)
        time.sleep(0.01)


def settle(pid, want_syscall):
    """ready() is written just before the fixture enters its final state: wait until the
    kernel shows it there (in user space for a spin, in read(2) when blocked)."""
    deadline = time.monotonic() + 10
    settled = 0
    while settled < 2:
        with open("/proc/%d/syscall" % pid) as f:
            s = f.read().split()
        if (want_syscall is None and s and s[0] == "running") or \
           (want_syscall is not None and s and s[0] == str(want_syscall)):
            settled += 1    # twice, 5 ms apart: not just between two syscalls of ready()
        else:
            settled = 0
        assert time.monotonic() < deadline, "fixture never settled: %s" % s
        time.sleep(0.005)


def stop(p):
    if p.poll() is None:
        p.kill()
    p.wait()


def run(args, timeout=60, **kw):
    """Run vmstack with args; return (exit code, stdout, stderr)."""
    cp = subprocess.run([VMSTACK] + args, capture_output=True, text=True, timeout=timeout, **kw)
    return cp.returncode, cp.stdout, cp.stderr


def dump_json(pid, *extra):
    rc, out, err = run(["dump", "-j", "-s", "-p", str(pid)] + list(extra))
    if rc not in (0, 1):
        raise AssertionError("dump failed rc=%d: %s" % (rc, err))
    return rc, json.loads(out), err


def thread_states(pid):
    """{tid: state letter} for every thread of pid."""
    res = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except FileNotFoundError:
        return res
    for t in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                s = f.read()
            res[int(t)] = s[s.rindex(")") + 2]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return res


def tid_by_name(pid, name):
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
            if f.read().strip() == name:
                return int(t)
    raise AssertionError("no thread %r in %d" % (name, pid))


def tracer_pid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def assert_running(pid, expect_spinning_tid=None):
    """The target must not be left in a ptrace-stop ('t') nor traced by anyone; a spinning
    thread must still make progress."""
    states = thread_states(pid)
    assert states, "target %d is gone" % pid
    stuck = [t for t, s in states.items() if s in "tT"]
    assert not stuck, "threads left stopped: %s (%s)" % (stuck, states)
    assert tracer_pid(pid) == 0, "target still traced by %d" % tracer_pid(pid)
    if expect_spinning_tid:
        def utime():
            with open("/proc/%d/task/%d/stat" % (pid, expect_spinning_tid)) as f:
                s = f.read()
            return int(s[s.rindex(")") + 2:].split()[11])
        a = utime()
        deadline = time.monotonic() + 5
        while utime() == a:
            assert time.monotonic() < deadline, "spinning thread makes no progress"
            time.sleep(0.02)


def thread_by_name(doc, name):
    for t in doc["threads"]:
        if t["name"] == name:
            return t
    raise AssertionError("no thread named %r in %s" % (name, [t["name"] for t in doc["threads"]]))


def functions(thread):
    return [f["function"] or f["name"] for f in thread["frames"]]


def assert_frames(thread, expected, module=None):
    """expected: list of regexes, matched in order against the frames whose module is
    `module` (all frames when None), anchored; the sequence must be contiguous."""
    frames = thread["frames"]
    if module:
        frames = [f for f in frames if f["module"] == module]
    names = [f["function"] or f["name"] for f in frames]
    assert len(names) >= len(expected), "too few frames: %s, want %s" % (names, expected)
    for i, (n, rx) in enumerate(zip(names, expected)):
        assert re.fullmatch(rx, n), "frame %d is %r, want /%s/ (stack %s)" % (i, n, rx, names)


def main(cases):
    """Run the case named by argv[1]."""
    name = sys.argv[1] if len(sys.argv) > 1 else None
    if name not in cases:
        print("cases: " + " ".join(sorted(cases)))
        return 2
    try:
        cases[name]()
    except Skip as e:
        print("SKIP: %s" % e)
        return SKIP
    print("ok")
    return 0
