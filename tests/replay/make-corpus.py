#!/usr/bin/env python3
"""Regenerate the replay corpus: for each case, run a fixture live, save a snapshot that
carries the parts of the module files it used (dump --save-snapshot X.snap.gz
--embed-files), and record what the replay of that snapshot prints (text and JSON) as the
golden output the tests compare with. A case whose replay differs from the live dump, or
that lacks the frames it was made for, is an error.

Usage: tests/replay/make-corpus.py BUILDDIR [CASE...]
(needs root or ptrace rights, the interpreters of the cases, and BUILDDIR's LuaJIT and perl
builds: meson test -C BUILDDIR luajit_nogc64_nested_jit perl_nothread_nested prepares them)

The fixtures run from a scratch directory with a minimal environment, scripts by relative
names and C fixtures compiled with relative source paths: the snapshots and goldens hold
no path of the machine that made them beyond that directory and system libraries."""
import glob
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")
WORK = "/tmp/vmstack-corpus"
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C"}


def sh(*argv, **kw):
    cp = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    if cp.returncode:
        sys.exit("%s: exit %d\n%s" % (" ".join(argv), cp.returncode, cp.stderr[-3000:]))
    return cp.stdout


def cflags():
    return ["-O1", "-g", "-fno-inline", "-fno-optimize-sibling-calls", "-fno-omit-frame-pointer",
            "-ffile-prefix-map=%s=." % ROOT, "-Wl,--build-id"]


def prepare(build):
    """The scratch directory: fixtures and interpreters copied or compiled into it."""
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    for f in glob.glob(os.path.join(ROOT, "fixtures", "lua", "*.lua")) + \
            glob.glob(os.path.join(ROOT, "fixtures", "perl", "*.p[lm]")):
        shutil.copy(f, WORK)
    sh("cc", *cflags(), "-fPIE", "-pie", "-pthread", "-o", os.path.join(WORK, "threads"),
       "fixtures/c/threads.c", cwd=ROOT)
    ccopts = sh("perl", "-MExtUtils::Embed", "-e", "ccopts").split()
    ldopts = sh("perl", "-MExtUtils::Embed", "-e", "ldopts").split()
    sh("cc", *cflags(), *ccopts, "-o", os.path.join(WORK, "perlhost"), "fixtures/perlhost/host.c",
       *ldopts, "-pthread", cwd=ROOT)
    src = os.path.join(build, "luajit-src")
    nogc = glob.glob(os.path.join(src, "*-luajit-nogc64", "src", "luajit"))
    assert nogc, "no non-GC64 LuaJIT build in " + src
    shutil.copy(nogc[0], os.path.join(WORK, "luajit-nogc64"))
    shutil.copytree(os.path.join(src, "pkg-luajit2", "root", "usr"), os.path.join(WORK, "luajit2"))
    shutil.copytree(os.path.join(build, "perl-src", "nothread"),
                    os.path.join(WORK, "perl-nothread"), symlinks=True)


def nothread_env():
    lib = glob.glob(os.path.join(WORK, "perl-nothread", "lib", "5.*"))
    assert lib, "no non-threaded perl library"
    arch = glob.glob(os.path.join(lib[0], "*-linux*"))
    return {"PERL5LIB": ":".join(arch + lib)}


# name: (argv, extra environment, dump options, names the VM frames must include)
CASES = {
    "native": (["./threads", "{fd}"], {}, [], []),
    "luajit_debian_jit": (["luajit", "states.lua", "{fd}", "tab"], {}, [], ["fn", "main chunk"]),
    "luajit_luajit2_jit": (["./luajit2/bin/luajit", "stacks.lua", "{fd}", "nested"],
                           {"LD_LIBRARY_PATH": WORK + "/luajit2/lib/x86_64-linux-gnu"}, [],
                           ["leaf", "mid"]),
    "luajit_nogc64_coroutines": (["./luajit-nogc64", "stacks.lua", "{fd}", "coroutines"], {},
                                 ["--coroutines"], ["main chunk"]),
    "perl_debian_xs": (["perl", "stacks.pl", "{fd}", "xs_callback"], {}, [],
                       ["main::block_leaf", "main::xs_outer"]),
    "perl_nothread_recurse": (["./perl-nothread/bin/perl", "stacks.pl", "{fd}", "recurse"],
                              "nothread", [], ["main::recurse"]),
    "perlhost_two": (["./perlhost", "{fd}", "two", "stacks.pl", "nested", "recurse"], {}, [],
                     ["main::recurse"]),
}


def run_case(vmstack, name):
    argv, extra_env, opts, want = CASES[name]
    env = dict(ENV)
    env.update(nothread_env() if extra_env == "nothread" else extra_env)
    r, w = os.pipe()
    argv = [a.replace("{fd}", str(w)) for a in argv]
    p = subprocess.Popen(argv, cwd=WORK, env=env, pass_fds=(w,), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL)
    os.close(w)
    buf = b""
    while not buf.endswith(b"ready\n"):
        b = os.read(r, 4096)
        if not b:
            p.kill()
            sys.exit("%s: the fixture ended before it was ready: %r" % (name, buf[-500:]))
        buf += b
    snap = os.path.join(CORPUS, name + ".snap.gz")
    try:
        live = subprocess.run([vmstack, "dump", "-p", str(p.pid), "--save-snapshot", snap,
                               "--embed-files"] + opts, capture_output=True, text=True, timeout=120)
    finally:
        p.kill()
        p.wait()
        os.close(r)
    if live.returncode:
        sys.exit("%s: dump exit %d: %s" % (name, live.returncode, live.stderr))
    replay = sh(vmstack, "dump", "--snapshot", snap)
    if replay != live.stdout:
        sys.exit("%s: the replay differs from the live dump:\n%s\n---\n%s" % (name, live.stdout, replay))
    doc = json.loads(sh(vmstack, "dump", "--snapshot", snap, "-j"))
    names = {f["name"] for t in doc["threads"] for f in t["frames"] if f["kind"] == "vm"}
    names |= {f["name"] for c in doc.get("coroutines") or [] for f in c.get("frames", [])}
    missing = [n for n in want if n not in names]
    if missing:
        sys.exit("%s: frames %s missing from\n%s" % (name, missing, live.stdout))
    with open(os.path.join(CORPUS, name + ".txt"), "w") as f:
        f.write(replay)
    with open(os.path.join(CORPUS, name + ".json"), "w") as f:
        f.write(sh(vmstack, "dump", "--snapshot", snap, "-j"))
    for ext in (".snap.gz", ".txt", ".json"):
        path = os.path.join(CORPUS, name + ext)
        data = subprocess.run(["zcat", "-f", path], capture_output=True).stdout
        if ROOT.encode() in data:
            sys.exit("%s: %s holds the source tree's path %s" % (name, path, ROOT))
    print("%-28s %7d bytes" % (name, os.path.getsize(snap)))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = os.path.abspath(sys.argv[1])
    vmstack = os.path.join(build, "vmstack")
    names = sys.argv[2:] or list(CASES)
    os.makedirs(CORPUS, exist_ok=True)
    prepare(build)
    try:
        for n in names:
            run_case(vmstack, n)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
