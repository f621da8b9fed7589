/* Sampling profiler: stop each thread briefly at random (Poisson) intervals, keep raw frames
 * as aggregated keys, name them only after the target is released. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "vmstack/util.h"

/* -- Keys: one 64-bit word per frame ---------------------------------------
 * native (FK_NATIVE, 0): pc | exact << 56; the others: their frame kind << 60 | interned
 * string id (FK_FUNCTION, FK_JIT, FK_THREAD, FK_PROCESS) */

#define KEY_TAG(k) ((enum frame_kind)((k) >> 60))
#define KEY_EXACT (1ull << 56)
#define PICK_VM_MAX 8192         /* VM frames of one sample at most */
#define PROC_SHIFT 47            /* native keys: process index in bits 47..55 */
#define PROC_MAX 512
#define PC_MASK ((1ull << PROC_SHIFT) - 1)   /* x86_64 user addresses are below 2^47 */
#define KEY_PROC_OF(k) ((size_t)(((k) >> PROC_SHIFT) & (PROC_MAX - 1)))

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
  struct maps *maps[PROC_MAX];   /* per process index: for naming native frames */
  struct target *owned[PROC_MAX];  /* processes found while following children (the
                                      first, given by the caller, is not owned) */
  size_t nprocs;
  /* native keys of processes let go while recording -> interned names */
  struct { uint64_t key; uint32_t id; } *named;
  size_t named_cap, named_n;
};

static int64_t intern(struct profile *p, const char *s)
{
  if (p->nstrs * 2 >= p->strcap) {
    size_t nc = p->strcap ? p->strcap * 2 : 1024;
    uint32_t *nt = calloc(nc, sizeof *nt);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < p->nstrs; i++) {
      size_t j = hash_bytes(p->strs[i], strlen(p->strs[i]), HASH_SEED) & (nc - 1);
      while (nt[j])
        j = (j + 1) & (nc - 1);
      nt[j] = (uint32_t)i + 1;
    }
    free(p->strtab);
    p->strtab = nt;
    p->strcap = nc;
  }
  size_t j = hash_bytes(s, strlen(s), HASH_SEED) & (p->strcap - 1);
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
  uint64_t h = hash_bytes(keys, n * sizeof *keys, HASH_SEED ^ n);
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
  for (size_t i = 0; i < p->nprocs; i++)
    if (p->owned[i])
      target_close(p->owned[i]);
  free(p->named);
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

/* -- Native names of processes let go early ------------------------------ */

static int named_put(struct profile *p, uint64_t key, uint32_t id)
{
  if (p->named_n * 2 >= p->named_cap) {
    size_t nc = p->named_cap ? p->named_cap * 2 : 1024;
    __typeof__(p->named) nt = calloc(nc, sizeof *nt);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < p->named_cap; i++) {
      if (!p->named[i].key)
        continue;
      size_t j = hash_bytes(&p->named[i].key, 8, HASH_SEED) & (nc - 1);
      while (nt[j].key)
        j = (j + 1) & (nc - 1);
      nt[j] = p->named[i];
    }
    free(p->named);
    p->named = nt;
    p->named_cap = nc;
  }
  size_t j = hash_bytes(&key, 8, HASH_SEED) & (p->named_cap - 1);
  while (p->named[j].key && p->named[j].key != key)
    j = (j + 1) & (p->named_cap - 1);
  if (!p->named[j].key)
    p->named_n++;
  p->named[j].key = key;
  p->named[j].id = id;
  return 0;
}

static const char *named_get(const struct profile *p, uint64_t key)
{
  if (!p->named_cap)
    return NULL;
  size_t j = hash_bytes(&key, 8, HASH_SEED) & (p->named_cap - 1);
  while (p->named[j].key) {
    if (p->named[j].key == key)
      return p->strs[p->named[j].id];
    j = (j + 1) & (p->named_cap - 1);
  }
  return NULL;
}

static void native_name(struct maps *mp, uint64_t k, char *buf, size_t cap)
{
  struct sym_info si;
  uint64_t pc = k & PC_MASK;
  symbolize(mp, pc, !!(k & KEY_EXACT), 0, &si);
  symbolize_name(&si, pc, buf, cap);
  for (char *c = buf; *c; c++)
    if (*c == ';' || *c == '\n')
      *c = ':';
}

