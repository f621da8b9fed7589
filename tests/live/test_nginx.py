#!/usr/bin/env python3
"""Live test of the headline use case: an nginx worker (Debian's nginx + libnginx-mod-http-lua
on OpenResty's LuaJIT, unpacked by fixtures/nginx/prepare.sh) spinning in a Lua content
handler on 127.0.0.1; lua-stack must show handler.lua's frames at exact lines, the
content_by_lua chunk, then the lua module's and nginx's C frames.
Usage: test_nginx.py CASE  (block: content_by_lua_block, plus the master; file:
content_by_lua_file; follow: `record -s` on the master of two workers under load from wrk,
and a reload meanwhile: the new workers are followed too; both: the Lua and the Perl module
in the same workers)"""
import grp
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import tempfile
import time

from vmtest import Skip, assert_running, main, settle

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.normpath(os.path.join(HERE, "..", "..", "fixtures", "nginx"))
VMSTACK = os.environ.get("VMSTACK", "vmstack")
LUA_STACK = os.path.join(os.path.dirname(VMSTACK), "lua-stack")
LUA_MODULE = "ngx_http_lua_module.so"
# nginx's exported functions on the worker's path from main to the content phase (static
# ones in between have no name in the stripped binary)
NGINX_CHAIN = ["ngx_http_core_content_phase", "ngx_http_core_run_phases",
               "ngx_process_events_and_timers", "ngx_spawn_process",
               "ngx_master_process_cycle", "main", "_start"]


def prepare():
    """Paths from prepare.sh: nginx, modules, lualib, libpath."""
    src = os.environ.get("NGINX_SRC") or os.path.join(
        os.path.dirname(os.path.abspath(VMSTACK)), "nginx-src")
    cp = subprocess.run(["sh", os.path.join(FIX, "prepare.sh"), src], capture_output=True,
                        text=True, timeout=300)
    if cp.returncode == 77:
        raise Skip("nginx + lua module unavailable: " + cp.stderr.strip())
    assert cp.returncode == 0, cp.stderr[-2000:]
    return dict(l.split(" ", 1) for l in cp.stdout.splitlines())


def marker_line(path, marker):
    """Line of the statement marked with the comment '-- MARKER'."""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith("-- " + marker):
                return i
    raise AssertionError("%s: no marker %r" % (path, marker))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


