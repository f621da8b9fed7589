/* Perl pause benchmark: a bare ptrace stop round trip against the pause a Perl stack sample
 * imposes (stop, copy of the native stack and of the Perl context stacks, resume; the native
 * unwind and the Perl walk run after the resume, as record does). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/json.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"

#ifndef PERL_DEEP_SCRIPT
#define PERL_DEEP_SCRIPT "bench/perl_deep.pl"
#endif

#define WARMUP 50
#define DEPTH 30                 /* subs in the fixture's chain */
#define READY_TIMEOUT_MS 10000
#define RUN_TIMEOUT_NS 1000000000
/* where an integer SV keeps its value: the SV head is sv_any, sv_refcnt, sv_flags, sv_u in
 * every Perl 5, so sv_u is 16 bytes in on LP64 */
#define SV_U_OFF 16

enum { PH_STOP, PH_CAPTURE, PH_VM_CAPTURE, PH_STOPPED_WALK, PH_RESUME, PH_N };
/* capture: the native stack copy; vm_capture: the runtime's copy of PL_curcop and the
 * context stacks; stopped_walk: unwind and walk done while stopped, which happens only when
 * the runtime's capture declines (0 otherwise) */
static const char *const ph_name[PH_N] = { "stop", "capture", "vm_capture", "stopped_walk",
                                           "resume" };
/* after the resume, not part of the pause */
enum { LT_UNWIND, LT_WALK, LT_N };
static const char *const lt_name[LT_N] = { "unwind", "walk" };

static const char *const chain_name[4] = { "main::alpha", "main::beta", "main::gamma",
                                            "main::delta" };