/* Name every native frame of process idx now, while its maps are there. */
static void name_natives(struct profile *p, uint32_t idx)
{
  struct maps *mp = p->maps[idx];
  char buf[512];
  if (!mp)
    return;
  for (size_t i = 0; i < p->cap; i++) {
    const struct pstack *s = &p->tab[i];
    for (uint32_t j = 0; s->keys && j < s->n; j++) {
      uint64_t k = s->keys[j];
      if (KEY_TAG(k) != FK_NATIVE || KEY_PROC_OF(k) != idx || named_get(p, k))
        continue;
      native_name(mp, k, buf, sizeof buf);
      int64_t id = intern(p, buf);
      if (id < 0 || named_put(p, k, (uint32_t)id))
        return;
    }
  }
}

/* -- Sampling ----------------------------------------------------------- */

/* One process being sampled: the target given, or a child found while following them. */
struct rproc {
  struct target *t;
  uint32_t idx;            /* process index in the keys of native frames */
  struct dump_result res;  /* runtimes found in it */
  struct unwinder *u;
  int perr;                /* why the probe failed (0: ok or no runtime yet) */
  const struct maps *probed;  /* the maps the last probe looked at */
  int gone;                /* exited (or exec'd: a new entry took over) */
  int retired;             /* named and let go (retire()) */
  double added;            /* when sampling it began */
  /* VM view: an unnamed C function at the root of the VM frames (a host's entry such as
   * luajit's pmain) and the key it is shown by (see vm_root_key) */
  uint64_t root_cf[8], root_key[8];
  size_t nroot;
  /* C functions the VM names: whether a symbol covers them (direct-mapped by address) */
  struct { uint64_t cf; int sym; } named[64];
};

struct rec {
  const struct record_opts *o;
  struct dump_opts dopts;
  struct profile *p;
  struct profile_stats *st;
  struct rproc procs[PROC_MAX];
  size_t n;
  pid_t failed[64];        /* children that could not be attached (tried again after 1 s) */
  double failed_at[64];
  size_t nfailed;
  int warned_max;
  int warned_children;
  pid_t reopen[16];        /* exec'd processes whose new program could not be read yet */
  double reopen_since[16];
  size_t nreopen;
};

static void on_chld(int sig)
{
  (void)sig;   /* only to cut sleeps short: stops of traced threads are handled at once */
}

static struct thread *find_thread(struct rec *rc, pid_t tid, struct rproc **ret_pr)
{
  for (size_t k = 0; k < rc->n; k++) {
    struct target *t = rc->procs[k].t;
    if (rc->procs[k].gone)
      continue;
    for (size_t i = 0; i < t->nthreads; i++)
      if (t->threads[i].tid == tid) {
        *ret_pr = &rc->procs[k];
        return &t->threads[i];
      }
  }
  return NULL;
}

/* Stops we did not ask for: a signal for the target (passed on at once), job control
 * (kept: LISTEN), a thread or a whole process exiting. */
static void reap_one(struct rec *rc, pid_t tid, int status);

static void reap_hook(void *arg, pid_t tid, int status)
{
  reap_one(arg, tid, status);
}

static void reap(struct rec *rc)
{
  target_reap(reap_hook, rc);
}

static void reap_one(struct rec *rc, pid_t tid, int status)
{
  struct rproc *pr = NULL;
  struct thread *th = find_thread(rc, tid, &pr);
  if ((WIFEXITED(status) || WIFSIGNALED(status)) && pr && tid == pr->t->pid)
    pr->gone = 1;
  target_event(pr ? pr->t : NULL, th, tid, status);
}

/* Sleep until `when`, or until a tracee stops (SIGCHLD). SIGCHLD stays blocked outside
 * this sleep and ppoll unblocks it atomically, so a stop that comes just before the sleep
 * still ends it at once: a thread stopped by a signal for it never waits for our next
 * sample. */
