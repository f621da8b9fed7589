/* Lua pause benchmark: a bare ptrace stop round trip against the pause a LuaJIT stack dump imposes. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lj_vm.h"
#include "bench_common.h"
#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"

#ifndef LUA_DEEP_SCRIPT
#define LUA_DEEP_SCRIPT "bench/lua_deep.lua"
#endif

#define WARMUP 50
#define MIN_LUA_FRAMES 30
#define READY_TIMEOUT_MS 10000
#define RUN_TIMEOUT_NS 1000000000

enum { PH_STOP, PH_CAPTURE, PH_UNWIND, PH_WALK, PH_RESUME, PH_N };
/* unwind/walk: the parts of the native unwind and Lua walk done while the thread is
 * stopped; once the runtime's capture works (from the second sample of a thread on) the
 * pause holds only that copy ("unwind" slot) and the walk runs after the resume */
static const char *const ph_name[PH_N] = { "stop", "capture", "unwind", "walk", "resume" };

static int die(const char *what, int err)
{
  fprintf(stderr, "lua_pause_bench: %s: %s\n", what, vms_strerror(err));
  return 1;
}

/* Address of counter[1]: the table's array part (an MRef in GCtab), slot 1. */
static int counter_addr(pid_t pid, const struct lj_vm *vm, uint64_t tab, uint64_t *ret)
{
  uint64_t arr = 0;
  int r = peek(pid, tab + vm->lo->tab.array, &arr, vm->lo->mref_size);
  if (r)
    return r;
  if (!arr)
    return -VMS_E_BADDATA;
  *ret = arr + vm->lo->tv_size;
  return 0;
}

/* Wait until the loop has spun `spins` times: with the JIT on, its trace exists by then. */
static int wait_spins(pid_t pid, uint64_t addr, double spins)
{
  double v = 0;
  int64_t t0 = now_ns();
  int r;
  while (!(r = peek(pid, addr, &v, sizeof v)) && v < spins)
    if (now_ns() - t0 > 10 * (int64_t)RUN_TIMEOUT_NS)
      return -ETIMEDOUT;
  return r;
}

struct ctx {
  struct target *t;
  struct thread *th;
  const struct vm_runtime *rt;
  void *vm;
  struct unwinder *u;
  struct stack_capture cap;
  struct frame *fr;
  size_t nfr;
  struct vm_frames vf;
};

/* What dump_sample_thread does with a runtime present (keep attached); phase times of the
 * pause in ph[], the memory syscalls of the runtime's walk in *ret_walk_sys. */
static int pause_round(struct ctx *c, int64_t ph[PH_N], uint64_t *ret_walk_sys)
{
  int64_t t[PH_N + 1];
  struct mem_stats w0, w1;
  c->nfr = 0;
  vm_frames_reset(&c->vf);
  t[0] = now_ns();
  int r = target_stop(c->t, c->th);
  if (r)
    return r;
  t[1] = now_ns();
  mem_invalidate(c->t->mem);
  r = unwind_capture(c->t->mem, c->t->maps, &c->th->regs, UNWIND_CAPTURE_DEFAULT, &c->cap);
  t[2] = now_ns();
  int late = !r && c->rt->capture && !c->rt->capture(c->vm, c->t, c->th, &c->cap);
  if (!r && !late)
    unwind_stack(c->u, c->t->maps, c->t->mem, &c->cap, c->fr, UNWIND_DEPTH_DEFAULT, &c->nfr);
  t[3] = now_ns();
  mem_get_stats(c->t->mem, &w0);
  if (!r && !late)
    c->rt->walk(c->vm, c->t, c->th, &c->cap, c->fr, c->nfr, &c->vf);
  mem_get_stats(c->t->mem, &w1);
  t[4] = now_ns();
  int rr = target_resume(c->t, c->th);
  t[5] = now_ns();
  if (late) {
    /* after the resume: not part of the pause */
    unwind_stack(c->u, c->t->maps, c->t->mem, &c->cap, c->fr, UNWIND_DEPTH_DEFAULT, &c->nfr);
    mem_get_stats(c->t->mem, &w0);
    c->rt->walk(c->vm, c->t, c->th, &c->cap, c->fr, c->nfr, &c->vf);
    mem_get_stats(c->t->mem, &w1);
  }
  for (int i = 0; i < PH_N; i++)
    ph[i] = t[i + 1] - t[i];
  *ret_walk_sys = w1.syscalls - w0.syscalls;
  return r ? r : rr;
}

/* Lua frames of the d01..d30 chain in the last walk. */
static size_t chain_frames(const struct vm_frames *vf)
{
  size_t n = 0;
  for (size_t i = 0; i < vf->n; i++) {
    const char *f = vf->v[i].func;
    if (vf->v[i].kind == FK_FUNCTION && f[0] == 'd' && f[1] >= '0' && f[1] <= '3' &&
        f[2] >= '0' && f[2] <= '9' && !f[3])
      n++;
  }
  return n;
}

