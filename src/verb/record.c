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
#include "record_impl.h"

static void on_chld(int sig)
{
  (void)sig;   /* only to cut sleeps short: stops of traced threads are handled at once */
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
  char buf[4096];   /* "func@file:line": a chunk name may be STR_MAX long, func twice that */
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
      profile_vm_name(v, buf, sizeof buf);
      for (char *c = buf; *c; c++)
        if (*c == ';' || *c == '\n')
          *c = ':';
      int64_t id = profile_intern(p, buf);
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
  int64_t id = profile_intern(p, buf);
  if (id < 0)
    return (int)id;
  keys[n++] = ((uint64_t)FK_THREAD << 60) | (uint64_t)id;
  if (rc->o->follow) {
    snprintf(buf, sizeof buf, "%s (pid %d)", pr->t->comm, (int)pr->t->pid);
    if ((id = profile_intern(p, buf)) < 0)
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

/* A process that exited or started another program: its frames are named now, with its
 * maps as they were, and everything held for it is let go (a long recording of a process
 * starting many short children keeps no files open for the ones gone). An exec'd one is
 * followed on as a new entry. */

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
    if (!th->attached)
      continue;
    if (t->exec_seen)
      break;   /* another program now: rec_retire() hands it to a new entry first */
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
      break;   /* a new entry takes over (rec_retire()) */
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
    if ((r = keys_of(rc, pr, th, w, pk, keys, &n)) || (r = profile_add_stack(rc->p, keys, n, 1, 0)))
      return r;
    st->samples++;
  }
  return 0;
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
  if ((r = rec_proc_add(rc, t)))
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
  target_set_event_hook(rec_reap_hook, rc);
  if ((r = target_attach(t)))
    goto out;
  if (o->follow)
    rec_follow_children(rc, root);
  double period = 1.0 / o->rate, start = clock_s(), next = start, last_refresh = start,
         last_progress = start, last_tick = start;
  uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
  int alive = 1;
  for (;;) {
    rec_reap(rc);
    alive = 0;
    for (size_t k = 0; k < rc->n; k++) {
      struct rproc *pr = &rc->procs[k];
      if (!pr->retired && (pr->gone || pr->t->exec_seen))
        rec_retire(rc, pr);   /* (an exec'd one continues as a new entry) */
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
      rec_refresh(rc);
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
      rec_proc_release(&rc->procs[k]);
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