static void sleep_until(double when, const sigset_t *during)
{
  double d = when - clock_s();
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

/* The key of the root of the VM view when it is a C function the VM does not name and no
 * symbol covers (luajit's pmain, stripped): the process's native entry below it, `main`
 * when the native stack has it, else the nearest native frame below that has a symbol.
 * 0: keep the function's own address. Cached per function: symbols are looked up once. */
static uint64_t vm_root_key(struct rproc *pr, const struct dump_walk *w,
                            const struct vm_frame *v)
{
  for (size_t i = 0; i < pr->nroot; i++)
    if (pr->root_cf[i] == v->pc)
      return pr->root_key[i];
  struct sym_info si;
  uint64_t key = 0;
  symbolize(pr->t->maps, v->pc, 1, 0, &si);
  uint64_t proc = (uint64_t)pr->idx << PROC_SHIFT;
  int sure = !!si.func || !w->err;   /* the stack below was read to its end */
  for (size_t i = v->anchor + 1; !si.func && i < w->n; i++) {
    const struct frame *f = &w->fr[i];
    struct sym_info fi;
    symbolize(pr->t->maps, f->pc, f->flags & FRAME_F_EXACT, 0, &fi);
    if (!fi.func)
      continue;
    uint64_t k = (f->pc & PC_MASK) | proc | (f->flags & FRAME_F_EXACT ? KEY_EXACT : 0);
    if (!key)
      key = k;
    if (!strcmp(fi.func, "main")) {
      key = k;
      sure = 1;
      break;
    }
  }
  /* kept for the function when it is sure (a stack cut short may not show main yet) */
  if (sure && pr->nroot < sizeof pr->root_cf / sizeof *pr->root_cf) {
    pr->root_cf[pr->nroot] = v->pc;
    pr->root_key[pr->nroot++] = key;
  }
  return key;
}

/* Whether a symbol covers the C function at cf (looked up once per function). */
static int has_symbol(struct rproc *pr, uint64_t cf)
{
  size_t k = hash_word(cf, 6);
  if (pr->named[k].cf != cf) {
    struct sym_info si;
    symbolize(pr->t->maps, cf, 1, 0, &si);
    pr->named[k].cf = cf;
    pr->named[k].sym = si.func != NULL;
  }
  return pr->named[k].sym;
}

static int keys_of(struct rec *rc, struct rproc *pr, const struct thread *th,
                   const struct dump_walk *w, struct pick *pk, uint64_t *keys,
                   uint32_t *ret_n)
{
  struct profile *p = rc->p;
  size_t m = stack_pick(w->fr, w->n, w->vf, w->nvms, rc->o->view, pk);
  /* the root of the VM view: the last VM frame picked, when nothing native is below it */
  size_t root = m && pk[m - 1].vm ? m - 1 : SIZE_MAX;
  uint64_t proc = (uint64_t)pr->idx << PROC_SHIFT;
  uint32_t n = 0;
  char buf[512];
  for (size_t i = 0; i < m; i++) {
    if (!pk[i].vm && pk[i].named_by &&
        !has_symbol(pr, w->vf[pk[i].list].v[pk[i].named_by - 1].pc)) {
      /* a native frame in a C function the VM names, no symbol of its own: by that name
       * (mixed view); the VM view has the VM frame there already */
      if (rc->o->view == VIEW_VM)
        continue;
      pk[i] = (struct pick){ 1, pk[i].list, pk[i].named_by - 1, 0 };
    }
    if (pk[i].vm) {
      const struct vm_frame *v = &w->vf[pk[i].list].v[pk[i].idx];
      if (v->kind == FK_CFUNC && !v->func[0]) {
        uint64_t rk = 0;
        if (rc->o->view == VIEW_VM && i == root && !w->vf[pk[i].list].err)
          rk = vm_root_key(pr, w, v);
        keys[n++] = rk ? rk : (v->pc & PC_MASK) | proc | KEY_EXACT;
        continue;
      }
      vm_name(v, buf, sizeof buf);
      for (char *c = buf; *c; c++)
        if (*c == ';' || *c == '\n')
          *c = ':';
      int64_t id = intern(p, buf);
      if (id < 0)
        return (int)id;
      keys[n++] = ((uint64_t)(v->trace ? FK_JIT : FK_FUNCTION) << 60) | (uint64_t)id;
    } else {
      const struct frame *f = &w->fr[pk[i].idx];
      keys[n++] = (f->pc & PC_MASK) | proc | (f->flags & FRAME_F_EXACT ? KEY_EXACT : 0);
    }
  }
  /* VM view, frames not placed in the native stack (it ended early): the walk gave the
   * innermost Lua frames only; they go under the root the others have (one known) */
  const struct vm_frame *last = m && pk[m - 1].vm ? &w->vf[pk[m - 1].list].v[pk[m - 1].idx]
                                                 : NULL;
  if (rc->o->view == VIEW_VM && last && last->anchor >= w->n &&
      !(last->kind == FK_CFUNC && !last->func[0]) && pr->nroot == 1 && pr->root_key[0])
    keys[n++] = pr->root_key[0];
  /* the thread at the root, always: per-thread outputs need it, the others drop it; and
   * above it the process when following children */
  snprintf(buf, sizeof buf, "%s-%d", th->name, (int)th->tid);
  int64_t id = intern(p, buf);
  if (id < 0)
    return (int)id;
  keys[n++] = ((uint64_t)FK_THREAD << 60) | (uint64_t)id;
  if (rc->o->follow) {
    snprintf(buf, sizeof buf, "%s (pid %d)", pr->t->comm, (int)pr->t->pid);
    if ((id = intern(p, buf)) < 0)
      return (int)id;
    keys[n++] = ((uint64_t)FK_PROCESS << 60) | (uint64_t)id;
  }
  *ret_n = n;
  return 0;
}

static void progress(const struct rec *rc, double elapsed, int last)
{
  if (!rc->o->progress)
    return;
  char procs[32] = "";
  if (rc->o->follow)
    snprintf(procs, sizeof procs, ", %zu processes", rc->n);
  fprintf(stderr, "\rvmstack: recording %d: %.1f s, %" PRIu64 " samples, %" PRIu64
          " errors%s%s", (int)rc->procs[0].t->pid, elapsed, rc->st->samples, rc->st->errors,
          procs, last ? "\n" : "   ");
}

static void proc_probe(struct rec *rc, struct rproc *pr)
{
  pr->perr = dump_probe(pr->t, &rc->dopts, &pr->res);
  for (size_t i = 0; i < pr->res.nvms; i++)
    if (pr->res.vms[i].rt->install)
      pr->res.vms[i].rt->install(pr->res.vms[i].vm, pr->u);
  pr->probed = pr->t->maps;
}

static void proc_release(struct rproc *pr)
{
  target_detach(pr->t);
  for (size_t i = 0; i < pr->res.nvms; i++)
    pr->res.vms[i].rt->free(pr->res.vms[i].vm);
  pr->res.nvms = 0;
  unwinder_free(pr->u);
  pr->u = NULL;
}

/* Start sampling process t (owned by the profile unless it is the first). */
static int proc_add(struct rec *rc, struct target *t)
{
  if (rc->n == PROC_MAX) {
    if (!rc->warned_max++)
      fprintf(stderr, "vmstack: warning: following at most %d processes\n", PROC_MAX);
    return -ENOSPC;
  }
  struct rproc *pr = &rc->procs[rc->n];
  memset(pr, 0, sizeof *pr);
  pr->t = t;
  pr->idx = (uint32_t)rc->n;
  pr->added = clock_s();
  int r = unwinder_new(&pr->u);
  if (r)
    return r;
  proc_probe(rc, pr);
  rc->p->maps[rc->n] = t->maps;
  if (rc->n)
    rc->p->owned[rc->n] = t;
  rc->p->nprocs = ++rc->n;
  t->trace_exec = 1;
  target_attach(t);
  /* an exec between reading the process and seizing it is not reported: look */
  char path[64], exe[sizeof t->exe];
  snprintf(path, sizeof path, "/proc/%d/exe", (int)t->pid);
  ssize_t n = readlink(path, exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    if (strcmp(exe, t->exe))
      t->exec_seen = 1;
  }
  return 0;
}

/* A process that exited or started another program: its frames are named now, with its
 * maps as they were, and everything held for it is let go (a long recording of a process
 * starting many short children keeps no files open for the ones gone). An exec'd one is
 * followed on as a new entry. */
static void reopen(struct rec *rc, pid_t pid);
static int known(const struct rec *rc, pid_t pid);

static void retire(struct rec *rc, struct rproc *pr)
{
  struct profile *p = rc->p;
  int exec = pr->t->exec_seen && !pr->gone;
  pid_t pid = pr->t->pid;
  proc_release(pr);
  pr->gone = 1;
  pr->retired = 1;
  p->maps[pr->idx] = pr->t->maps;   /* the latest (they are replaced when re-read) */
  name_natives(p, pr->idx);
  if (p->owned[pr->idx]) {
    target_close(p->owned[pr->idx]);
    p->owned[pr->idx] = NULL;
  }
  p->maps[pr->idx] = NULL;
  if (exec && (rc->o->follow || pr->idx == 0 || rc->procs[0].retired))
    reopen(rc, pid);
}

/* Sample the program a process exec'd. Right at the exec its maps can be empty for a
 * moment: then it is tried again at the next refreshes (reopen_pending). */
static void reopen(struct rec *rc, pid_t pid)
{
  struct target *nt;
  if (!target_open(pid, &nt)) {
    if (proc_add(rc, nt))
      target_close(nt);
    return;
  }
  if (rc->nreopen < sizeof rc->reopen / sizeof rc->reopen[0]) {
    rc->reopen[rc->nreopen] = pid;
    rc->reopen_since[rc->nreopen++] = clock_s();
  }
}

static void reopen_pending(struct rec *rc)
{
  size_t n = rc->nreopen;
  double since[16];
  pid_t pids[16];
  memcpy(pids, rc->reopen, n * sizeof *pids);
  memcpy(since, rc->reopen_since, n * sizeof *since);
  rc->nreopen = 0;
  for (size_t i = 0; i < n; i++) {
    struct target *nt;
    if (known(rc, pids[i]))
      continue;
    if (!target_open(pids[i], &nt)) {
      if (proc_add(rc, nt))
        target_close(nt);
    } else if (clock_s() - since[i] < 2.0 && rc->nreopen < 16) {
      rc->reopen[rc->nreopen] = pids[i];
      rc->reopen_since[rc->nreopen++] = since[i];
    }
  }
}

static int known(const struct rec *rc, pid_t pid)
{
  for (size_t k = 0; k < rc->n; k++)
    if (!rc->procs[k].gone && rc->procs[k].t->pid == pid)
      return 1;
  for (size_t k = 0; k < rc->nfailed; k++)
    if (rc->failed[k] == pid)
      return clock_s() - rc->failed_at[k] < 1.0;
  return 0;
}

/* Children of every thread of pr, from the kernel's lists (CONFIG_PROC_CHILDREN). */
static void follow_children(struct rec *rc, struct rproc *pr)
{
  struct target *t = pr->t;
  for (size_t i = 0; i < t->nthreads; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)t->pid,
             (int)t->threads[i].tid);
    FILE *f = fopen(path, "re");
    if (!f) {
      /* gone, or a kernel without the lists: then our own is missing too */
      char self[64];
      snprintf(self, sizeof self, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
      if (!rc->warned_children && access(self, F_OK)) {
        rc->warned_children = 1;
        fprintf(stderr, "vmstack: warning: -s cannot follow children: this kernel has no "
                "/proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)\n");
      }
      continue;
    }
    /* whole tokens only: read up to EOF, a number at the very end of a full buffer is
     * read again with the rest */
    char buf[4096];
    size_t have = 0;
    for (;;) {
      size_t len = fread(buf + have, 1, sizeof buf - 1 - have, f);
      int eof = len < sizeof buf - 1 - have;
      have += len;
      buf[have] = 0;
      char *s = buf, *e;
      for (;;) {
        while (*s == ' ' || *s == '\n')
          s++;
        long pid = strtol(s, &e, 10);
        if (e == s || (!*e && !eof))
          break;   /* nothing more, or a number that may go on in the next read */
        s = e;
        if (pid <= 0 || known(rc, (pid_t)pid))
          continue;
        struct target *ct;
        if (target_open((pid_t)pid, &ct)) {
          size_t slot = 0;
          while (slot < rc->nfailed && rc->failed[slot] != (pid_t)pid)
            slot++;
          if (slot == rc->nfailed && rc->nfailed < sizeof rc->failed / sizeof rc->failed[0])
            rc->nfailed++;
          if (slot < rc->nfailed) {
            rc->failed[slot] = (pid_t)pid;
            rc->failed_at[slot] = clock_s();
          }
          continue;
        }
        if (proc_add(rc, ct))
          target_close(ct);
      }
      if (eof)
        break;
      have = strlen(s);
      memmove(buf, s, have + 1);
      if (have >= sizeof buf - 2)
        break;   /* no number is that long */
    }
    fclose(f);
  }
}

