#!/usr/bin/env python3
"""Replay corpus: each committed snapshot (tests/replay/corpus/CASE.snap.gz, made by
make-corpus.py from a live fixture, carrying the parts of the module files it used) must
replay to its golden text and JSON, on any machine: no process, no ptrace, no file of this
machine is read. Usage: test_corpus.py CASE, or test_corpus.py damaged"""
import difflib
import gzip
import os
import struct
import subprocess
import sys
import tempfile

VMSTACK = os.environ["VMSTACK"]
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def dump(*args):
    cp = subprocess.run([VMSTACK, "dump"] + list(args), capture_output=True, text=True,
                        timeout=60)
    return cp.returncode, cp.stdout, cp.stderr


def compare(case, js):
    with open(os.path.join(CORPUS, case + (".json" if js else ".txt"))) as f:
        want = f.read()
    rc, out, err = dump("--snapshot", os.path.join(CORPUS, case + ".snap.gz"), *(["-j"] if js else []))
    assert rc in (0, 1), "exit %d: %s" % (rc, err)
    if out != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), out.splitlines(True),
                                            "golden", "replay"))
        raise AssertionError("%s%s differs from its golden output:\n%s" % (case, " -j" if js else "", diff))


def sections(data):
    n, = struct.unpack_from("<I", data, 8)
    off, out = 12, []
    for _ in range(n):
        kind, nl, addr, ln = struct.unpack_from("<IIQQ", data, off)
        off += 24
        name = data[off:off + nl].decode()
        off += nl
        out.append([kind, name, addr, data[off:off + ln]])
        off += ln
    return out


def write(path, secs):
    with gzip.open(path, "wb") as f:
        f.write(b"VMSSNAP1" + struct.pack("<I", len(secs)))
        for kind, name, addr, data in secs:
            f.write(struct.pack("<IIQQ", kind, len(name), addr, len(data)) + name.encode() + data)


def case_damaged():
    """Embedded files cut short, zeroed or scrambled: a dump (frames unnamed where the file
    is unusable) or a clear error, never a crash or a read of this machine's files."""
    with gzip.open(os.path.join(CORPUS, "perlhost_two.snap.gz")) as f:
        secs = sections(f.read())
    files = [s for s in secs if s[1].startswith("vmstack.file:")]
    assert files, [s[1] for s in secs]
    tmp = tempfile.mkdtemp(prefix="vmstack-corpus-")
    try:
        for how in ("cut", "zero", "scramble", "drop"):
            out = []
            for s in secs:
                s = list(s)
                if s[1].startswith(("vmstack.file:", "vmstack.debug_file:")):
                    d = s[3]
                    if how == "cut":
                        s[3] = d[:len(d) // 3]
                    elif how == "zero":
                        s[3] = d[:64] + bytes(len(d) - 64)
                    elif how == "scramble":
                        s[3] = bytes((b * 131 + i) & 0xff for i, b in enumerate(d[:200000])) + d[200000:]
                    else:
                        continue
                out.append(s)
            path = os.path.join(tmp, how + ".snap.gz")
            write(path, out)
            rc, text, err = dump("--snapshot", path)
            assert rc in (0, 1, 2), (how, rc, err)
            assert rc == 2 or "perl-b" in text, (how, rc, text, err)
            if how in ("cut", "zero", "drop"):
                # no file to take names from: libperl's native frames stay unnamed
                assert "perl_run+" not in text and "pause+" not in text, (how, text)
    finally:
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)


def case_hermetic():
    """A replay opens the snapshot and nothing else: not the module files of this machine
    at the paths the snapshot names (they may be other builds), not debug files."""
    import shutil
    if not shutil.which("strace"):
        print("SKIP: strace is not installed")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="vmstack-corpus-")
    log = os.path.join(tmp, "trace")
    try:
        for case in ("native", "perl_debian_xs", "luajit_debian_jit"):
            snap = os.path.join(CORPUS, case + ".snap.gz")
            cp = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,stat,"
                                 "newfstatat,statx,access,readlink", "-o", log, VMSTACK, "dump",
                                 "--snapshot", snap], capture_output=True, text=True, timeout=60,
                                env=dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                                         ":detect_leaks=0"))   # (LeakSanitizer: not under ptrace)
            assert cp.returncode in (0, 1), cp.stderr
            with open(log) as f:
                calls = f.read().splitlines()
            at = [i for i, l in enumerate(calls) if snap in l]
            assert at, calls
            after = [l for l in calls[at[0] + 1:] if '"' in l and '""' not in l]
            assert not after, "%s: files touched after the snapshot:\n%s" % (case, "\n".join(after))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    case = sys.argv[1]
    try:
        if case == "damaged":
            case_damaged()
        elif case == "hermetic":
            case_hermetic()
        else:
            compare(case, False)
            compare(case, True)
    except AssertionError as e:
        print("FAIL:", e)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
