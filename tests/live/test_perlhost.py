#!/usr/bin/env python3
"""Live tests of a C host embedding the shared libperl (fixtures/perlhost/host.c), the way
mod_perl does: the interpreter is found in libperl.so, not in the executable. The Perl
frames perl-stack reads must equal caller()'s view that fixtures/perl/stacks.pl writes, and
the native frames below them are libperl's perl_run and the host's own C.
Usage: test_perlhost.py CASE
  one  one interpreter in the main thread (stacks.pl nested)
  two  one interpreter in each of two threads, perl-a (nested) and perl-b (recurse); the
       main thread runs no Perl"""
import os
import re
import select
import subprocess
import time

from test_perl import SCRIPT, check_thread, parse_truth, stack_json, thread
from vmtest import Skip, assert_running, main, settle, stop, tid_by_name

LIBPERL = r"libperl\.so\.5\.\d+(\.\d+)?"   # the mapped file: its real name
LIBC = "libc.so.6"


def host():
    d = os.environ.get("PERLHOST")
    if not d:
        raise Skip("PERLHOST is not set (build/fixtures/perlhost)")
    path = os.path.join(d, "host")
    if not os.path.exists(path):
        raise Skip("%s not built (libperl-dev missing?)" % path)
    return path


def start_host(args):
    """Run the host; return (process, the text it wrote up to its final "ready")."""
    r, w = os.pipe()
    p = subprocess.Popen([host(), str(w)] + args, pass_fds=(w,), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL)
    os.close(w)
    buf = b""
    deadline = time.monotonic() + 30
    try:
        while not buf.endswith(b"ready\n"):
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
    return p, buf.decode()


def settle_tid(pid, tid):
    """The thread wrote its truth just before its spin: wait until the kernel shows it in
    user space, twice 5 ms apart."""
    deadline = time.monotonic() + 10
    seen = 0
    while seen < 2:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            s = f.read().split()
        seen = seen + 1 if s and s[0] == "running" else 0
        assert time.monotonic() < deadline, "thread %d never settled: %s" % (tid, s)
        time.sleep(0.005)


def native(f):
    return (f["function"] or f["name"] or "", f["module"] or "")


def check_mixed(t, want_perl, below):
    """The thread's Perl frames equal caller()'s; above them only libperl's C (the op being
    run, never the runops loop the Perl frames stand for); below them exactly `below`
    ((function, module regex) pairs), down to the thread's first frame."""
    vm = check_thread(t, want_perl)
    fr = t["frames"]
    first, last = fr.index(vm[0]), fr.index(vm[-1])
    assert fr[first:last + 1] == vm, [native(f) if f["kind"] == "native" else f["name"]
                                      for f in fr]
    above = [native(f) for f in fr[:first]]
    assert all(re.fullmatch(LIBPERL, m) and "runops" not in fn for fn, m in above), above
    got = [native(f) for f in fr[last + 1:]]
    ok = len(got) == len(below) and all(
        g[0] == b[0] and re.fullmatch(b[1], g[1]) for g, b in zip(got, below))
    assert ok, "below the Perl frames:\n  got  %s\n  want %s" % (got, below)


def case_one():
    p, text = start_host(["one", SCRIPT, "nested"])
    try:
        truth = parse_truth(text)
        assert list(truth) == [None], truth
        assert [w[0] for w in truth[None]] == ["main::inner", "Foo::Bar::middle",
                                               "main::outer", "main"], truth
        settle(p.pid, None)
        doc = stack_json(p.pid)
        assert [t["tid"] for t in doc["threads"]] == [p.pid], doc["threads"]
        check_mixed(thread(doc, p.pid), truth[None],
                    [("perl_run", LIBPERL), ("run_script", "host"), ("main", "host"),
                     ("__libc_start_call_main", LIBC), ("__libc_start_main", LIBC),
                     ("_start", "host")])
        # the text view names the interpreter's module and the innermost sub
        cp = subprocess.run([os.path.join(os.path.dirname(os.environ["VMSTACK"]),
                                          "perl-stack"), "-p", str(p.pid)],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, (cp.returncode, cp.stderr)
        assert re.search(r"^  #\d+  main::inner \(%s:98\) \[perl\]$" % re.escape(SCRIPT),
                         cp.stdout, re.M), cp.stdout
        assert re.search(r"^  #\d+  perl_run\+0x[0-9a-f]+ \(%s\)$" % LIBPERL, cp.stdout,
                         re.M), cp.stdout
        assert_running(p.pid, expect_spinning_tid=p.pid)
    finally:
        stop(p)


def case_two():
    p, text = start_host(["two", SCRIPT, "nested", "recurse"])
    try:
        truth = parse_truth(text)
        tid_a, tid_b = tid_by_name(p.pid, "perl-a"), tid_by_name(p.pid, "perl-b")
        assert sorted(truth) == sorted([tid_a, tid_b]), (sorted(truth), tid_a, tid_b)
        # the fixture is what it claims to be: caller() in each interpreter
        assert [w[0] for w in truth[tid_a]] == ["main::inner", "Foo::Bar::middle",
                                                "main::outer", "main"], truth[tid_a]
        assert [w[0] for w in truth[tid_b]] == ["main::recurse"] * 40 + [
            "main::recurse_outer", "main"], truth[tid_b]
        settle_tid(p.pid, tid_a)
        settle_tid(p.pid, tid_b)
        doc = stack_json(p.pid)
        assert sorted(t["tid"] for t in doc["threads"]) == sorted([p.pid, tid_a, tid_b]), \
            doc["threads"]
        for tid in (tid_a, tid_b):
            check_mixed(thread(doc, tid), truth[tid],
                        [("perl_run", LIBPERL), ("run_script", "host"),
                         ("perl_thread", "host"), ("start_thread", LIBC), ("clone3", LIBC)])
        # main holds no interpreter (PL_curinterp is perl-a's): no Perl frames there
        m = thread(doc, p.pid)
        assert all(f["kind"] == "native" for f in m["frames"]), m["frames"]
        assert [native(f) for f in m["frames"]] == [
            ("pause", LIBC), ("two", "host"), ("main", "host"),
            ("__libc_start_call_main", LIBC), ("__libc_start_main", LIBC),
            ("_start", "host")], [native(f) for f in m["frames"]]
        assert_running(p.pid, expect_spinning_tid=tid_a)
        assert_running(p.pid, expect_spinning_tid=tid_b)
    finally:
        stop(p)


CASES = {"one": case_one, "two": case_two}

if __name__ == "__main__":
    raise SystemExit(main(CASES))