/* --nonblocking: the VM frames of a running thread, read from memory; each thread is
 * stopped once, when first seen, for its registers (the thread pointer). */
static int sample_running(struct target *t, struct thread *th, struct rproc *pr,
                          struct dump_walk *w)
{
  w->n = 0;
  w->err = 0;
  for (size_t i = 0; i < w->nvms; i++) {
    vm_frames_reset(&w->vf[i]);
    w->vf[i].runtime = pr->res.vms[i].rt->name;
  }
  if (!th->regs.fs_base) {
    int r = target_stop(t, th);
    if (r)
      return r;
    target_resume(t, th);
  }
  mem_invalidate(t->mem);
  for (size_t i = 0; i < w->nvms; i++)
    if (pr->res.vms[i].rt->walk_running)
      pr->res.vms[i].rt->walk_running(pr->res.vms[i].vm, t, th, &w->vf[i]);
  return 0;
}

/* Count an error under its cause, with where the native walk stopped. */
static void count_error(struct profile_stats *st, struct target *t, const struct dump_walk *w,
                        int e)
{
  char what[sizeof st->causes[0].what], where[80] = "";
  st->errors++;
  if (e)
    snprintf(what, sizeof what, "%s", vms_strerror(e));
  else if (dump_walk_vm_err(w))
    snprintf(what, sizeof what, "VM walk: %s", vms_strerror(dump_walk_vm_err(w)));
  else {
    dump_walk_where(t, w, where, sizeof where);
    snprintf(what, sizeof what, "%s%s", vms_strerror(w->err), where);
  }
  for (size_t i = 0; i < PROFILE_CAUSES; i++) {
    if (!st->causes[i].n)
      snprintf(st->causes[i].what, sizeof st->causes[i].what, "%s", what);
    if (!strcmp(st->causes[i].what, what)) {
      st->causes[i].n++;
      return;
    }
  }
  st->other_causes++;
}

