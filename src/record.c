/* Sampling profiler: stop each thread briefly at random (Poisson) intervals, keep raw frames
 * as aggregated keys, name them only after the target is released. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/profile.h"
#include "vmstack/runtime.h"
#include "vmstack/symbolize.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"

/* -- Keys: one 64-bit word per frame ---------------------------------------
 * native: pc | exact << 56; VM/JIT/thread frames: tag << 60 | interned string id */

#define KEY_TAG(k) ((k) >> 60)
#define KEY_NATIVE 0
#define KEY_THREAD 1
#define KEY_VM 2
#define KEY_JIT 3
#define KEY_EXACT (1ull << 56)
#define PC_MASK (KEY_EXACT - 1)

struct pstack {
  uint64_t hash, count;
  uint32_t n;
  uint64_t *keys;          /* leaf first */
};

struct profile {
  struct pstack *tab;
  size_t cap, used;
  char **strs;
  size_t nstrs, capstrs;
  uint32_t *strtab;        /* open addressing over strs (index + 1) */
  size_t strcap;
  uint64_t total;
  struct maps *maps;       /* for naming native frames (owned by the target) */
};

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static int64_t intern(struct profile *p, const char *s)
{
  if (p->nstrs * 2 >= p->strcap) {
    size_t nc = p->strcap ? p->strcap * 2 : 1024;
    uint32_t *nt = calloc(nc, sizeof *nt);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < p->nstrs; i++) {
      size_t j = hash_bytes(p->strs[i], strlen(p->strs[i]), 14695981039346656037ull) & (nc - 1);
      while (nt[j])
        j = (j + 1) & (nc - 1);
      nt[j] = (uint32_t)i + 1;
    }
    free(p->strtab);
    p->strtab = nt;
    p->strcap = nc;
  }
  size_t j = hash_bytes(s, strlen(s), 14695981039346656037ull) & (p->strcap - 1);
  while (p->strtab[j]) {
    if (!strcmp(p->strs[p->strtab[j] - 1], s))
      return p->strtab[j] - 1;
    j = (j + 1) & (p->strcap - 1);
  }
  if (p->nstrs == p->capstrs) {
    size_t nc = p->capstrs ? p->capstrs * 2 : 256;
    char **ns = realloc(p->strs, nc * sizeof *ns);
    if (!ns)
      return -ENOMEM;
    p->strs = ns;
    p->capstrs = nc;
  }
  char *d = strdup(s);
  if (!d)
    return -ENOMEM;
  p->strs[p->nstrs] = d;
  p->strtab[j] = (uint32_t)++p->nstrs;
  return (int64_t)p->nstrs - 1;
}

static int add_stack(struct profile *p, const uint64_t *keys, uint32_t n)
{
  if (p->used * 2 >= p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 1024;
    struct pstack *nt = calloc(nc, sizeof *nt);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < p->cap; i++) {
      if (!p->tab[i].keys)
        continue;
      size_t j = p->tab[i].hash & (nc - 1);
      while (nt[j].keys)
        j = (j + 1) & (nc - 1);
      nt[j] = p->tab[i];
    }
    free(p->tab);
    p->tab = nt;
    p->cap = nc;
  }
  uint64_t h = hash_bytes(keys, n * sizeof *keys, 14695981039346656037ull ^ n);
  size_t j = h & (p->cap - 1);
  while (p->tab[j].keys) {
    struct pstack *s = &p->tab[j];
    if (s->hash == h && s->n == n && !memcmp(s->keys, keys, n * sizeof *keys)) {
      s->count++;
      p->total++;
      return 0;
    }
    j = (j + 1) & (p->cap - 1);
  }
  uint64_t *k = malloc((n ? n : 1) * sizeof *k);
  if (!k)
    return -ENOMEM;
  memcpy(k, keys, n * sizeof *k);
  p->tab[j] = (struct pstack){ h, 1, n, k };
  p->used++;
  p->total++;
  return 0;
}

