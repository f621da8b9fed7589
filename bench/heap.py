#!/usr/bin/env python3
"""Heap snapshot benchmark: for a LuaJIT heap of small tables and a Perl hash of arrays, at
about 100 MiB and 1 GiB: the pause (all threads stopped) against a raw process_vm_readv copy
of the same writable memory read here (the floor any copy has), vmstack's end-to-end time,
its analysis rate and its peak RSS against the heap size. JSON lines on stdout.
Usage: bench/heap.py BUILD_DIR [SIZES_MIB...]   (default 100 1024)"""
import ctypes
import json
import os
import tempfile
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
libc = ctypes.CDLL(None, use_errno=True)


class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def raw_copy(pid):
    """Seconds to read the writable private mappings of pid with one process_vm_readv per
    64 MiB (as vmstack does), and the bytes read."""
    ranges = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            perms, path = parts[1], parts[5] if len(parts) > 5 else ""
            if perms[:2] != "rw" or perms[3] == "s" or (path.startswith("[") and path != "[heap]"):
                continue
            a, b = (int(x, 16) for x in parts[0].split("-"))
            ranges.append((a, b - a))
    chunk = 64 << 20
    buf = ctypes.create_string_buffer(chunk)
    total = 0
    t0 = time.perf_counter()
    for a, n in ranges:
        off = 0
        while off < n:
            want = min(chunk, n - off)
            lo = iovec(ctypes.addressof(buf), want)
            re = iovec(a + off, want)
            got = libc.process_vm_readv(pid, ctypes.byref(lo), 1, ctypes.byref(re), 1, 0)
            if got <= 0:
                off = (a + off) // 4096 * 4096 + 4096 - a
                continue
            total += got
            off += got
    return time.perf_counter() - t0, total


def start(argv):
    r, w = os.pipe()
    argv = [a.replace("{fd}", str(w)) for a in argv]
    p = subprocess.Popen(argv, pass_fds=(w,), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    os.close(w)
    buf = b""
    while not buf.endswith(b"ready\n"):
        b = os.read(r, 4096)
        if not b:
            raise SystemExit("target ended: %r" % buf)
        buf += b
    os.close(r)
    return p


def one(vmstack, runtime, argv, target_mib):
    p = start(argv)
    try:
        rss_target = 0
        with open("/proc/%d/status" % p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss_target = int(line.split()[1]) * 1024
        raw_s, raw_bytes = raw_copy(p.pid)
        t0 = time.perf_counter()
        out = tempfile.TemporaryFile()
        q = subprocess.Popen([vmstack, "heap", "-f", "json", "--top", "5", "-p", str(p.pid)],
                             stdout=out, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(q.pid, 0)   # (this run's own peak RSS)
        wall = time.perf_counter() - t0
        peak = ru.ru_maxrss * 1024
        if status:
            raise SystemExit(q.stderr.read().decode())
        out.seek(0)
        doc = json.loads(out.read())
    finally:
        p.kill()
        p.wait()
    print(json.dumps({
        "bench": "heap", "runtime": runtime, "target_mib": target_mib,
        "heap_bytes": doc["bytes"], "objects": doc["objects"], "target_rss": rss_target,
        "copied_bytes": doc["copy_bytes"], "pause_ms": round(doc["pause_ms"], 1),
        "copy_ms": round(doc["copy_ms"], 1), "enumerate_ms": round(doc["enumerate_ms"], 1),
        "analyse_ms": round(doc["analyse_ms"], 1),
        "raw_copy_ms": round(raw_s * 1e3, 1), "raw_copy_bytes": raw_bytes,
        "pause_over_raw_copy": round(doc["pause_ms"] / (raw_s * 1e3), 2),
        "end_to_end_s": round(wall, 2),
        "analysis_mb_per_s": round(doc["copy_bytes"] / 1e6 / max(wall - doc["pause_ms"] / 1e3, 1e-3), 1),
        "vmstack_peak_rss": peak, "peak_rss_over_heap": round(peak / max(doc["bytes"], 1), 2),
        "peak_rss_over_copy": round(peak / max(doc["copy_bytes"], 1), 2),
    }), flush=True)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    build = sys.argv[1]
    vmstack = os.path.join(build, "vmstack")
    sizes = [int(s) for s in sys.argv[2:]] or [100, 1024]
    for mib in sizes:
        # LuaJIT GC64: a table of one number is about 88 bytes with its array slot
        n = mib * (1 << 20) // 88
        one(vmstack, "luajit", ["luajit", os.path.join(HERE, "heap_big.lua"), "{fd}", str(n)], mib)
    for mib in sizes:
        # Perl: an entry (HE, shared key, RV, AV, its array, an IV) is about 200 bytes
        n = mib * (1 << 20) // 200
        one(vmstack, "perl", ["perl", os.path.join(HERE, "heap_big.pl"), "{fd}", str(n)], mib)


if __name__ == "__main__":
    main()