static int proc_sample(struct rec *rc, struct rproc *pr, struct stack_capture *cap,
                       struct dump_walk *w, struct pick *pk, uint64_t *keys)
{
  struct target *t = pr->t;
  struct profile_stats *st = rc->st;
  w->nvms = pr->res.nvms < DUMP_VMS_MAX ? pr->res.nvms : DUMP_VMS_MAX;
  for (size_t i = 0; i < t->nthreads && !target_interrupted(); i++) {
    struct thread *th = &t->threads[i];
    if (!th->seized)
      continue;
    if (t->exec_seen)
      break;   /* another program now: retire() hands it to a new entry first */
    char state = 'R';
    int se = target_thread_state(t, th, &state);
    if (!se && (state == 'Z' || state == 'X'))
      continue;   /* exiting (a thread of a process in exec): never waited for */
    if (!rc->o->idle && (se || state == 'S' || state == 'D' || state == 'I' || state == 'T' ||
                         state == 't'))
      continue;
    int e = rc->o->nonblocking ? sample_running(t, th, pr, w)
                               : dump_sample_thread(t, th, &rc->dopts, pr->u, pr->res.vms,
                                                    pr->res.nvms, cap, w, 1);
    if (e == -VMS_E_GONE) {
      /* the leader is gone, but the process is not: another thread exec'd (it took the
       * leader's id) */
      if (target_alive(t))
        t->exec_seen = 1;
      else
        pr->gone = 1;
      break;
    }
    if (e == -VMS_E_EXEC || t->exec_seen)
      break;   /* a new entry takes over (retire()) */
    if (e == -ESRCH)
      continue;   /* the thread exited since we looked at it: no sample, no error */
    /* an error: nothing read, the VM walk failed, or the native walk failed with no VM
     * frames to show; a native stack cut short below readable VM frames is not one */
    int native_err = w->err && w->err != -VMS_E_TRUNCATED;
    size_t nvf = dump_walk_vm_frames(w);
    int vm_err = dump_walk_vm_err(w);
    if (!e && nvf > PICK_VM_MAX)
      e = -VMS_E_TRUNCATED;   /* more VM frames than a stack key holds */
    if (!e && native_err && nvf && !vm_err)
      st->cut++;
    else if (e || native_err || vm_err)
      count_error(st, t, w, e);
    if (e || (!w->n && !nvf))
      continue;
    uint32_t n = 0;
    int r;
    if ((r = keys_of(rc, pr, th, w, pk, keys, &n)) || (r = add_stack(rc->p, keys, n)))
      return r;
    st->samples++;
  }
  return 0;
}