void profile_free(struct profile *p)
{
  if (!p)
    return;
  for (size_t i = 0; i < p->cap; i++)
    free(p->tab[i].keys);
  for (size_t i = 0; i < p->nstrs; i++)
    free(p->strs[i]);
  free(p->tab);
  free(p->strs);
  free(p->strtab);
  free(p);
}

/* "func@file:line" for a VM frame; chunk names lose their '@' or '=' */
static void vm_name(const struct vm_frame *v, char *buf, size_t cap)
{
  const char *file = v->file[0] == '@' || v->file[0] == '=' ? v->file + 1 : v->file;
  if (!file[0])
    snprintf(buf, cap, "%s", v->func);
  else if (v->line > 0)
    snprintf(buf, cap, "%s@%s:%d", v->func, file, v->line);
  else
    snprintf(buf, cap, "%s@%s", v->func, file);
}

/* -- Sampling ----------------------------------------------------------- */

static void on_chld(int sig)
{
  (void)sig;   /* only to cut sleeps short: stops of traced threads are handled at once */
}

static struct thread *find_thread(struct target *t, pid_t tid)
{
  for (size_t i = 0; i < t->nthreads; i++)
    if (t->threads[i].tid == tid)
      return &t->threads[i];
  return NULL;
}

/* Stops we did not ask for: a signal for the target (passed on at once), job control
 * (kept: LISTEN), a thread or the whole target exiting. */
static void reap(struct target *t, struct profile_stats *st)
{
  for (;;) {
    int status;
    pid_t tid = waitpid(-1, &status, WNOHANG | __WALL);
    if (tid <= 0)
      return;
    struct thread *th = find_thread(t, tid);
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      if (th)
        th->seized = th->stopped = 0;
      if (tid == t->pid)
        st->target_gone = 1;
      continue;
    }
    if (!th || !WIFSTOPPED(status))
      continue;
    int sig = WSTOPSIG(status), ev = (unsigned)status >> 16;
    if (ev == PTRACE_EVENT_STOP && (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN ||
                                    sig == SIGTTOU))
      ptrace(PTRACE_LISTEN, tid, 0, 0);
    else
      ptrace(PTRACE_CONT, tid, 0, (void *)(long)(ev == 0 ? sig : 0));
  }
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sleep until `when`, or until a tracee stops (SIGCHLD). SIGCHLD stays blocked outside
 * this sleep and ppoll unblocks it atomically, so a stop that comes just before the sleep
 * still ends it at once: a thread stopped by a signal for it never waits for our next
 * sample. */
static void sleep_until(double when, const sigset_t *during)
{
  double d = when - now_s();
  if (d <= 0)
    return;
  struct timespec ts = { (time_t)d, (long)((d - (time_t)d) * 1e9) };
  ppoll(NULL, 0, &ts, during);
}

/* Uniform in (0, 1] from a small xorshift generator. */
static double uniform(uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return ((*s >> 11) + 1) / 9007199254740992.0;
}

static int keys_of(struct profile *p, const struct thread *th, const struct dump_walk *w,
                   enum stack_view view, struct pick *pk, uint64_t *keys,
                   uint32_t *ret_n)
{
  size_t m = stack_pick(w->fr, w->n, &w->vf, view, pk);
  uint32_t n = 0;
  char buf[512];
  for (size_t i = 0; i < m; i++) {
    if (pk[i].vm) {
      const struct vm_frame *v = &w->vf.v[pk[i].idx];
      if (v->kind == VMF_CFUNC) {
        keys[n++] = (v->cfunc & PC_MASK) | KEY_EXACT;
        continue;
      }
      vm_name(v, buf, sizeof buf);
      for (char *c = buf; *c; c++)
        if (*c == ';' || *c == '\n')
          *c = ':';
      int64_t id = intern(p, buf);
      if (id < 0)
        return (int)id;
      keys[n++] = ((uint64_t)(v->trace ? KEY_JIT : KEY_VM) << 60) | (uint64_t)id;
    } else {
      const struct frame *f = &w->fr[pk[i].idx];
      keys[n++] = (f->pc & PC_MASK) | (f->flags & FRAME_F_EXACT ? KEY_EXACT : 0);
    }
  }
  /* the thread at the root, always: per-thread outputs need it, the others drop it */
  {
    snprintf(buf, sizeof buf, "%s-%d", th->name, (int)th->tid);
    int64_t id = intern(p, buf);
    if (id < 0)
      return (int)id;
    keys[n++] = ((uint64_t)KEY_THREAD << 60) | (uint64_t)id;
  }
  *ret_n = n;
  return 0;
}

