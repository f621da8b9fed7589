#!/usr/bin/env python3
"""Live tests of `vmstack heap` on LuaJIT (fixtures/lua/heap.lua under the build of
LUAJIT_FLAVOUR): the census against the VM's own count, each cache's path and retained
bytes against what building it added (measured in the process with collectgarbage), weak
references not retaining, every output format read back. Usage: test_heap.py CASE"""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import test_luajit
from test_record import node_modules
from vmtest import assert_running, fixture, main, run, start, stop

HERE = os.path.dirname(os.path.abspath(__file__))
HEAP_LUA = os.path.normpath(os.path.join(HERE, "..", "..", "fixtures", "lua", "heap.lua"))


def start_heap(scale=20000):
    """The fixture, once ready: (process, {structure: bytes its building added})."""
    r, w = os.pipe()
    p = subprocess.Popen([test_luajit.luajit(), HEAP_LUA, str(w), str(scale)], pass_fds=(w,),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    os.close(w)
    buf = b""
    while not buf.endswith(b"ready\n"):
        b = os.read(r, 4096)
        if not b:
            p.kill()
            raise AssertionError("heap.lua ended before it was ready: %r" % buf)
        buf += b
    os.close(r)
    truth = {}
    for line in buf.decode().splitlines()[:-1]:
        k, v = line.split()
        truth[k] = int(v)
    return p, truth


def heap_json(pid, *extra):
    rc, out, err = run(["heap", "-p", str(pid), "-f", "json", "--top", "100"] + list(extra),
                       timeout=120)
    assert rc == 0, "heap exit %d: %s" % (rc, err)
    return json.loads(out)


def retainer(doc, path):
    for r in doc["retainers"]:
        if r["path"] == path:
            return r
    raise AssertionError("no retainer %r in %s" % (path, [r["path"] for r in doc["retainers"]]))


def near(got, want, tol, what):
    assert abs(got - want) <= tol * want, "%s: %d bytes, want %d ±%d%%" % (what, got, want,
                                                                          int(tol * 100))


def case_paths():
    """Each structure under its path, with the bytes its building added (±10%); the census
    equals the VM's gc.total (±1%); the weak table retains nothing of what it points at;
    the process runs on, untouched."""
    p, truth = start_heap()
    try:
        doc = heap_json(p.pid)
        assert_running(p.pid)
    finally:
        stop(p)
    assert doc["copied"] and doc["runtime"] == "luajit", doc
    near(doc["bytes"], truth["total"], 0.01, "census")
    near(doc["vm_accounting"]["bytes"], truth["total"], 0.001, "gc.total read")
    assert doc["reachable"] >= doc["objects"] - 100, (doc["reachable"], doc["objects"])
    near(retainer(doc, "registry._LOADED.heapmod.cache")["retained"], truth["module"], 0.10,
         "module cache")
    near(retainer(doc, "_G.lookup")["retained"], truth["upvalue"], 0.10, "upvalue cache")
    memo = retainer(doc, "_G.lookup → upvalue memo")
    assert memo["type"] == "table" and memo["objects"] == 20001, memo
    near(retainer(doc, "_G.gcache")["retained"], truth["global"], 0.10, "global cache")
    near(retainer(doc, "_G.ring")["retained"], truth["cycle"], 0.10, "ring")
    # (every node of the list is reached from both ends: the table holding them dominates)
    near(retainer(doc, "_G.lru")["retained"], truth["lru"], 0.10, "doubly linked list")
    # one of 100 sessions (a {*} in the flame graph) named by its key in the report
    near(retainer(doc, "_G.sessions.user42.history")["retained"], truth["sessions"], 0.15,
         "the session that holds the memory")
    # a running function's local, named as debug.getlocal names it, with where the function is
    with open(HEAP_LUA) as f:
        hold = next(i for i, l in enumerate(f, 1) if l.startswith("local function hold()"))
    near(retainer(doc, "main thread → local pending (heap.lua:%d)" % hold)["retained"],
         truth["local"], 0.10, "local")
    # FFI objects with their C type's size; variable-length and over-aligned ones with the
    # header in front of them
    near(retainer(doc, "_G.cdcache")["retained"], truth["cdata"], 0.10, "cdata cache")
    weak = retainer(doc, "_G.weakref")
    assert weak["retained"] < weak["shallow"] + 4096, weak   # its array part, nothing behind
    near(weak["retained"], truth["weak"], 0.10, "weak table")
    types = {c["type"]: c for c in doc["census"]}
    # tables: 20000 records, 20000 + 10000 small arrays, 1000 ring nodes and the containers;
    # strings: 280000 warm, 40000 of the module, 20000 memo, 1000 ring, 20000 events
    assert types["table"]["objects"] >= 51000 and types["string"]["objects"] >= 361000, types
    assert types["cdata"]["objects"] >= 4900, types["cdata"]


def case_outputs():
    """The memory flame graph (SVG), folded (bytes per path), pprof (read back by its
    protobuf layout) and the text report; the widest tower under _G is warm, then the
    module cache under the registry."""
    p, truth = start_heap()
    tmp = tempfile.mkdtemp(prefix="vmstack-heap-")
    try:
        outs, wrote = {}, {}
        for ext in ("svg", "folded", "pb.gz"):
            path = os.path.join(tmp, "h." + ext)
            rc, out, err = run(["heap", "-p", str(p.pid), "-o", path], timeout=120)
            assert rc == 0 and "Wrote " + path in err, (rc, err)
            outs[ext] = path
            wrote[ext] = re.search(r"\((\d+) objects, (\d+) bytes", err).groups()
        rc, text, err = run(["heap", "-p", str(p.pid)], timeout=120)
        assert rc == 0, err
        assert_running(p.pid)
    finally:
        stop(p)
    try:
        assert "Largest retainers" in text and "registry._LOADED.heapmod.cache" in text, text
        assert "the VM counts gc.total" in text, text
        with open(outs["svg"]) as f:
            svg = f.read()
        assert svg.startswith("<?xml") and "memory by reference path" in svg, svg[:300]
        assert ".cache &lt;table&gt;" in svg, "no cache frame in the SVG"
        # the hover names bytes and objects
        assert re.search(r"<title>\.cache &lt;table&gt; \([\d.]+ MiB, \d+ bytes, \d+ objects, "
                         r"[\d.]+%\)</title>", svg), "no bytes and objects in the cache's hover"
        stacks = {}
        with open(outs["folded"]) as f:
            for line in f:
                st, n = line.rstrip("\n").rsplit(" ", 1)
                stacks[st] = stacks.get(st, 0) + int(n)
        under = sum(n for st, n in stacks.items()
                    if ".heapmod <table>;.cache <table>" in st)
        near(under, truth["module"], 0.10, "folded bytes under the module cache")
        assert any(st.startswith("_G <table>;.gcache <table>;[*] <table>") for st in stacks), \
            sorted(stacks)[:20]
        # pprof, read back by the pprof-format package
        cp = subprocess.run(["node", os.path.join(HERE, "check_profiles.js"), node_modules(),
                             outs["pb.gz"]], capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        pr = json.loads(cp.stdout)["pprof"]
        assert pr["sample_types"] == ["inuse_objects/count", "inuse_space/bytes"], pr
        assert pr["default_sample_type"] == "inuse_space", pr["default_sample_type"]
        # every object and byte of the run, and the module cache's bytes as in folded
        objects, nbytes = map(int, wrote["pb.gz"])
        assert sum(s["values"][0] for s in pr["samples"]) == objects, objects
        assert sum(s["values"][1] for s in pr["samples"]) == nbytes, nbytes
        in_cache = [s for s in pr["samples"]
                    if ".heapmod <table>;.cache <table>" in
                    ";".join(f["name"] for f in reversed(s["frames"]))]
        near(sum(s["values"][1] for s in in_cache), truth["module"], 0.10,
             "pprof bytes under the module cache")
        assert all(s["values"][0] > 0 for s in in_cache), in_cache[:3]
    finally:
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)


def case_by_type():
    """--by type: the census as a flame graph, type at the root."""
    p, truth = start_heap(5000)
    try:
        rc, out, err = run(["heap", "-p", str(p.pid), "-f", "folded", "--by", "type"], timeout=120)
    finally:
        stop(p)
    assert rc == 0, err
    roots = {}
    for line in out.splitlines():
        st, n = line.rsplit(" ", 1)
        roots[st.split(";")[0]] = roots.get(st.split(";")[0], 0) + int(n)
    assert roots.get("table", 0) > 0 and roots.get("string", 0) > 0, roots
    near(sum(roots.values()), truth["total"], 0.01, "by type, all")


def case_live_walk():
    """--max-copy too small for the heap: walked in the live process while it is held
    stopped, said so, same figures."""
    p, truth = start_heap(5000)
    try:
        rc, out, err = run(["heap", "-p", str(p.pid), "--max-copy", "64K"], timeout=120)
        assert_running(p.pid)
    finally:
        stop(p)
    assert rc == 0, err
    assert "walked in the live process" in out, out
    assert "registry._LOADED.heapmod.cache" in out, out


def case_baseline():
    """--baseline: a report taken before the module cache grew, set against one after: the
    growth lands on the cache's path with the bytes the growth added (measured inside the
    process, ±10%); folded output carries before and after per stack."""
    p, truth = start_heap(10000)
    tmp = tempfile.mkdtemp(prefix="vmstack-heap-")
    try:
        base = os.path.join(tmp, "base.json")
        rc, out, err = run(["heap", "-p", str(p.pid), "-o", base], timeout=120)
        assert rc == 0, err
        # nothing changed: nothing under the small table grew (a key that is no UTF-8,
        # _G.small["\xffx"], reads back from the report as it was written)
        same = heap_json(p.pid, "--baseline", base)
        assert not [g for g in same["growth"] if g["path"].startswith("_G.small")], same["growth"]
        p.stdin.write(b"grow 5000\nfill 100\n")
        p.stdin.flush()
        line = p.stdout.readline().decode()
        assert line.startswith("grown "), line
        grown = int(line.split()[1])
        line = p.stdout.readline().decode()
        assert line.startswith("filled "), line
        filled = int(line.split()[1])
        doc = heap_json(p.pid, "--baseline", base)
        rc, folded, err = run(["heap", "-p", str(p.pid), "--baseline", base, "-f", "folded"],
                              timeout=120)
        assert rc == 0, err
        rc, text, err = run(["heap", "-p", str(p.pid), "--baseline", base], timeout=120)
        assert rc == 0, err
        rc, svg, err = run(["heap", "-p", str(p.pid), "--baseline", base, "-f", "svg"],
                           timeout=120)
        assert rc == 0, err
        assert_running(p.pid)
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    top = doc["growth"][0]
    assert top["path"] == "registry._LOADED.heapmod.cache <table>", doc["growth"]
    near(top["bytes"], grown, 0.10, "growth of the cache")
    assert top["objects"] == 15000, top   # 5000 records, their names and their keys
    # a table that went from 60 named records to 160 shown as {*}: its growth is the 100
    # records added, not all 160 (the 60 named before are counted in its {*} too)
    small = [g for g in doc["growth"] if g["path"].startswith("_G.small")]
    assert small and small[0]["path"] == "_G.small <table>", doc["growth"]
    near(small[0]["bytes"], filled, 0.10, "growth of the small table")
    assert all(g["bytes"] <= filled * 1.1 for g in small), small
    assert "Growth since the baseline" in text and "registry._LOADED.heapmod.cache" in text, text
    total, cache = 0, 0
    for l in folded.splitlines():
        st, before, after = l.rsplit(" ", 2)
        d = int(after) - int(before)
        total += d
        if ".heapmod <table>;.cache <table>" in st:
            cache += d
    near(cache, grown, 0.10, "folded growth under the cache")
    # the differential flame graph: the cache is red, its hover says how much it grew
    assert "memory growth by reference path" in svg, svg[:400]
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    frames = {g.find(ns + "title").text.rsplit(" (", 1)[0]: g for g in root.iter(ns + "g")
              if g.get("class") == "f"}
    g = frames["registry._LOADED <table>;.heapmod <table>;.cache <table>".split(";")[-1]]
    m = re.search(r"\(([\d.]+ \w+), was ([\d.]+ \w+): \+([\d.]+ \w+), \+[\d.]+%\)$",
                  g.find(ns + "title").text)
    assert m, g.find(ns + "title").text
    fill = g.find(ns + "rect").get("fill")
    assert re.match(r"rgb\(255,\d+,\d+\)$", fill) and fill != "rgb(255,255,255)", fill


# -- Perl ------------------------------------------------------------------------------

HEAP_PL = os.path.normpath(os.path.join(HERE, "..", "..", "fixtures", "perl", "heap.pl"))


def start_perl_heap(scale=20000):
    import test_perl
    r, w = os.pipe()
    p = subprocess.Popen([test_perl.perl(), HEAP_PL, str(w), str(scale)], pass_fds=(w,),
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    os.close(w)
    buf = b""
    while not buf.endswith(b"ready\n"):
        b = os.read(r, 4096)
        if not b:
            p.kill()
            raise AssertionError("heap.pl ended before it was ready: %r" % buf)
        buf += b
    os.close(r)
    return p, {k: int(v) for k, v in (l.split() for l in buf.decode().splitlines()[:-1])}


def case_perl_paths():
    """Every SV of the arenas (as many as PL_sv_count), each cache under its Perl name with
    the bytes Devel::Size gives it (±15%, where Devel::Size is installed for this perl), a
    blessed object by its class, weak references retaining nothing."""
    p, truth = start_perl_heap()
    # Debian's perl has Devel::Size (libdevel-size-perl); the non-threaded build from source
    # does not: its paths are checked, not its sizes
    if os.environ.get("PERL_FLAVOUR", "debian") == "debian":
        assert truth["lexical"] >= 0, "Devel::Size is not installed (libdevel-size-perl)"
    try:
        doc = heap_json(p.pid)
        assert_running(p.pid)
    finally:
        stop(p)
    assert doc["copied"] and doc["runtime"] == "perl", doc
    # (shared keys and copy-on-write buffers are objects of their own, not SVs)
    svs = sum(c["objects"] for c in doc["census"]
              if c["type"] not in ("shared key", "shared string buffer"))
    assert svs == doc["vm_accounting"]["objects"], (svs, doc["vm_accounting"])
    # the constants a non-threaded perl keeps in its op trees (the fixture's 3 MB $SPARE
    # literal among them) are compiled code's, not garbage: nearly everything is reached
    assert doc["bytes"] - doc["reachable_bytes"] < doc["bytes"] // 100, \
        (doc["bytes"], doc["reachable_bytes"])
    types = {c["type"] for c in doc["census"]}
    assert "HASH Shop::Basket" in types, types
    checks = (("my %cache (file scope)", "lexical"), ("%Report::Cache::store", "package"),
              ("$main::LOOKUP-> → my @memo", "closure"), ("my $basket (file scope)", "object"),
              ("my $ring (file scope)", "cycle"))
    for path, name in checks:
        r = retainer(doc, path)
        if truth[name] >= 0:
            near(r["retained"], truth[name], 0.15, path)
    # a buffer kept by a scalar set to undef is counted (whatever Devel::Size says)
    assert retainer(doc, "$main::SPARE")["retained"] >= 3000000, retainer(doc, "$main::SPARE")
    weak = retainer(doc, "my @weak (file scope)")
    assert weak["retained"] < 100000, weak   # 1000 weak references, none of their targets


def case_perl_outputs():
    """The memory flame graph and folded stacks of a Perl heap: the file lexical's tower."""
    p, truth = start_perl_heap(5000)
    try:
        rc, folded, err = run(["heap", "-p", str(p.pid), "-f", "folded"], timeout=120)
        assert rc == 0, err
        rc, svg, err = run(["heap", "-p", str(p.pid), "-f", "flamegraph"], timeout=120)
        assert rc == 0, err
    finally:
        stop(p)
    assert any(l.startswith("my %cache (file scope) <HASH>;{*} <REF>;-> <HASH>")
               for l in folded.splitlines()), folded[:2000]
    assert "my %cache (file scope) &lt;HASH&gt;" in svg


def case_errors():
    """No VM in the process: exit 2, one line; bad options: exit 64; a baseline of another
    runtime's heap: exit 2, the output left as it was."""
    p, truth = start_heap(2000)
    tmp = tempfile.mkdtemp(prefix="vmstack-heap-")
    try:
        other = os.path.join(tmp, "perl.json")
        with open(other, "w") as f:
            f.write('{"pid":1,"time":0,"comm":"perl","exe":"/usr/bin/perl","runtime":"perl"}\n'
                    '"stacks":[\n{"stack":["%main:: <HASH>"],"bytes":10,"objects":1}\n]}\n')
        out_path = os.path.join(tmp, "d.folded")
        rc, out, err = run(["heap", "-p", str(p.pid), "--baseline", other, "-o", out_path],
                           timeout=120)
        assert rc == 2 and "a report of a perl heap" in err and "note: the baseline is of" \
            in err, (rc, err)
        assert os.listdir(tmp) == ["perl.json"], os.listdir(tmp)
        assert_running(p.pid)
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    p = start([fixture("threads-pie"), "{fd}"], stdin=subprocess.DEVNULL)
    try:
        rc, out, err = run(["heap", "-p", str(p.pid)])
        assert_running(p.pid)
    finally:
        stop(p)
    assert rc == 2 and "no VM runtime" in err and len(err.splitlines()) == 1, (rc, err)
    for args, msg in ((["heap"], "no target"), (["heap", "-p", "1", "--by", "x"], "--by"),
                      (["heap", "-p", "1", "--max-copy", "lots"], "--max-copy"),
                      (["heap", "-p", "1", "-o", "x.png"], "cannot tell the format")):
        rc, out, err = run(args)
        assert rc == 64 and msg in err, (args, rc, err)
    rc, out, err = run(["heap", "-p", "1", "-o", "/nonexistent/dir/h.svg"])
    assert rc == 2 and "cannot write" in err, (rc, err)
    keep = tempfile.mktemp(prefix="vmstack-keep-", suffix=".json")
    with open(keep, "w") as f:
        f.write("an earlier report\n")
    try:
        rc, out, err = run(["heap", "-p", "999999999", "-o", keep])
        with open(keep) as f:
            assert rc == 2 and f.read() == "an earlier report\n", (rc, err)
    finally:
        os.unlink(keep)
    rc, out, err = run(["heap", "-p", "1", "-f", "speedscope"])
    assert rc == 64 and "speedscope" in err, (rc, err)
    rc, out, err = run(["heap", "-p", "1", "--baseline", "/etc/hostname"])
    assert rc == 2 and "not a JSON report" in err, (rc, err)
    rc, out, err = run(["heap", "-p", "1", "--baseline", "x.json", "-o", "d.pb.gz"])
    assert rc == 64 and "-diff_base" in err, (rc, err)


if __name__ == "__main__":
    sys.exit(main({n[5:]: f for n, f in globals().items() if n.startswith("case_")}))
