#!/usr/bin/env python3
"""Sampling overhead: the throughput a 30-deep LuaJIT workload loses while `vmstack record`
(and, for reference, `perf record -g`) samples it, and the sampler's own CPU time.

Usage: overhead.py [VMSTACK [SCRIPT]]
Env: OVERHEAD_WINDOWS (windows per rate, default 3), OVERHEAD_WINDOW_S (default 3),
     OVERHEAD_RATES (default "99 999"), OVERHEAD_PERF (0 skips perf), OVERHEAD_JIT (1: JIT on),
     OVERHEAD_VERBOSE (1: one line per window on stderr).

Windows alternate: off, 99 Hz, off, 999 Hz, off, perf, off, ... (W s each). A sampled window
is the time vmstack holds the target (TracerPid), or perf's first to last sample (-k mono);
an off window is W s of nothing. Throughput: the workload's own units/s (bench/throughput.lua
reports its count with CLOCK_MONOTONIC). Loss = 1 - mean over sampled windows of
with / mean(off before, off after). "_runnable" figures leave out the time the workload
waited for a CPU (schedstat run delay): other load on the machine, the main noise here.
Figures only, never assertions.
"""
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PERF_HZ = 99
POLL_S = 0.001


def log(msg):
    print("overhead: " + msg, file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def env_num(name, default, kind):
    try:
        v = kind(os.environ.get(name, default))
    except ValueError:
        v = 0
    if v <= 0:
        die("invalid %s=%r" % (name, os.environ.get(name)))
    return v


ARGS = sys.argv[1:] + [None, None]
VMSTACK = os.path.abspath(ARGS[0] or os.path.join(ROOT, "build", "vmstack"))
SCRIPT = os.path.abspath(ARGS[1] or os.path.join(HERE, "throughput.lua"))
WINDOWS = env_num("OVERHEAD_WINDOWS", 3, int)
WINDOW_S = env_num("OVERHEAD_WINDOW_S", 3, float)
try:
    RATES = [int(r) for r in os.environ.get("OVERHEAD_RATES", "99 999").split()]
except ValueError:
    die("invalid OVERHEAD_RATES=%r" % os.environ["OVERHEAD_RATES"])
USE_PERF = os.environ.get("OVERHEAD_PERF", "1") != "0"
JIT = os.environ.get("OVERHEAD_JIT", "0") == "1"
VERBOSE = os.environ.get("OVERHEAD_VERBOSE", "0") == "1"


class PerfFailed(Exception):
    pass


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1][:160] if lines else "no message"