static void progress(const struct record_opts *o, const struct target *t,
                     const struct profile_stats *st, double elapsed, int last)
{
  if (!o->progress)
    return;
  fprintf(stderr, "\rvmstack: recording %d: %.1f s, %" PRIu64 " samples, %" PRIu64 " errors%s",
          (int)t->pid, elapsed, st->samples, st->errors, last ? "\n" : "   ");
}

int record_run(struct target *t, const struct record_opts *o, struct profile **ret_prof,
               struct profile_stats *st)
{
  struct dump_result res;
  struct dump_opts dopts = { .max_depth = o->max_depth, .stack_bytes = o->stack_bytes,
                             .view = o->view, .only_runtime = o->only_runtime };
  struct unwinder *u = NULL;
  struct stack_capture cap = { 0 };
  struct dump_walk w = { 0 };
  struct profile *p = calloc(1, sizeof *p);
  struct pick *pk = NULL;
  sigset_t chld, during;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  uint64_t *keys = NULL;
  memset(st, 0, sizeof *st);
  memset(&res, 0, sizeof res);
  int r = -ENOMEM;
  w.fr = calloc(o->max_depth, sizeof *w.fr);
  pk = calloc(o->max_depth + 8192, sizeof *pk);
  keys = calloc(o->max_depth + 8192 + 1, sizeof *keys);
  if (!p || !w.fr || !pk || !keys || (r = unwinder_new(&u)))
    goto out;
  p->maps = NULL;
  int perr = dump_probe(t, &dopts, &res);
  if (o->only_runtime && (perr || !res.nvms)) {
    r = perr ? perr : -VMS_E_NORUNTIME;
    goto out;
  }
  for (size_t i = 0; i < res.nvms; i++)
    if (res.vms[i].rt->install)
      res.vms[i].rt->install(res.vms[i].vm, u);
  w.nvms = res.nvms;
  size_t nmods_seen = t->maps->nmods;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_chld;
  sigaction(SIGCHLD, &sa, NULL);
  sigprocmask(SIG_BLOCK, &chld, &during);
  sigdelset(&during, SIGCHLD);
  if ((r = target_attach(t)))
    goto out;
  double period = 1.0 / o->rate, start = now_s(), next = start, last_refresh = start,
         last_progress = start, last_tick = start;
  uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
  while (!target_interrupted() && !st->target_gone) {
    reap(t, st);
    double now = now_s();
    if (o->duration > 0 && now - start >= o->duration)
      break;
    if (now < next) {
      sleep_until(o->duration > 0 && next > start + o->duration ? start + o->duration : next,
                  &during);
      continue;   /* woken early by SIGCHLD, or to check the end */
    }
    if (now - next > period) {
      st->late++;
      next = now;
    }
    next += -log(uniform(&rng)) * period;
    if (now - last_refresh > 0.25) {
      /* threads started since: seize them too; forget those gone */
      reap(t, st);
      target_prune_threads(t);
      target_attach(t);
      last_refresh = now;
      /* no VM yet, but a program just started may still be loading it (a libluajit
       * mapped by the dynamic loader after exec): look again when the maps change */
      if (!res.nvms && !perr && !target_reload_maps(t) && t->maps->nmods != nmods_seen) {
        nmods_seen = t->maps->nmods;
        unwinder_flush(u);
        perr = dump_probe(t, &dopts, &res);
        for (size_t i = 0; i < res.nvms; i++)
          if (res.vms[i].rt->install)
            res.vms[i].rt->install(res.vms[i].vm, u);
        w.nvms = res.nvms;
      }
    }
    for (size_t i = 0; i < t->nthreads && !target_interrupted(); i++) {
      struct thread *th = &t->threads[i];
      if (!th->seized)
        continue;
      char state = 'R';
      if (!o->idle && (target_thread_state(t, th, &state) ||
                       state == 'S' || state == 'D' || state == 'I' || state == 'T' ||
                       state == 't'))
        continue;
      int e = dump_sample_thread(t, th, &dopts, u, res.vms, res.nvms, &cap, &w, 1);
      if (e == -VMS_E_GONE) {
        st->target_gone = 1;
        break;
      }
      if (e == -ESRCH)
        continue;   /* the thread exited since we looked at it: no sample, no error */
      if (e || (w.err && w.err != -VMS_E_TRUNCATED) || w.vf.err)
        st->errors++;
      if (e || !w.n)
        continue;
      uint32_t n = 0;
      if ((r = keys_of(p, th, &w, o->view, pk, keys, &n)) ||
          (r = add_stack(p, keys, n)))
        goto out;
      st->samples++;
    }
    if (now - last_progress > 0.5) {
      progress(o, t, st, now - start, 0);
      last_progress = now;
    }
    if (o->tick && now - last_tick >= o->tick_s) {
      last_tick = now;
      st->seconds = now - start;
      p->maps = t->maps;
      if (o->tick(o->tick_arg, p, st))
        break;
    }
  }
  st->seconds = now_s() - start;
  progress(o, t, st, st->seconds, 1);
  r = 0;
out:
  target_detach(t);
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_UNBLOCK, &chld, NULL);
  for (size_t i = 0; i < res.nvms; i++)
    res.vms[i].rt->free(res.vms[i].vm);
  vm_frames_free(&w.vf);
  free(w.fr);
  free(pk);
  free(keys);
  unwind_capture_free(&cap);
  unwinder_free(u);
  if (r) {
    profile_free(p);
    return r;
  }
  p->maps = t->maps;
  *ret_prof = p;
  return 0;
}