/* Every 250 ms: threads started since are seized, exited ones forgotten; the maps are read
 * again, and a program that had no VM yet is probed again when they changed (a libluajit
 * mapped by the dynamic loader after exec); children are followed. */
static void refresh(struct rec *rc)
{
  reap(rc);
  reopen_pending(rc);
  size_t n = rc->n;   /* not the ones added meanwhile */
  for (size_t k = 0; k < n; k++) {
    struct rproc *pr = &rc->procs[k];
    if (pr->gone)
      continue;
    /* exits are seen by waitpid, except of a process that went before we seized it */
    if (!target_alive(pr->t)) {
      pr->gone = 1;
      continue;
    }
    target_prune_threads(pr->t);
    target_attach(pr->t);
    if (pr->t->exec_seen)
      continue;   /* its maps are the new program's: retire() comes first */
    /* libraries mapped since (after an exec the dynamic loader maps them, a VM may come
     * with them): read the maps again, while there is no VM or in the first seconds of
     * an entry; later, sampling reads them again when it meets an unknown address */
    struct maps *before = pr->t->maps;
    if ((!pr->res.nvms || clock_s() - pr->added < 2.0) && !target_reload_maps(pr->t) &&
        pr->t->maps != before)
      unwinder_flush(pr->u);
    /* maps that changed since the last probe (here, or while sampling): look again (a
     * change of any mapping counts: a library may have been mapped in parts) */
    if (!pr->res.nvms && !pr->perr && pr->t->maps != pr->probed)
      proc_probe(rc, pr);
    if (rc->o->follow)
      follow_children(rc, pr);
  }
}