static int die(const char *what, int err)
{
  fprintf(stderr, "perl_pause_bench: %s: %s\n", what, vms_strerror(err));
  return 1;
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

struct round {
  int64_t ph[PH_N];            /* the pause, by phase */
  int64_t lt[LT_N];            /* after the resume */
  struct mem_stats in, after;  /* memory reads during the pause, after it */
  int late;                    /* the runtime's capture took: walk after the resume */
};

static void stats_sub(struct mem_stats *d, const struct mem_stats *a, const struct mem_stats *b)
{
  d->syscalls = b->syscalls - a->syscalls;
  d->bytes = b->bytes - a->bytes;
  d->cache_hits = b->cache_hits - a->cache_hits;
  d->cache_misses = b->cache_misses - a->cache_misses;
}

/* What dump_sample_thread does with a runtime present (keep attached). */
static int pause_round(struct ctx *c, struct round *rd)
{
  int64_t t[PH_N + 1], l[LT_N + 1];
  struct mem_stats s0, s1, s2;
  c->nfr = 0;
  vm_frames_reset(&c->vf);
  mem_get_stats(c->t->mem, &s0);
  t[0] = now_ns();
  int r = target_stop(c->t, c->th);
  if (r)
    return r;
  t[1] = now_ns();
  mem_invalidate(c->t->mem);
  r = unwind_capture(c->t->mem, c->t->maps, &c->th->regs, UNWIND_CAPTURE_DEFAULT, &c->cap);
  t[2] = now_ns();
  int late = !r && c->rt->capture && !c->rt->capture(c->vm, c->t, c->th, &c->cap);
  t[3] = now_ns();
  if (!r && !late) {
    unwind_stack(c->u, c->t->maps, c->t->mem, &c->cap, c->fr, UNWIND_DEPTH_DEFAULT, &c->nfr);
    c->rt->walk(c->vm, c->t, c->th, &c->cap, c->fr, c->nfr, &c->vf);
  }
  t[4] = now_ns();
  int rr = target_resume(c->t, c->th);
  t[5] = now_ns();
  mem_get_stats(c->t->mem, &s1);
  l[0] = now_ns();
  if (!r && late)
    unwind_stack(c->u, c->t->maps, c->t->mem, &c->cap, c->fr, UNWIND_DEPTH_DEFAULT, &c->nfr);
  l[1] = now_ns();
  if (!r && late)
    c->rt->walk(c->vm, c->t, c->th, &c->cap, c->fr, c->nfr, &c->vf);
  l[2] = now_ns();
  mem_get_stats(c->t->mem, &s2);
  for (int i = 0; i < PH_N; i++)
    rd->ph[i] = t[i + 1] - t[i];
  for (int i = 0; i < LT_N; i++)
    rd->lt[i] = l[i + 1] - l[i];
  stats_sub(&rd->in, &s0, &s1);
  stats_sub(&rd->after, &s1, &s2);
  rd->late = late;
  return r ? r : rr;
}

static int ends_with(const char *s, const char *tail)
{
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && !strcmp(s + a - b, tail) && (a == b || s[a - b - 1] == '/');
}

/* Perl frames of the last walk; in *ret_chain those in the place the fixture puts them:
 * innermost first the DEPTHth sub of alpha beta gamma delta alpha ..., then the main
 * program. */
static size_t perl_frames(const struct vm_frames *vf, size_t *ret_chain)
{
  size_t n = 0, chain = 0;
  for (size_t i = 0; i < vf->n; i++) {
    const struct vm_frame *v = &vf->v[i];
    if (v->kind != FK_FUNCTION)
      continue;
    if (n < DEPTH)
      chain += !strcmp(v->func, chain_name[(DEPTH - 1 - n) % 4]) &&
               ends_with(v->file, "perl_deep.pl") && v->line > 0;
    else if (n == DEPTH)
      chain += !strcmp(v->func, "main") && ends_with(v->file, "perl_deep.pl");
    n++;
  }
  *ret_chain = chain;
  return n;
}

static int run(const char *perl, const char *script, size_t n)
{
  int64_t *bare = calloc(n, sizeof *bare), *pause = calloc(n, sizeof *pause);
  int64_t *ph[PH_N], *lt[LT_N];
  int oom = !bare || !pause;
  for (int i = 0; i < PH_N; i++)
    oom |= !(ph[i] = calloc(n, sizeof *ph[i]));
  for (int i = 0; i < LT_N; i++)
    oom |= !(lt[i] = calloc(n, sizeof *lt[i]));
  struct ctx c = { 0 };
  c.fr = calloc(UNWIND_DEPTH_DEFAULT, sizeof *c.fr);
  if (oom || !c.fr)
    return die("out of memory", -ENOMEM);

  uint64_t sv = 0, counter;
  char depth[16];
  snprintf(depth, sizeof depth, "%d", DEPTH);
  char *argv[] = { (char *)perl, (char *)script, "{fd}", depth, NULL };
  pid_t pid = start_ready(argv, READY_TIMEOUT_MS, &sv);
  if (pid < 0)
    return die(script, pid);
  counter = sv + SV_U_OFF;

  struct dump_opts o = { .max_depth = UNWIND_DEPTH_DEFAULT,
                         .stack_bytes = UNWIND_CAPTURE_DEFAULT,
                         .only_runtime = "perl" };
  struct dump_result res;
  memset(&res, 0, sizeof res);
  struct mem_stats in = { 0 }, after = { 0 };
  size_t pl_min = SIZE_MAX, chain_min = SIZE_MAX, nvf_min = SIZE_MAX, early = 0, walk_errs = 0;
  int first_err = 0;
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
    fprintf(stderr, "perl_pause_bench: no main thread in the fixture\n");
    goto out;
  }
  if ((r = dump_probe(c.t, &o, &res)) || !res.nvms) {
    fprintf(stderr, "perl_pause_bench: no usable Perl: %s\n",
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
  /* the counter moves: its address is right and the loop runs */
  if ((r = wait_running(pid, counter, RUN_TIMEOUT_NS))) {
    die("the fixture's spin counter", r);
    goto out;
  }
  /* seized once here, kept seized: the bare rounds use raw ptrace between its stops */
  if ((r = target_stop(c.t, c.th)) || (r = target_resume(c.t, c.th))) {
    die("target_stop", r);
    goto out;
  }
  for (size_t i = 0; i < WARMUP + n && !target_interrupted(); i++) {
    int64_t b = 0;
    struct round rd;
    if ((r = wait_running(pid, counter, RUN_TIMEOUT_NS)) || (r = bare_round(c.th->tid, &b))) {
      die("bare round", r);
      goto out;
    }
    if ((r = wait_running(pid, counter, RUN_TIMEOUT_NS))) {
      die("wait", r);
      goto out;
    }
    if ((r = pause_round(&c, &rd))) {
      die("pause round", r);
      goto out;
    }
    /* checks, outside the timed region */
    size_t ch, pl = perl_frames(&c.vf, &ch);
    if (pl < pl_min)
      pl_min = pl;
    if (ch < chain_min)
      chain_min = ch;
    if (c.vf.n < nvf_min)
      nvf_min = c.vf.n;
    if (c.vf.err) {
      walk_errs++;
      if (!first_err)
        first_err = c.vf.err;
    }
    if (i < WARMUP)
      continue;
    early += !rd.late;
    memcpy(state, c.vf.state, sizeof state);
    bare[i - WARMUP] = b;
    int64_t tot = 0;
    for (int k = 0; k < PH_N; k++) {
      ph[k][i - WARMUP] = rd.ph[k];
      tot += rd.ph[k];
    }
    pause[i - WARMUP] = tot;
    for (int k = 0; k < LT_N; k++)
      lt[k][i - WARMUP] = rd.lt[k];
    in.syscalls += rd.in.syscalls;
    in.bytes += rd.in.bytes;
    in.cache_hits += rd.in.cache_hits;
    in.cache_misses += rd.in.cache_misses;
    after.syscalls += rd.after.syscalls;
    after.bytes += rd.after.bytes;
  }
  if (target_interrupted()) {
    fprintf(stderr, "perl_pause_bench: interrupted\n");
    goto out;
  }
  qsort(bare, n, sizeof *bare, cmp_i64);
  qsort(pause, n, sizeof *pause, cmp_i64);
  for (int k = 0; k < PH_N; k++)
    qsort(ph[k], n, sizeof *ph[k], cmp_i64);
  for (int k = 0; k < LT_N; k++)
    qsort(lt[k], n, sizeof *lt[k], cmp_i64);
  double b50 = pct_us(bare, n, 50), p50 = pct_us(pause, n, 50), dn = (double)n;
  printf("{\"bench\":\"perl_pause\",\"perl\":");
  json_str(stdout, c.rt->describe(c.vm));
  printf(",\"depth\":%d,\"perl_frames\":%zu,\"chain_frames\":%zu,\"vm_frames\":%zu,"
         "\"rounds\":%zu,\"bare_roundtrip_us_p50\":%.2f,\"bare_roundtrip_us_p90\":%.2f,"
         "\"pause_us_p50\":%.2f,\"pause_us_p90\":%.2f,\"ratio\":%.3f",
         DEPTH, pl_min, chain_min, nvf_min, n, b50, pct_us(bare, n, 90), p50,
         pct_us(pause, n, 90), b50 > 0 ? p50 / b50 : 0.0);
  for (int k = 0; k < PH_N; k++)
    printf(",\"%s_us_p50\":%.2f", ph_name[k], pct_us(ph[k], n, 50));
  printf(",\"mem_syscalls_per_pause\":%.1f,\"mem_kib_per_pause\":%.1f,"
         "\"mem_cache_hits_per_pause\":%.1f,\"mem_cache_misses_per_pause\":%.1f,"
         "\"stopped_walk_rounds\":%zu",
         (double)in.syscalls / dn, (double)in.bytes / 1024.0 / dn,
         (double)in.cache_hits / dn, (double)in.cache_misses / dn, early);
  for (int k = 0; k < LT_N; k++)
    printf(",\"%s_us_p50\":%.2f", lt_name[k], pct_us(lt[k], n, 50));
  printf(",\"walk_mem_syscalls_per_sample\":%.1f,\"walk_mem_kib_per_sample\":%.1f,"
         "\"walk_errors\":%zu,\"vm_state\":\"%s\"}\n",
         (double)after.syscalls / dn, (double)after.bytes / 1024.0 / dn, walk_errs, state);
  fflush(stdout);
  status = 0;
  if (pl_min < DEPTH + 1 || chain_min < DEPTH + 1) {
    fprintf(stderr, "perl_pause_bench: shallow or wrong walk (%zu Perl frames, %zu of the "
            "%d subs and main in place)\n", pl_min, chain_min, DEPTH);
    status = 1;
  }
  if (walk_errs) {
    fprintf(stderr, "perl_pause_bench: the walk ended early in %zu rounds (%s)\n", walk_errs,
            vms_strerror(first_err));
    status = 1;
  }
out:
  if (status) {
    /* say why when the fixture is gone */
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      if (WIFSIGNALED(st))
        fprintf(stderr, "perl_pause_bench: perl killed by signal %d\n", WTERMSIG(st));
      else if (WIFEXITED(st))
        fprintf(stderr, "perl_pause_bench: perl exited with %d\n", WEXITSTATUS(st));
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
  for (int i = 0; i < LT_N; i++)
    free(lt[i]);
  free(c.fr);
  return status;
}

static void usage(FILE *f)
{
  fprintf(f, "Usage: perl_pause_bench [-n ROUNDS] [-s SCRIPT]\n"
             "  -n ROUNDS   measured rounds of each kind (default 2000)\n"
             "  -s SCRIPT   the fixture script (default: bench/perl_deep.pl of the source tree)\n"
             "perl is the first one on PATH.\n");
}

int main(int argc, char **argv)
{
  long rounds = 2000;
  const char *script = PERL_DEEP_SCRIPT;
  int c;
  while ((c = getopt(argc, argv, "n:s:h")) != -1) {
    char *end;
    switch (c) {
    case 'n':
      errno = 0;
      rounds = strtol(optarg, &end, 10);
      if (errno || *end || rounds < 1 || rounds > 10000000) {
        fprintf(stderr, "perl_pause_bench: invalid -n '%s'\n", optarg);
        return 64;
      }
      break;
    case 's':
      script = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 64;
    }
  }
  char perl[PATH_MAX];
  if (!find_in_path("perl", perl, sizeof perl)) {
    printf("{\"bench\":\"perl_pause\",\"skipped\":\"no perl\"}\n");
    return 0;
  }
  if (access(script, R_OK)) {
    fprintf(stderr, "perl_pause_bench: %s: %s\n", script, strerror(errno));
    return 1;
  }
  target_guard_install();   /* also the SIGALRM handler target_stop's timeout relies on */
  return run(perl, script, (size_t)rounds);
}
