#!/usr/bin/env python3
"""Torn and garbage target data: vmstack's own copies of target memory are corrupted at
random (VMSTACK_TEST_CORRUPT test seam; the target is never touched) while it walks native
and Lua stacks. Every run must end on its own, quickly, with exit 0 or 1 and valid JSON,
and leave the target running. Usage: test_garbage.py CASE"""
import json
import os
import subprocess
import time

import test_luajit
import test_perl
from vmtest import assert_running, fixture, main, start, stop

RUNS = int(os.environ.get("VMSTACK_GARBAGE_RUNS", "150"))


def hammer(pid, permille):
    worst = 0.0
    for seed in range(1, RUNS + 1):
        env = dict(os.environ, VMSTACK_TEST_CORRUPT="%d:%d" % (seed, permille))
        t0 = time.monotonic()
        cp = subprocess.run([os.environ["VMSTACK"], "dump", "-j", "-p", str(pid)], env=env,
                            capture_output=True, text=True, timeout=30)
        worst = max(worst, time.monotonic() - t0)
        assert cp.returncode in (0, 1), "seed %d: exit %d: %s" % (seed, cp.returncode,
                                                                  cp.stderr[-500:])
        doc = json.loads(cp.stdout)
        assert doc["pid"] == pid, "seed %d" % seed
        for t in doc["threads"]:
            assert len(t["frames"]) <= 256 + 4096, "seed %d: %d frames" % (seed, len(t["frames"]))
    assert_running(pid)
    print("%d corrupted runs, slowest %.3f s" % (RUNS, worst))


def case_native():
    p = start([fixture("threads-pie"), "{fd}"])
    try:
        hammer(p.pid, 200)
    finally:
        stop(p)


def lua_case(scenario, jit):
    def run():
        p, _ = test_luajit.start_lua(scenario, jit)
        try:
            hammer(p.pid, 200)
        finally:
            stop(p)
    return run


CASES = {"native": case_native, "lua_sort_joff": lua_case("sort", False),
         "lua_recurse_jit": lua_case("recurse", True), "lua_blocked": None}


def case_lua_blocked():
    r, w = os.pipe()
    try:
        p, _ = test_luajit.start_lua("blocked", False, stdin=r)
        try:
            hammer(p.pid, 200)
        finally:
            stop(p)
    finally:
        os.close(r)
        os.close(w)


CASES["lua_blocked"] = case_lua_blocked


def perl_case(scenario):
    def run():
        p, _ = test_perl.start_perl(scenario)
        try:
            hammer(p.pid, 200)
        finally:
            test_perl.stop_perl(p)
    return run


for sc in ("recurse", "signal", "threads", "use_begin"):
    CASES["perl_" + sc] = perl_case(sc)


def heap_hammer(pid, runs=40, permille=300):
    """vmstack heap on a corrupted copy of the process: every run ends on its own, with a
    report (exit 0, or 1 when the enumeration stopped early) and valid JSON."""
    worst = 0.0
    for seed in range(1, runs + 1):
        env = dict(os.environ, VMSTACK_TEST_CORRUPT="%d:%d" % (seed, permille))
        t0 = time.monotonic()
        cp = subprocess.run([os.environ["VMSTACK"], "heap", "-f", "json", "-p", str(pid)],
                            env=env, capture_output=True, text=True, timeout=120)
        worst = max(worst, time.monotonic() - t0)
        assert cp.returncode in (0, 1), "seed %d: exit %d: %s" % (seed, cp.returncode,
                                                                  cp.stderr[-500:])
        doc = json.loads(cp.stdout)
        assert doc["pid"] == pid and doc["objects"] >= 0, "seed %d" % seed   # (a corrupt root: none)
    assert_running(pid)
    print("%d corrupted heap runs, slowest %.3f s" % (runs, worst))


def case_heap_lua():
    import test_heap
    p, _ = test_heap.start_heap(5000)
    try:
        heap_hammer(p.pid)
    finally:
        stop(p)


def case_heap_perl():
    import test_heap
    p, _ = test_heap.start_perl_heap(5000)
    try:
        heap_hammer(p.pid)
    finally:
        stop(p)


CASES["heap_lua"] = case_heap_lua
CASES["heap_perl"] = case_heap_perl

if __name__ == "__main__":
    raise SystemExit(main(CASES))