/* One mode (interpreted or JIT): start the fixture, measure, print one JSON line. */
static int run_mode(const char *luajit, const char *script, int jit, size_t n)
{
  const char *mode = jit ? "jit" : "interpreted";
  int64_t *bare = calloc(n, sizeof *bare), *pause = calloc(n, sizeof *pause);
  int64_t *ph[PH_N];
  for (int i = 0; i < PH_N; i++)
    ph[i] = calloc(n, sizeof *ph[i]);
  struct ctx c = { 0 };
  c.fr = calloc(UNWIND_DEPTH_DEFAULT, sizeof *c.fr);
  if (!bare || !pause || !ph[0] || !ph[1] || !ph[2] || !ph[3] || !ph[4] || !c.fr)
    return die("out of memory", -ENOMEM);

  uint64_t tab = 0, counter = 0;
  char *argv[] = { (char *)luajit, jit ? (char *)script : "-joff", jit ? "{fd}" : (char *)script,
                   jit ? NULL : "{fd}", NULL };
  pid_t pid = start_ready(argv, READY_TIMEOUT_MS, &tab);
  if (pid < 0)
    return die(script, pid);

  struct dump_opts o = { .max_depth = UNWIND_DEPTH_DEFAULT,
                         .stack_bytes = UNWIND_CAPTURE_DEFAULT,
                         .only_runtime = "luajit" };
  struct dump_result res;
  memset(&res, 0, sizeof res);
  struct mem_stats s0, s1, sum = { 0 };
  uint64_t walk_sys = 0, ws;
  size_t lua_min = SIZE_MAX, chain_min = SIZE_MAX, traced = 0, nvf_min = SIZE_MAX;
  char state[40] = "";
  int status = 1, r;
  if ((r = target_open(pid, &c.t))) {
    die("target_open", r);
    goto out;
  }
  for (size_t i = 0; i < c.t->nthreads; i++)
    if (c.t->threads[i].tid == pid)
      c.th = &c.t->threads[i];
  if (!c.th) {
    fprintf(stderr, "lua_pause_bench: no main thread in the fixture\n");
    goto out;
  }
  if ((r = dump_probe(c.t, &o, &res)) || !res.nvms) {
    fprintf(stderr, "lua_pause_bench: no usable LuaJIT: %s\n",
            res.runtime_err[0] ? res.runtime_err : vms_strerror(r ? r : -VMS_E_NORUNTIME));
    goto out;
  }
  c.rt = res.vms[0].rt;
  c.vm = res.vms[0].vm;
  if ((r = unwinder_new(&c.u))) {
    die("unwinder_new", r);
    goto out;
  }
  if (c.rt->install && (r = c.rt->install(c.vm, c.u))) {
    die("install", r);
    goto out;
  }
  if ((r = counter_addr(pid, c.vm, tab, &counter))) {
    die("the fixture's spin counter", r);
    goto out;
  }
  /* the trace's machine code is mapped after the loop starts: read the maps again */
  if ((r = wait_spins(pid, counter, 1e6)) || (r = target_reload_maps(c.t))) {
    die("the fixture's spin loop", r);
    goto out;
  }
  /* seized once here, kept seized: the bare rounds use raw ptrace between its stops */
  if ((r = target_stop(c.t, c.th)) || (r = target_resume(c.t, c.th))) {
    die("target_stop", r);
    goto out;
  }
  for (size_t i = 0; i < WARMUP + n && !target_interrupted(); i++) {
    int64_t b = 0, p[PH_N];
    if ((r = wait_running(pid, counter, RUN_TIMEOUT_NS)) || (r = bare_round(c.th->tid, &b))) {
      die("bare round", r);
      goto out;
    }
    if ((r = wait_running(pid, counter, RUN_TIMEOUT_NS))) {
      die("wait", r);
      goto out;
    }
    mem_get_stats(c.t->mem, &s0);
    if ((r = pause_round(&c, p, &ws))) {
      die("pause round", r);
      goto out;
    }
    mem_get_stats(c.t->mem, &s1);
    /* checks, outside the timed region */
    size_t lua = 0;
    for (size_t k = 0; k < c.vf.n; k++)
      lua += c.vf.v[k].kind == FK_FUNCTION;
    size_t ch = chain_frames(&c.vf);
    if (lua < lua_min)
      lua_min = lua;
    if (ch < chain_min)
      chain_min = ch;
    if (c.vf.n < nvf_min)
      nvf_min = c.vf.n;
    if (i < WARMUP)
      continue;
    traced += c.vf.n && c.vf.v[0].trace > 0;
    memcpy(state, c.vf.state, sizeof state);
    bare[i - WARMUP] = b;
    int64_t tot = 0;
    for (int k = 0; k < PH_N; k++) {
      ph[k][i - WARMUP] = p[k];
      tot += p[k];
    }
    pause[i - WARMUP] = tot;
    sum.syscalls += s1.syscalls - s0.syscalls;
    walk_sys += ws;
    sum.bytes += s1.bytes - s0.bytes;
    sum.cache_hits += s1.cache_hits - s0.cache_hits;
    sum.cache_misses += s1.cache_misses - s0.cache_misses;
  }
  if (target_interrupted()) {
    fprintf(stderr, "lua_pause_bench: interrupted\n");
    goto out;
  }
  qsort(bare, n, sizeof *bare, cmp_i64);
  qsort(pause, n, sizeof *pause, cmp_i64);
  for (int k = 0; k < PH_N; k++)
    qsort(ph[k], n, sizeof *ph[k], cmp_i64);
  double b50 = pct_us(bare, n, 50), p50 = pct_us(pause, n, 50);
  printf("{\"bench\":\"lua_pause\",\"mode\":\"%s\",\"lua_frames\":%zu,\"vm_frames\":%zu,"
         "\"rounds\":%zu,\"bare_roundtrip_us_p50\":%.2f,\"bare_roundtrip_us_p90\":%.2f,"
         "\"pause_us_p50\":%.2f,\"pause_us_p90\":%.2f,\"ratio\":%.3f",
         mode, lua_min, nvf_min, n, b50, pct_us(bare, n, 90), p50, pct_us(pause, n, 90),
         b50 > 0 ? p50 / b50 : 0.0);
  for (int k = 0; k < PH_N; k++)
    printf(",\"%s_us_p50\":%.2f", ph_name[k], pct_us(ph[k], n, 50));
  printf(",\"mem_syscalls_per_pause\":%.1f,\"walk_mem_syscalls_per_pause\":%.1f,"
         "\"mem_kib_per_pause\":%.1f,"
         "\"mem_cache_hits_per_pause\":%.1f,\"mem_cache_misses_per_pause\":%.1f,"
         "\"vm_state\":\"%s\"",
         (double)sum.syscalls / (double)n, (double)walk_sys / (double)n,
         (double)sum.bytes / 1024.0 / (double)n,
         (double)sum.cache_hits / (double)n, (double)sum.cache_misses / (double)n, state);
  if (jit)
    printf(",\"leaf_trace_rounds\":%zu", traced);
  printf("}\n");
  fflush(stdout);
  status = 0;
  if (lua_min < MIN_LUA_FRAMES || chain_min < MIN_LUA_FRAMES) {
    fprintf(stderr, "lua_pause_bench: %s: shallow walk (%zu Lua frames, %zu of d01..d30)\n",
            mode, lua_min, chain_min);
    status = 1;
  }
  if (jit && traced < n) {
    fprintf(stderr, "lua_pause_bench: jit: the leaf was a trace in %zu of %zu rounds\n",
            traced, n);
    status = 1;
  }
out:
  if (status) {
    /* say why when the fixture is gone */
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      if (WIFSIGNALED(st))
        fprintf(stderr, "lua_pause_bench: %s: luajit killed by signal %d\n", mode, WTERMSIG(st));
      else if (WIFEXITED(st))
        fprintf(stderr, "lua_pause_bench: %s: luajit exited with %d\n", mode, WEXITSTATUS(st));
    }
  }
  vm_frames_free(&c.vf);
  unwinder_free(c.u);
  unwind_capture_free(&c.cap);
  dump_result_free(&res);
  target_close(c.t);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  free(bare);
  free(pause);
  for (int i = 0; i < PH_N; i++)
    free(ph[i]);
  free(c.fr);
  return status;
}

