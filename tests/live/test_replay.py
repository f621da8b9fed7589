#!/usr/bin/env python3
"""Replay: `dump --save-snapshot FILE` on a live fixture keeps what the walk read (memory,
registers, maps); `dump --snapshot FILE` after the fixture is gone gives the same output,
text and JSON, without any process to attach to. Usage: test_replay.py CASE"""
import json
import os
import subprocess
import tempfile

import test_luajit
from vmtest import fixture, main, start, stop

VMSTACK = os.environ["VMSTACK"]
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.normpath(os.path.join(HERE, "..", "..", "fixtures"))


def dump(*args):
    cp = subprocess.run([VMSTACK, "dump"] + list(args), capture_output=True, text=True,
                        timeout=60)
    return cp.returncode, cp.stdout, cp.stderr


def roundtrip(argv, *extra, check=None):
    """Save a snapshot of argv's process (text, then JSON), stop it, replay both."""
    tmp = tempfile.mkdtemp(prefix="vmstack-replay-")
    snaps = [os.path.join(tmp, "a.snap"), os.path.join(tmp, "b.snap")]
    p = start(argv, stdin=subprocess.DEVNULL)
    try:
        live = [dump("-p", str(p.pid), "--save-snapshot", snaps[0], *extra),
                dump("-p", str(p.pid), "--save-snapshot", snaps[1], "-j", *extra)]
    finally:
        stop(p)
    try:
        for (rc, out, err), snap, js in zip(live, snaps, ("", "-j")):
            assert rc in (0, 1), err
            assert os.path.getsize(snap) > 0
            args = ["--snapshot", snap] + ([js] if js else []) + list(extra)
            rrc, rout, rerr = dump(*args)
            assert (rrc, rout) == (rc, out), "live rc %d, replay rc %d %s\nlive:\n%s\nreplay:\n%s" % (
                rc, rrc, rerr, out, rout)
            if js and check:
                check(json.loads(rout))
    finally:
        for s in snaps:
            if os.path.exists(s):
                os.unlink(s)
        os.rmdir(tmp)


def vm_names(doc):
    return [f["name"] for t in doc["threads"] for f in t["frames"] if f["kind"] == "vm"]


def case_native():
    """A C program's five threads (running, blocked in read, in pause, in the vDSO)."""
    def check(doc):
        names = [t["name"] for t in doc["threads"]]
        assert "spinner" in names and "clocker" in names, names
        assert all(t["walk_error"] is None for t in doc["threads"]), doc["threads"]
    roundtrip([fixture("threads-pie"), "{fd}"], check=check)


def case_luajit_jit():
    """LuaJIT in a JIT trace calling C (allocation, GC steps): the walk reads traces,
    cframes and the Lua stack from the snapshot alone."""
    def check(doc):
        assert "fn" in vm_names(doc) and "main chunk" in vm_names(doc), vm_names(doc)
    roundtrip([test_luajit.luajit(), test_luajit.STATES, "{fd}", "tab"], check=check)


def case_luajit_coroutines():
    """Suspended coroutines (--coroutines) read from the snapshot."""
    def check(doc):
        assert doc["coroutines"], doc
    roundtrip([test_luajit.luajit(), test_luajit.SCRIPT, "{fd}", "coroutines"],
              "--coroutines", check=check)


def case_perl():
    """Perl's context stack and names (XS subs included) from the snapshot."""
    def check(doc):
        assert "main" in vm_names(doc), vm_names(doc)
    roundtrip(["perl", os.path.join(FIX, "perl", "stacks.pl"), "{fd}", "xs_callback"],
              check=check)


def case_bad():
    """Not a snapshot, or no such file: one line, exit 2; -p with --snapshot: usage."""
    tmp = tempfile.mkdtemp(prefix="vmstack-replay-")
    try:
        bad = os.path.join(tmp, "bad")
        with open(bad, "w") as f:
            f.write("not a snapshot\n")
        for path, msg in ((bad, "not a vmstack snapshot"),
                          (os.path.join(tmp, "none"), "No such file")):
            rc, out, err = dump("--snapshot", path)
            assert rc == 2 and not out and msg in err and len(err.splitlines()) == 1, (rc, err)
        rc, out, err = dump("--snapshot", bad, "-p", "1")
        assert rc == 64 and "exclude" in err, (rc, err)
    finally:
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)


def case_options():
    """What decides the reads (--stack-bytes, --max-depth) is kept in the snapshot: a replay
    without them reads the same; the file is its owner's only."""
    roundtrip([fixture("threads-pie"), "{fd}"], "--stack-bytes", "4096", "--max-depth", "3")
    tmp = tempfile.mkdtemp(prefix="vmstack-replay-")
    snap = os.path.join(tmp, "o.snap")
    p = start([fixture("threads-pie"), "{fd}"], stdin=subprocess.DEVNULL)
    try:
        rc, live, err = dump("-p", str(p.pid), "--save-snapshot", snap, "--max-depth", "2")
    finally:
        stop(p)
    try:
        assert rc == 1 and os.stat(snap).st_mode & 0o777 == 0o600, (rc, err, oct(os.stat(snap).st_mode))
        rrc, replay, rerr = dump("--snapshot", snap)
        assert (rrc, replay) == (rc, live), (rrc, rerr, replay)
    finally:
        os.unlink(snap)
        os.rmdir(tmp)