/* -- Naming, after the target runs freely again ---------------------------- */

int profile_each(struct profile *p, int with_threads, profile_fn fn, void *arg)
{
  size_t cap = 64;
  const char **names = malloc(cap * sizeof *names);
  uint8_t *kinds = malloc(cap);
  char (*bufs)[512] = malloc(cap * sizeof *bufs);
  int r = names && kinds && bufs ? 0 : -ENOMEM;
  for (size_t i = 0; !r && i < p->cap; i++) {
    const struct pstack *s = &p->tab[i];
    if (!s->keys)
      continue;
    if (s->n > cap) {
      cap = s->n;
      const char **nn = realloc(names, cap * sizeof *names);
      uint8_t *nk = realloc(kinds, cap);
      char (*nb)[512] = realloc(bufs, cap * sizeof *bufs);
      names = nn ? nn : names;
      kinds = nk ? nk : kinds;
      bufs = nb ? nb : bufs;
      if (!nn || !nk || !nb) {
        r = -ENOMEM;
        break;
      }
    }
    /* root first */
    for (uint32_t j = 0; j < s->n; j++) {
      uint64_t k = s->keys[s->n - 1 - j];
      switch (KEY_TAG(k)) {
      case KEY_NATIVE: {
        struct sym_info si;
        uint64_t pc = k & PC_MASK;
        symbolize(p->maps, pc, !!(k & KEY_EXACT), 0, &si);
        symbolize_name(&si, pc, bufs[j], sizeof bufs[j]);
        for (char *c = bufs[j]; *c; c++)
          if (*c == ';' || *c == '\n')
            *c = ':';
        names[j] = bufs[j];
        kinds[j] = PF_NATIVE;
        break;
      }
      default:
        names[j] = p->strs[k & 0xffffffffu];
        kinds[j] = KEY_TAG(k) == KEY_THREAD ? PF_THREAD : KEY_TAG(k) == KEY_JIT ? PF_JIT : PF_VM;
      }
    }
    if (!with_threads && s->n && kinds[0] == PF_THREAD)
      r = fn(arg, names + 1, kinds + 1, s->n - 1, s->count);
    else
      r = fn(arg, names, kinds, s->n, s->count);
  }
  free(names);
  free(kinds);
  free(bufs);
  return r;
}