def tracer(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def run_ns(pid):
    """CPU time of pid's main thread so far (ns, /proc/PID/schedstat); None once it is gone."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def reap(proc):
    """wait4 the child: (exit status, its user+system CPU seconds)."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, ru.ru_utime + ru.ru_stime


def off_window():
    t0 = time.monotonic()
    time.sleep(WINDOW_S)
    return {"kind": "off", "t0": t0, "t1": time.monotonic()}


def vmstack_window(pid, rate, tmp):
    out = os.path.join(tmp, "r%d.folded" % rate)
    t_spawn = time.monotonic()
    p = subprocess.Popen([VMSTACK, "record", "-p", str(pid), "-r", str(rate),
                          "-d", "%g" % WINDOW_S, "-o", out],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    # the window: from the seize to the detach (-d counts from the attach, after the probe)
    while tracer(pid) != p.pid and p.poll() is None and time.monotonic() - t_spawn < 30:
        time.sleep(POLL_S)
    t0 = time.monotonic()
    cpu0 = run_ns(p.pid)
    time.sleep(max(0.0, WINDOW_S - 0.2))
    while tracer(pid) == p.pid and time.monotonic() - t0 < WINDOW_S + 30:
        time.sleep(POLL_S)
    t1 = time.monotonic()
    cpu1 = run_ns(p.pid)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    rc, cpu_total = reap(p)
    m = re.search(r"\((\d+) samples, (\d+) errors, (\d+) late\)", err)
    if rc != 0 or not m or cpu0 is None:
        die("vmstack record -r %d failed (exit %d): %s" % (rate, rc, err.strip()))
    return {"kind": "vmstack", "rate": rate, "t0": t0, "t1": t1,
            "samples": int(m.group(1)), "errors": int(m.group(2)), "late": int(m.group(3)),
            # CPU while attached (main thread's schedstat) and of the whole run (wait4)
            "cpu_attached": (cpu1 - cpu0) / 1e9 if cpu1 is not None else None,
            "cpu_total": cpu_total}


def perf_window(pid, tmp):
    data = os.path.join(tmp, "perf.data")
    # -k mono: sample times on CLOCK_MONOTONIC, the workload's and this script's clock
    p = subprocess.Popen(["perf", "record", "-q", "-F", str(PERF_HZ), "-g", "-k", "mono",
                          "--no-buildid", "-p", str(pid), "-o", data,
                          "--", "sleep", "%g" % WINDOW_S],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    rc, cpu_total = reap(p)
    if rc != 0:
        raise PerfFailed("perf record exit %d: %s" % (rc, last_line(err)))
    s = subprocess.run(["perf", "script", "-i", data, "-F", "time"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    times = [float(t) for t in re.findall(r"(\d+\.\d+):", s.stdout)]
    if s.returncode != 0 or len(times) < 2:
        raise PerfFailed("perf script: %d samples: %s" % (len(times), last_line(s.stderr)))
    return {"kind": "perf", "rate": PERF_HZ, "t0": min(times), "t1": max(times),
            "samples": len(times), "cpu_total": cpu_total}


def perf_usable():
    """None when perf runs here, else why not."""
    if not shutil.which("perf"):
        return "no perf (Debian: apt-get install linux-perf)"
    try:
        r = subprocess.run(["perf", "stat", "-e", "task-clock", "true"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "perf stat: %s" % e
    if r.returncode != 0:
        return "perf stat -e task-clock true: " + last_line(r.stderr or "exit %d" % r.returncode)
    return None


def cpu_ticks():
    """(busy, steal) ticks of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7]


def parse_reports(path):
    """The workload's reports: [(mono s, units, CPU s, wait s)] (wait: None without schedstat).
    CPU time from os.clock (exact; schedstat's lags by up to a tick while running)."""
    rows = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) != 5:
                continue   # a torn last line
            try:
                wait = int(p[4])
                rows.append((int(p[1]) / 1e9, int(p[0]), float(p[2]),
                             wait / 1e9 if wait >= 0 else None))
            except ValueError:
                pass
    return rows


def measure(rows, w):
    """Throughput between the first and the last report inside the window: units per wall
    second, per second not spent waiting for a CPU, and the share of time neither running
    nor waiting (stopped by the sampler)."""
    inside = [r for r in rows if w["t0"] <= r[0] <= w["t1"]]
    w["tput"] = w["tput_runnable"] = w["stopped"] = None
    if len(inside) < 2:
        return
    a, b = inside[0], inside[-1]
    dt, du = b[0] - a[0], b[1] - a[1]
    w["tput"] = du / dt
    if a[3] is not None and b[3] is not None:
        wait, run = b[3] - a[3], b[2] - a[2]
        w["tput_runnable"] = du / (dt - wait) if dt > wait else None
        w["stopped"] = max(0.0, 1 - (run + wait) / dt)


def jline(d):
    return json.dumps(d, separators=(",", ":"))


def mean(v):
    return sum(v) / len(v) if v else None


def r2(v, k=2):
    return round(v, k) if v is not None else None


def loss(wins, i, key):
    """1 - with / mean of the off windows on either side, or None."""
    near = [wins[j][key] for j in (i - 1, i + 1)
            if 0 <= j < len(wins) and wins[j]["kind"] == "off" and wins[j][key]]
    return 1 - wins[i][key] / mean(near) if near and wins[i][key] else None


def summarise(wins, kind, rate):
    idx = [i for i, w in enumerate(wins) if w["kind"] == kind and w["rate"] == rate and w["tput"]]
    losses = [loss(wins, i, "tput") for i in idx]
    idx = [i for i, l in zip(idx, losses) if l is not None]
    losses = [l for l in losses if l is not None]
    if not idx:
        return None
    ws = [wins[i] for i in idx]
    lr = [l for l in (loss(wins, i, "tput_runnable") for i in idx) if l is not None]
    stopped = [w["stopped"] for w in ws if w["stopped"] is not None]
    secs = sum(w["t1"] - w["t0"] for w in ws)
    out = {"rate_hz": rate, "windows": len(ws), "window_s": round(secs / len(ws), 3),
           "throughput_loss_pct": r2(100 * mean(losses)),
           "loss_pct_min": r2(100 * min(losses)), "loss_pct_max": r2(100 * max(losses)),
           "throughput_loss_pct_runnable": r2(100 * mean(lr)) if lr else None,
           "workload_stopped_pct": r2(100 * mean(stopped), 3) if stopped else None,
           "samples_per_s": round(sum(w["samples"] for w in ws) / secs, 1)}
    cpu_total = 100 * sum(w["cpu_total"] for w in ws) / secs
    if kind == "vmstack":
        att = [w["cpu_attached"] / (w["t1"] - w["t0"]) for w in ws if w["cpu_attached"] is not None]
        out["vmstack_cpu_pct_of_core"] = r2(100 * mean(att), 3) if att else None
        # wait4: the whole run, probe and output included, per attached second
        out["vmstack_cpu_pct_of_core_total"] = r2(cpu_total, 3)
        out["errors"] = sum(w["errors"] for w in ws)
        out["late"] = sum(w["late"] for w in ws)
    else:
        out["perf_cpu_pct_of_core_total"] = r2(cpu_total, 3)   # perf's start and exit included
    return out


def main():
    luajit = shutil.which("luajit")
    if not luajit:
        print('{"bench":"overhead","skipped":"no luajit"}')
        print('{"bench":"perf_reference","skipped":"no luajit"}')
        return 0
    if not os.access(VMSTACK, os.X_OK):
        die("no vmstack at %s (build first, or give its path)" % VMSTACK)
    if not os.access(SCRIPT, os.R_OK):
        die("no workload script at %s" % SCRIPT)
    perf_skip = perf_usable() if USE_PERF else "OVERHEAD_PERF=0"

    tick = os.sysconf("SC_CLK_TCK")
    busy0, steal0 = cpu_ticks()
    t_start = time.monotonic()
    ru0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    tmp = tempfile.mkdtemp(prefix="vmstack-overhead.")
    reports = os.path.join(tmp, "throughput.txt")
    wl = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with open(reports, "w") as f:
            wl = subprocess.Popen([luajit] + ([] if JIT else ["-joff"]) + [SCRIPT],
                                  stdin=subprocess.DEVNULL, stdout=f)
        t = time.monotonic()
        while len(parse_reports(reports)) < 2:
            if wl.poll() is not None or time.monotonic() - t > 10:
                die("the workload did not start (exit %s)" % wl.poll())
            time.sleep(0.05)
        time.sleep(0.5)   # settle

        kinds = [("vmstack", r) for r in RATES] + [("perf", PERF_HZ)]
        wins = []
        for _ in range(WINDOWS):
            for kind, rate in kinds:
                if kind == "perf" and perf_skip is not None:
                    continue
                wins.append(off_window())
                if kind == "vmstack":
                    wins.append(vmstack_window(wl.pid, rate, tmp))
                    continue
                try:
                    wins.append(perf_window(wl.pid, tmp))
                except PerfFailed as e:
                    perf_skip = str(e)   # cannot run here: reported as skipped
        wins.append(off_window())
        if wl.poll() is not None:
            die("the workload exited with %s" % wl.returncode)
        wl.kill()
        wl.wait()
        # CPU used by neither this bench nor its children: other load, the main noise
        busy1, steal1 = cpu_ticks()
        el = time.monotonic() - t_start
        ru1 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        own = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(ru0, ru1))
        other = max(0.0, (busy1 - busy0) / tick - own) / el

        rows = parse_reports(reports)
        for w in wins:
            w.setdefault("rate", None)
            measure(rows, w)
            if VERBOSE:
                log("%-7s %4s Hz %.2f s: %s units/s, %s runnable, stopped %s%%" % (
                    w["kind"], w["rate"] or "-", w["t1"] - w["t0"],
                    "%.0f" % w["tput"] if w["tput"] else "?",
                    "%.0f" % w["tput_runnable"] if w["tput_runnable"] else "?",
                    "%.3f" % (100 * w["stopped"]) if w["stopped"] is not None else "?"))
        offs = [w["tput"] for w in wins if w["kind"] == "off" and w["tput"]]
        m = mean(offs)
        noise = 0
        if len(offs) > 1:
            noise = (sum((x - m) ** 2 for x in offs) / (len(offs) - 1)) ** 0.5 / m
        stopped = mean([w["stopped"] for w in wins
                        if w["kind"] == "off" and w["stopped"] is not None])
        common = {"mode": "jit" if JIT else "interpreted", "off_units_per_s": r2(m, 1),
                  "off_noise_pct": r2(100 * noise),   # relative stddev of the off windows
                  # baseline of workload_stopped_pct: IRQ and steal time count as stopped too
                  "off_stopped_pct": r2(100 * stopped, 3) if stopped is not None else None,
                  "other_busy_cores": r2(other, 3),
                  "steal_cores": r2((steal1 - steal0) / tick / el, 3), "cpus": os.cpu_count()}
        status = 0
        for kind, rate in kinds:
            name = "overhead" if kind == "vmstack" else "perf_reference"
            if kind == "perf" and perf_skip is not None:
                print(jline({"bench": name, "skipped": perf_skip}), flush=True)
                continue
            s = summarise(wins, kind, rate)
            if not s:
                log("%s: no usable windows at %d Hz" % (name, rate))
                status = 1
                continue
            print(jline(dict({"bench": name}, **s, **common)), flush=True)
        return status
    finally:
        if wl and wl.poll() is None:
            wl.kill()
            wl.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