static void usage(FILE *f)
{
  fprintf(f, "Usage: lua_pause_bench [-n ROUNDS] [-s SCRIPT] [-m interpreted|jit|both]\n"
             "  -n ROUNDS   measured rounds of each kind and mode (default 2000)\n"
             "  -s SCRIPT   the fixture script (default: bench/lua_deep.lua of the source tree)\n"
             "  -m MODE     which variants to run (default both)\n");
}

int main(int argc, char **argv)
{
  long rounds = 2000;
  const char *script = LUA_DEEP_SCRIPT, *mode = "both";
  int c;
  while ((c = getopt(argc, argv, "n:s:m:h")) != -1) {
    char *end;
    switch (c) {
    case 'n':
      errno = 0;
      rounds = strtol(optarg, &end, 10);
      if (errno || *end || rounds < 1 || rounds > 10000000) {
        fprintf(stderr, "lua_pause_bench: invalid -n '%s'\n", optarg);
        return 64;
      }
      break;
    case 's':
      script = optarg;
      break;
    case 'm':
      mode = optarg;
      if (strcmp(mode, "interpreted") && strcmp(mode, "jit") && strcmp(mode, "both")) {
        fprintf(stderr, "lua_pause_bench: invalid -m '%s'\n", optarg);
        return 64;
      }
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 64;
    }
  }
  char luajit[PATH_MAX];
  if (!find_in_path("luajit", luajit, sizeof luajit)) {
    printf("{\"bench\":\"lua_pause\",\"skipped\":\"no luajit\"}\n");
    return 0;
  }
  if (access(script, R_OK)) {
    fprintf(stderr, "lua_pause_bench: %s: %s\n", script, strerror(errno));
    return 1;
  }
  target_guard_install();   /* also the SIGALRM handler target_stop's timeout relies on */
  int status = 0;
  if (strcmp(mode, "jit"))
    status |= run_mode(luajit, script, 0, (size_t)rounds);
  if (strcmp(mode, "interpreted") && !target_interrupted())
    status |= run_mode(luajit, script, 1, (size_t)rounds);
  return status;
}