class Nginx:
    """nginx from a temporary prefix: master (our child) and one worker, on 127.0.0.1."""

    def __init__(self, paths, workers=1, template="nginx.conf.in"):
        self.paths = paths
        self.workers = workers
        self.template = template
        self.socks = []
        self.prefix = tempfile.mkdtemp(prefix="vmstack-nginx-")
        self.conf = os.path.join(self.prefix, "nginx.conf")
        self.ready = os.path.join(self.prefix, "ready")
        os.mkfifo(self.ready)
        self.master = None
        self.worker = None
        self.sock = None

    def start(self):
        for attempt in range(3):    # the free port may be taken before nginx binds it
            self.port = free_port()
            subst = {"PREFIX": self.prefix, "MODULES": self.paths["modules"],
                     "LUALIB": self.paths["lualib"], "FIXTURES": FIX, "PORT": str(self.port),
                     "READY": self.ready, "WORKERS": str(self.workers), "USER": pwd.getpwuid(os.getuid()).pw_name,
                     "GROUP": grp.getgrgid(os.getgid()).gr_name,
                     "PERLLIB": self.paths.get("perllib", "")}
            with open(os.path.join(FIX, self.template)) as f:
                text = re.sub(r"@([A-Z]+)@", lambda m: subst[m.group(1)], f.read())
            with open(self.conf, "w") as f:
                f.write(text)
            env = dict(os.environ, LD_LIBRARY_PATH=self.paths["libpath"])
            with open(os.path.join(self.prefix, "stderr"), "w") as err:
                self.master = subprocess.Popen(
                    [self.paths["nginx"], "-p", self.prefix, "-c", self.conf,
                     "-e", os.path.join(self.prefix, "error.log")],
                    env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.master.poll() is None:
                kids = children(self.master.pid)
                if len(kids) >= self.workers and os.path.exists(os.path.join(self.prefix, "nginx.pid")):
                    self.worker = kids[0]
                    return
                time.sleep(0.01)
            log = self.log()
            self.stop()
            if "Address already in use" not in log:
                break
        raise AssertionError("nginx did not start:\n" + log)

    def log(self):
        out = ""
        for n in ("stderr", "error.log"):
            try:
                with open(os.path.join(self.prefix, n)) as f:
                    out += f.read()[-3000:]
            except FileNotFoundError:
                pass
        return out

    def request(self, path, settle_worker=True):
        """Send GET path (never answered: the handler spins); return the handler's
        debug.traceback() lines once it wrote 'ready' to the fifo and settled in its loop
        (the lines as written when settle_worker is false)."""
        fd = os.open(self.ready, os.O_RDONLY | os.O_NONBLOCK)
        try:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.socks.append(self.sock)
            self.sock.sendall(b"GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
            buf = b""
            deadline = time.monotonic() + 10
            while not buf.endswith(b"ready\n"):
                assert time.monotonic() < deadline, "handler not ready: %r\n%s" % (
                    buf, self.log())
                assert self.master.poll() is None, "nginx exited:\n" + self.log()
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    chunk = b""
                buf += chunk
                if not chunk:
                    time.sleep(0.01)
        finally:
            os.close(fd)
        lines = buf.decode().splitlines()
        if not settle_worker:
            return lines
        assert lines[:2] == ["stack", "stack traceback:"], lines
        settle(self.worker, None)   # "ready" is written just before the loop
        return [l.strip() for l in lines[2:-1]]

    def stop(self):
        """Fast shutdown: SIGTERM the master, SIGKILL the worker (it spins in Lua and never
        looks at its signals); SIGKILL the master if it lingers."""
        for sk in self.socks:
            sk.close()
        self.socks = []
        self.sock = None
        if not self.master:
            return
        kids = children(self.master.pid)
        if self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
            time.sleep(0.05)    # let it mark itself terminating: no respawn
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.master.wait(5)
        except subprocess.TimeoutExpired:
            self.master.kill()
            self.master.wait()
        self.master = None

    def cleanup(self):
        self.stop()
        for root, dirs, files in os.walk(self.prefix, topdown=False):
            for n in files:
                os.unlink(os.path.join(root, n))
            for n in dirs:
                os.rmdir(os.path.join(root, n))
        os.rmdir(self.prefix)


def lua_stack(pid, *args):
    cp = subprocess.run([LUA_STACK] + list(args) + ["-p", str(pid)], capture_output=True,
                        text=True, timeout=60)
    return cp.returncode, cp.stdout, cp.stderr


def parse_traceback(tb):
    """LuaJIT's traceback lines as (name, chunk name without '@'/'=', line)."""
    out = []
    for l in tb:
        m = re.fullmatch(r"(.+):(\d+): in (?:function '([^']+)'|(main chunk))", l)
        assert m, "unparsed traceback line %r" % l
        out.append((m.group(3) or m.group(4), m.group(1), int(m.group(2))))
    return out


def spin_case(location, chunk, lua_c, before=None):
    """The worker's stack for a request to location; chunk(ngx) = (chunk name, line) of the
    content_by_lua code that calls handler.run; lua_c: the lua module's C frames below it;
    before(ngx) runs ahead of the request."""
    paths = prepare()
    ngx = Nginx(paths)
    try:
        ngx.start()
        if before:
            before(ngx)
        t0 = time.monotonic()
        tb = ngx.request(location)
        t1 = time.monotonic()
        rc, out, err = lua_stack(ngx.worker, "-j")
        t2 = time.monotonic()
        assert rc == 0, (rc, err)
        doc = json.loads(out)
        assert len(doc["threads"]) == 1, [t["tid"] for t in doc["threads"]]
        t = doc["threads"][0]
        assert t["tid"] == ngx.worker and t["runtime"] == "luajit", t
        assert t["vm_error"] is None and t["walk_error"] is None, (t["vm_error"], t["walk_error"])
        frames = t["frames"]
        vm = [f for f in frames if f["kind"] != "native"]
        handler = os.path.join(FIX, "handler.lua")
        name, line = chunk(ngx)
        want = [("spin", "@" + handler, marker_line(handler, "spin here")),
                ("leaf", "@" + handler, marker_line(handler, "leaf calls spin")),
                ("mid", "@" + handler, marker_line(handler, "mid calls leaf")),
                ("run", "@" + handler, marker_line(handler, "run calls mid")),
                ("main chunk", name, line)]
        got = [(f["name"], f["file"], f["line"]) for f in vm]
        assert got == want, "vmstack: %s\nwant:    %s" % (got, want)
        assert frames[:len(vm)] == vm, "native frames among the Lua ones: %s" % frames
        # LuaJIT's own traceback agrees (its leaf is spin at the ready() call)
        exp = parse_traceback(tb)
        plain = [(n, re.sub(r"^[@=]", "", f), l) for n, f, l in want]
        assert exp[0][:2] == plain[0][:2] and exp[1:] == plain[1:], (exp, plain)
        assert vm[0]["trace"] > 0, "leaf not a JIT trace: %s" % vm[0]
        assert all(f["trace"] == 0 for f in vm[1:]), vm
        # below the chunk: lua_resume tail-calls into the VM, so ngx_lua's C frames follow
        native = frames[len(vm):]
        names = [f["function"] for f in native]
        mods = [f["module"] for f in native]
        n = len(lua_c)
        assert names[:n + 2] == lua_c + NGINX_CHAIN[:2], names
        assert mods[:n + 2] == [LUA_MODULE] * n + ["nginx"] * 2, mods
        named = [f for f, m in zip(names, mods) if m == "nginx" and f]
        assert named == NGINX_CHAIN, "nginx frames %s, want %s (all: %s)" % (
            named, NGINX_CHAIN, names)
        assert "__libc_start_main" in names, names
        # the text view's Lua lines
        rc, out, err = lua_stack(ngx.worker)
        assert rc == 0, (rc, err)
        lines = out.splitlines()
        assert re.fullmatch(r"  #0  spin \(@%s:%d\) \[trace \d+\] \[luajit\]" % (
            re.escape(handler), want[0][2]), lines[2]), lines[2]
        assert lines[6] == "  #4  main chunk (%s:%d) [luajit]" % (name, line), lines[6]
        assert lines[7].startswith("  #5  ngx_http_lua_run_thread+0x"), lines[7]
        assert_running(ngx.worker, expect_spinning_tid=ngx.worker)
        print("ready after %.2fs, lua-stack %.3fs" % (t1 - t0, t2 - t1))
    finally:
        ngx.cleanup()


def case_block():
    """content_by_lua_block: the chunk is '=content_by_lua(nginx.conf:N)', N the line of
    the directive, its line 1 the rest of the directive's line. Also the master: it holds
    the module's Lua VM but runs no Lua: exit 0, native frames only."""
    def chunk(ngx):
        with open(ngx.conf) as f:
            lines = f.read().splitlines()
        n = next(i for i, l in enumerate(lines, 1) if l.strip().startswith("content_by_lua_block"))
        call = next(i for i, l in enumerate(lines, 1) if l.rstrip().endswith("-- chunk calls run"))
        return "=content_by_lua(nginx.conf:%d)" % n, call - n + 1

    def master(ngx):
        rc, out, err = lua_stack(ngx.master.pid, "-j")
        assert rc == 0, (rc, out, err)
        t = json.loads(out)["threads"]
        # the master holds a Lua VM (the module creates it at start) but runs no Lua
        assert len(t) == 1 and t[0]["walk_error"] is None, t
        assert t[0]["runtime"] == "luajit" and t[0]["vm_state"] == "not running code", t
        names = [f["function"] for f in t[0]["frames"]]
        assert all(f["kind"] == "native" for f in t[0]["frames"]), t[0]["frames"]
        assert names[:3] == ["sigsuspend", "ngx_master_process_cycle", "main"], names
        rc, out, err = lua_stack(ngx.master.pid)
        assert rc == 0 and "[luajit]" not in out, (rc, out, err)
        assert re.fullmatch(r'Thread %d "nginx" \(sleeping, luajit: not running code\)'
                            % ngx.master.pid, out.splitlines()[1]), out
        assert_running(ngx.master.pid)

    # ngx_http_lua_content_handler and _handler_inline tail-call: no frames
    spin_case("/spin", chunk, ["ngx_http_lua_run_thread", "ngx_http_lua_content_by_chunk"],
              master)


def case_file():
    """content_by_lua_file: the chunk is the file's main chunk, '@' and its path."""
    content = os.path.join(FIX, "content.lua")
    spin_case("/spinfile", lambda ngx: ("@" + content, marker_line(content, "file calls run")),
              ["ngx_http_lua_run_thread", "ngx_http_lua_content_by_chunk",
               "ngx_http_lua_content_handler_file"])


def case_load():
    """`record` of a worker serving /render under wrk: a handler that builds and renders
    tables, so most of the Lua time is C called from JIT-compiled code (allocation, string
    interning, GC steps, lua-resty-core's FFI calls). Errors at most 1% of the samples,
    and the handler's functions lead the Lua view."""
    import shutil
    wrk = shutil.which("wrk")
    if not wrk:
        raise Skip("wrk is not installed")
    paths = prepare()
    ngx = Nginx(paths)
    out = tempfile.mktemp(suffix=".folded")
    try:
        ngx.start()
        load = subprocess.Popen([wrk, "-t2", "-c8", "-d8s", "http://127.0.0.1:%d/render" % ngx.port],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # wait until the handler has run (its traces are compiled under load)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.create_connection(("127.0.0.1", ngx.port)) as c:
                c.sendall(b"GET /render HTTP/1.0\r\n\r\n")
                if b"200 OK" in c.recv(4096):
                    break
            time.sleep(0.05)
        rc = subprocess.run([VMSTACK, "record", "-p", str(ngx.worker), "-d", "4", "-r", "499",
                             "--view", "vm", "-f", "folded", "-o", out],
                            capture_output=True, text=True, timeout=60)
        load.wait(30)
        assert rc.returncode == 0, rc
        m = re.search(r"Wrote .* \((\d+) samples, (\d+) errors", rc.stderr)
        assert m and int(m.group(1)) > 500, rc.stderr
        samples, errors = int(m.group(1)), int(m.group(2))
        handler = os.path.join(FIX, "handler.lua")
        leaf, with_handler = {}, 0
        with open(out) as f:
            for line in f:
                stack, n = line.rsplit(" ", 1)
                frames = stack.split(";")
                lua = [fr for fr in frames if re.search(r"@.*:\d+$", fr)]
                if any(handler in fr for fr in lua):
                    with_handler += int(n)
                if lua:
                    leaf[lua[-1]] = leaf.get(lua[-1], 0) + int(n)
        top = sorted(leaf.items(), key=lambda kv: -kv[1])[:5]
        print("%s; %d of %d samples in the handler; Lua leaves: %s" % (
            rc.stderr.strip(), with_handler, samples, top))
        assert errors * 100 <= samples, rc.stderr
        cut = re.search(r"(\d+) samples have their VM frames but a native stack cut short",
                        rc.stderr)
        assert not cut or int(cut.group(1)) * 100 <= samples, rc.stderr
        assert top and handler in top[0][0], top
        assert with_handler * 2 > samples, (with_handler, samples)
        assert_running(ngx.worker)
    finally:
        try:
            os.unlink(out)
        except FileNotFoundError:
            pass
        ngx.stop()


def case_heap_leak():
    """`vmstack heap` of a worker whose module-level table grows under wrk load: the
    table's path (registry._LOADED.handler.seen) holds most of the Lua heap, and the worker
    serves on."""
    import shutil
    wrk = shutil.which("wrk")
    if not wrk:
        raise Skip("wrk is not installed")
    paths = prepare()
    ngx = Nginx(paths)
    try:
        ngx.start()
        load = subprocess.run([wrk, "-t2", "-c8", "-d3s", "http://127.0.0.1:%d/leak" % ngx.port],
                              capture_output=True, text=True, timeout=60)
        assert load.returncode == 0, load.stdout + load.stderr
        with socket.create_connection(("127.0.0.1", ngx.port)) as c:
            c.sendall(b"GET /leak HTTP/1.0\r\n\r\n")
            reply = c.recv(4096).decode()
        entries = int(reply.strip().splitlines()[-1])
        assert entries > 1000, reply
        rc = subprocess.run([VMSTACK, "heap", "-p", str(ngx.worker), "-f", "json"],
                            capture_output=True, text=True, timeout=120)
        assert rc.returncode == 0, rc.stderr
        doc = json.loads(rc.stdout)
        seen = [r for r in doc["retainers"] if r["path"] == "registry._LOADED.handler.seen"]
        assert seen, [r["path"] for r in doc["retainers"]]
        # every record's table (its strings are interned, one of each for all records); the
        # rest of the Lua heap is resty.core, the module code and the VM
        assert seen[0]["objects"] >= entries, (seen[0], entries)
        assert seen[0]["retained"] * 2 > doc["bytes"], (seen[0], doc["bytes"])
        others = [r for r in doc["retainers"]
                  if not "registry._LOADED.handler.seen".startswith(r["path"])]
        assert all(r["retained"] <= seen[0]["retained"] for r in others), others[:3]
        assert_running(ngx.worker)
        with socket.create_connection(("127.0.0.1", ngx.port)) as c:
            c.sendall(b"GET /leak HTTP/1.0\r\n\r\n")
            assert b"200 OK" in c.recv(4096)
    finally:
        ngx.stop()


def case_gateway_locals():
    """The gateway case: a worker spins in gcd() because a peer's weight arrived as the
    string "0"; lua-stack -l shows the caller's node with weight = "0" and the gcd it had
    so far, in text and JSON."""
    paths = prepare()
    ngx = Nginx(paths)
    try:
        ngx.start()
        ngx.request("/gcd")
        rc, out, err = lua_stack(ngx.worker, "-l", "-j")
        assert rc == 0, (rc, err)
        t = json.loads(out)["threads"][0]
        vm = [f for f in t["frames"] if f["kind"] == "vm" and f["vm_kind"] == "function"]
        assert [f["name"] for f in vm[:2]] == ["gcd", "pick"], [f["name"] for f in vm]
        loc = {v["name"]: v for v in vm[1]["locals"]}
        assert re.fullmatch(r'table 0x[0-9a-f]+ \{(host = "10\.0\.0\.7", weight = "0"|'
                            r'weight = "0", host = "10\.0\.0\.7")\}', loc["node"]["value"]), loc
        assert loc["g"]["value"] == "12" and loc["peers"]["length"] == 2, loc
        assert vm[0]["locals"], vm[0]   # its variables, or why they are not shown
        rc, out, err = lua_stack(ngx.worker, "-l")
        assert rc == 0, (rc, err)
        assert re.search(r'^        node = table 0x[0-9a-f]+ \{.*weight = "0"', out, re.M), out
        assert_running(ngx.worker, expect_spinning_tid=ngx.worker)
    finally:
        ngx.cleanup()


def case_follow():
    """`record -s -p MASTER` while wrk loads /busy on two workers, with a reload (SIGHUP)
    a second in: the old workers and the ones started by the reload are all sampled, each
    under its process frame, with the handler's Lua functions."""
    import shutil
    wrk = shutil.which("wrk")
    if not wrk:
        raise Skip("wrk is not installed")
    paths = prepare()
    ngx = Nginx(paths, workers=2)
    out = tempfile.mktemp(suffix=".folded")
    try:
        ngx.start()
        before = set(children(ngx.master.pid))
        load = subprocess.Popen([wrk, "-t2", "-c8", "-d12s", "http://127.0.0.1:%d/busy" % ngx.port],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        rec = subprocess.Popen([VMSTACK, "record", "-s", "-p", str(ngx.master.pid), "-d", "4",
                                "-f", "folded", "-o", out],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)   # not a readiness wait: the reload must come while recording
        os.kill(ngx.master.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        after = set()
        while time.monotonic() < deadline:
            after = set(children(ngx.master.pid)) - before
            if len(after) >= 2:
                break
            time.sleep(0.02)
        assert len(after) >= 2, "no new workers after the reload:\n" + ngx.log()
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == 0, (rec.returncode, err)
        load.wait(30)
        m = re.search(r"Wrote .* \((\d+) samples, (\d+) errors", err)
        assert m and int(m.group(1)) > 100, err
        handler = os.path.join(FIX, "handler.lua")
        fib = re.compile(r"(?:^|;)fib@%s:\d+" % re.escape(handler))
        busy = re.compile(r";busy@%s:\d+" % re.escape(handler))
        per_pid = {}
        with open(out) as f:
            for line in f:
                stack, n = line.rsplit(" ", 1)
                mp = re.match(r"nginx \(pid (\d+)\);", stack)
                assert mp, "no process frame at the root: %r" % line
                pid = int(mp.group(1))
                c = per_pid.setdefault(pid, [0, 0])
                c[0] += int(n)
                if fib.search(stack) and busy.search(stack):
                    c[1] += int(n)
        old = [p for p in before if per_pid.get(p, [0, 0])[1] > 0]
        new = [p for p in after if per_pid.get(p, [0, 0])[1] > 0]
        assert old and new, "handler samples per pid %s; old workers %s, new %s" % (
            per_pid, sorted(before), sorted(after))
        assert_running(ngx.master.pid)
        for p in children(ngx.master.pid):
            assert_running(p)
        print("samples per pid (total, in fib under busy): %s" % per_pid)
    finally:
        try:
            os.unlink(out)
        except FileNotFoundError:
            pass
        ngx.cleanup()


def case_both():
    """nginx with both its Lua and its Perl module loaded in every worker (two workers): one
    request spins in a Lua handler, another in a Perl handler (the busy worker accepts
    nothing, so the other one takes it). Each worker's stack shows its own runtime's frames
    at exact lines, every VM frame and the thread header tagged with that runtime, and
    none of the other's."""
    paths = prepare()
    ngx = Nginx(paths, workers=2, template="nginx-both.conf.in")
    try:
        ngx.start()
        ngx.request("/spin", settle_worker=False)
        ngx.request("/perlspin", settle_worker=False)
        workers = children(ngx.master.pid)
        assert len(workers) == 2, workers
        handler = os.path.join(FIX, "handler.lua")
        spin_pm = os.path.join(FIX, "Spin.pm")
        pl = {}
        with open(spin_pm) as f:
            for i, line in enumerate(f, 1):
                for m in ("perl spin here", "handler calls spin"):
                    if line.rstrip().endswith("# " + m):
                        pl[m] = i
        seen = {}
        for w in workers:
            settle(w, None)
            cp = subprocess.run([VMSTACK, "dump", "-j", "-p", str(w)], capture_output=True,
                                text=True, timeout=60)
            assert cp.returncode == 0, (w, cp.returncode, cp.stderr)
            t = json.loads(cp.stdout)["threads"][0]
            vm = [f for f in t["frames"] if f["kind"] != "native"]
            runtimes = {f["runtime"] for f in vm}
            assert len(runtimes) == 1, (w, [(f["name"], f["runtime"]) for f in vm])
            rt = runtimes.pop()
            assert rt not in seen, (rt, seen)
            seen[rt] = w
            assert t["runtime"] == rt and [r["name"] for r in t["runtimes"]] == [rt], t["runtimes"]
            got = [(f["name"], f["file"], f["line"]) for f in vm]
            if rt == "luajit":
                want = [("spin", "@" + handler, marker_line(handler, "spin here")),
                        ("leaf", "@" + handler, marker_line(handler, "leaf calls spin"))]
                assert got[:2] == want, got
            else:
                want = [("Spin::spin", spin_pm, pl["perl spin here"]),
                        ("Spin::handler", spin_pm, pl["handler calls spin"])]
                assert got[:2] == want, got
            assert_running(w, expect_spinning_tid=w)
        assert set(seen) == {"luajit", "perl"}, seen
        print("workers: %s" % seen)
    finally:
        ngx.cleanup()


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}

if __name__ == "__main__":
    raise SystemExit(main(CASES))