int record_run(struct target *t, const struct record_opts *o, struct profile **ret_prof,
               struct profile_stats *st)
{
  struct rec *rc = calloc(1, sizeof *rc);
  struct stack_capture cap = { 0 };
  struct dump_walk w = { 0 };
  struct profile *p = calloc(1, sizeof *p);
  struct pick *pk = NULL;
  sigset_t chld, during;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  uint64_t *keys = NULL;
  memset(st, 0, sizeof *st);
  int r = -ENOMEM;
  w.fr = calloc(o->max_depth, sizeof *w.fr);
  pk = calloc(o->max_depth + PICK_VM_MAX, sizeof *pk);
  keys = calloc(o->max_depth + PICK_VM_MAX + 2, sizeof *keys);
  if (!rc || !p || !w.fr || !pk || !keys)
    goto out;
  rc->o = o;
  rc->p = p;
  rc->st = st;
  rc->dopts = (struct dump_opts){ .max_depth = o->max_depth, .stack_bytes = o->stack_bytes,
                                  .view = o->view, .only_runtime = o->only_runtime };
  if ((r = proc_add(rc, t)))
    goto out;
  struct rproc *root = &rc->procs[0];
  if (o->only_runtime && !o->follow && (root->perr || !root->res.nvms)) {
    r = root->perr ? root->perr : -VMS_E_NORUNTIME;
    goto out;
  }
  if (o->nonblocking && !o->follow) {
    int can = 0;
    for (size_t i = 0; i < root->res.nvms; i++)
      can |= root->res.vms[i].rt->walk_running != NULL;
    if (!can) {
      r = -VMS_E_NONBLOCKING;
      goto out;
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_chld;
  sigaction(SIGCHLD, &sa, NULL);
  sigprocmask(SIG_BLOCK, &chld, &during);
  sigdelset(&during, SIGCHLD);
  target_set_event_hook(reap_hook, rc);
  if ((r = target_attach(t)))
    goto out;
  if (o->follow)
    follow_children(rc, root);
  double period = 1.0 / o->rate, start = clock_s(), next = start, last_refresh = start,
         last_progress = start, last_tick = start;
  uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
  int alive = 1;
  for (;;) {
    reap(rc);
    alive = 0;
    for (size_t k = 0; k < rc->n; k++) {
      struct rproc *pr = &rc->procs[k];
      if (!pr->retired && (pr->gone || pr->t->exec_seen))
        retire(rc, pr);   /* (an exec'd one continues as a new entry) */
      alive += !rc->procs[k].gone;
    }
    if (target_interrupted() || !alive)
      break;
    double now = clock_s();
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
      refresh(rc);
      last_refresh = now;
    }
    for (size_t k = 0; k < rc->n && !target_interrupted(); k++)
      if (!rc->procs[k].gone && (r = proc_sample(rc, &rc->procs[k], &cap, &w, pk, keys)))
        goto out;
    if (now - last_progress > 0.5) {
      progress(rc, now - start, 0);
      last_progress = now;
    }
    if (o->tick && now - last_tick >= o->tick_s) {
      last_tick = now;
      st->seconds = now - start;
      for (size_t k = 0; k < rc->n; k++)
        if (!rc->procs[k].retired)
          p->maps[k] = rc->procs[k].t->maps;
      if (o->tick(o->tick_arg, p, st))
        break;
    }
  }
  st->target_gone = !alive;
  st->processes = rc->n;
  st->seconds = clock_s() - start;
  progress(rc, st->seconds, 1);
  r = 0;
out:
  if (rc)
    for (size_t k = 0; k < rc->n; k++) {
      if (rc->procs[k].retired)
        continue;   /* let go already; its frames are named */
      proc_release(&rc->procs[k]);
      p->maps[k] = rc->procs[k].t->maps;   /* maps are replaced when they are re-read */
    }
  target_set_event_hook(NULL, NULL);
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_UNBLOCK, &chld, NULL);
  dump_walk_free(&w);
  free(pk);
  free(keys);
  free(rc);
  unwind_capture_free(&cap);
  if (r) {
    profile_free(p);
    return r;
  }
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
      case FK_NATIVE: {
        struct maps *mp = p->maps[KEY_PROC_OF(k)];
        const char *nm = mp ? NULL : named_get(p, k);
        if (nm) {
          names[j] = nm;
        } else if (!mp) {
          snprintf(bufs[j], sizeof bufs[j], "[0x%" PRIx64 "]", (uint64_t)(k & PC_MASK));
          names[j] = bufs[j];
        } else {
          native_name(mp, k, bufs[j], sizeof bufs[j]);
          names[j] = bufs[j];
        }
        kinds[j] = FK_NATIVE;
        break;
      }
      default:
        names[j] = p->strs[k & 0xffffffffu];
        kinds[j] = (uint8_t)KEY_TAG(k);
      }
    }
    /* root first: [process,] thread, frames... */
    size_t n = s->n, th = n && kinds[0] == FK_PROCESS ? 1 : 0;
    if (!with_threads && th < n && kinds[th] == FK_THREAD) {
      memmove(names + th, names + th + 1, (n - th - 1) * sizeof *names);
      memmove(kinds + th, kinds + th + 1, n - th - 1);
      n--;
    }
    r = fn(arg, names, kinds, n, s->count);
  }
  free(names);
  free(kinds);
  free(bufs);
  return r;
}