def case_other_build():
    """A module file replaced by another build after the snapshot (same path, other
    build-id) is not used at replay: its frames stay unnamed rather than named wrong."""
    import shutil
    tmp = tempfile.mkdtemp(prefix="vmstack-replay-")
    exe = os.path.join(tmp, "threads-pie")
    shutil.copy(fixture("threads-pie"), exe)
    snap = os.path.join(tmp, "b.snap")
    p = start([exe, "{fd}"], stdin=subprocess.DEVNULL)
    try:
        rc, live, err = dump("-p", str(p.pid), "--save-snapshot", snap)
    finally:
        stop(p)
    try:
        assert rc == 0 and "spin_c+0x" in live, (rc, err, live)
        rc, same, err = dump("--snapshot", snap)
        assert same == live, same
        os.unlink(exe)
        shutil.copy(fixture("tracer"), exe)   # another program at the same path
        rc, out, err = dump("--snapshot", snap)
        assert rc in (0, 1), (rc, err)
        assert "spin_c" not in out and "[threads-pie+0x" in out, out
        named = [l for l in out.splitlines() if "(threads-pie)" in l]
        assert not named, named
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def case_embedded():
    """--embed-files: a replay shows what the live dump showed with the files it used
    carried in the snapshot, also once the program's own file is gone (C; Perl with XS)."""
    import shutil
    tmp = tempfile.mkdtemp(prefix="vmstack-replay-")
    try:
        exe = os.path.join(tmp, "threads-pie")
        shutil.copy(fixture("threads-pie"), exe)
        for argv in ([exe, "{fd}"],
                     ["perl", os.path.join(FIX, "perl", "stacks.pl"), "{fd}", "xs_callback"]):
            snap = os.path.join(tmp, "e.snap.gz")
            p = start(argv, stdin=subprocess.DEVNULL)
            try:
                rc, live, err = dump("-p", str(p.pid), "--save-snapshot", snap, "--embed-files")
            finally:
                stop(p)
            assert rc == 0, err
            if argv[0] == exe:
                os.unlink(exe)   # the replay must not need it
                assert "spin_c+0x" in live and "sigsuspend+0x" in live, live
            with open(snap, "rb") as f:
                assert f.read(2) == b"\x1f\x8b", "not gzip-compressed"
            rrc, replay, rerr = dump("--snapshot", snap)
            assert (rrc, replay) == (rc, live), "live:\n%s\nreplay:\n%s%s" % (live, replay, rerr)
            os.unlink(snap)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sections(path):
    """A snapshot's sections: [(kind, name, addr, data)]."""
    import struct
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"VMSSNAP1"
    n, = struct.unpack_from("<I", b, 8)
    off, out = 12, []
    for _ in range(n):
        kind, nl, addr, ln = struct.unpack_from("<IIQQ", b, off)
        off += 24
        name = b[off:off + nl].decode()
        off += nl
        out.append((kind, name, addr, b[off:off + ln]))
        off += ln
    return out


def write_sections(path, secs):
    import struct
    with open(path, "wb") as f:
        f.write(b"VMSSNAP1" + struct.pack("<I", len(secs)))
        for kind, name, addr, data in secs:
            f.write(struct.pack("<IIQQ", kind, len(name), addr, len(data)))
            f.write(name.encode() + data)


def case_hostile():
    """Crafted snapshots: cut short, or whose maps name a FIFO and a device where a library
    was: a clear error or a dump, never a hang."""
    tmp = tempfile.mkdtemp(prefix="vmstack-replay-")
    snap = os.path.join(tmp, "h.snap")
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    p = start([fixture("threads-pie"), "{fd}"], stdin=subprocess.DEVNULL)
    try:
        rc, live, err = dump("-p", str(p.pid), "--save-snapshot", snap)
        assert rc == 0, err
    finally:
        stop(p)
    try:
        with open(snap, "rb") as f:
            whole = f.read()
        cut = os.path.join(tmp, "cut.snap")
        with open(cut, "wb") as f:
            f.write(whole[:len(whole) // 2])
        rc, out, err = dump("--snapshot", cut)
        assert rc == 2 and "not a vmstack snapshot" in err, (rc, err)
        secs = sections(snap)
        crafted = []
        for kind, name, addr, data in secs:
            if name == "vmstack.maps":
                data += (b"7f0000000000-7f0000001000 r-xp 00000000 08:01 4242 %s\n"
                         b"7f0000002000-7f0000003000 r-xp 00000000 08:01 4243 /dev/zero\n"
                         % fifo.encode())
            crafted.append((kind, name, addr, data))
        bad = os.path.join(tmp, "fifo.snap")
        write_sections(bad, crafted)
        rc, out, err = dump("--snapshot", bad)   # (run() times out after 60 s)
        assert rc in (0, 1) and "Thread" in out, (rc, err)
    finally:
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}

if __name__ == "__main__":
    raise SystemExit(main(CASES))
