/* One-shot dump: per thread stop, copy registers and stack, release, then unwind.
 * When a VM runtime is in the process, the native walk and the VM walk run while the
 * thread is stopped (VM state changes as soon as it runs); symbolising always comes after. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/seams.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"

/* Test seam (seams.h): keep each thread stopped seams.hold_ms (a signal cuts it short), or
 * crash while holding one, so that tests can check the target never stays stopped
 * whatever happens to us. */
static void test_hold(void)
{
  if (seams.crash)
    raise(SIGSEGV);
  if (seams.hold_ms > 0 && !target_interrupted()) {
    struct timespec ts = { seams.hold_ms / 1000, (seams.hold_ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
  }
}

static void native_walk(struct target *t, struct unwinder *u, const struct dump_opts *o,
                        const struct stack_capture *cap, struct dump_walk *w)
{
  w->err = unwind_stack(u, t->maps, t->mem, cap, w->fr, o->max_depth, &w->n);
  uint64_t now_ms = clock_ms();
  if (w->err == -VMS_E_BADRET && now_ms - w->reloaded_ms >= 100 && !target_reload_maps(t)) {
    /* code mapped since we read the maps (dlopen) looks like no code at all: read the
     * maps again (at most every 100 ms: garbage looks the same) and walk again */
    w->reloaded_ms = now_ms;
    unwinder_flush(u);
    w->err = unwind_stack(u, t->maps, t->mem, cap, w->fr, o->max_depth, &w->n);
  }
}

/* Each runtime walks into its own list. */
static void vm_walks(struct target *t, struct thread *th, const struct dump_vm *vms, size_t nvms,
                     const struct stack_capture *cap, const struct dump_opts *o,
                     struct dump_walk *w)
{
  for (size_t i = 0; i < nvms && i < DUMP_VMS_MAX; i++) {
    w->vf[i].native_err = w->err;
    w->vf[i].max = o->max_depth > VM_FRAMES_DEFAULT ? o->max_depth : VM_FRAMES_DEFAULT;
    vms[i].rt->walk(vms[i].vm, t, th, cap, w->fr, w->n, &w->vf[i]);
    if (o->locals && vms[i].rt->locals)
      for (size_t k = 0; k < w->vf[i].n; k++)
        vms[i].rt->locals(vms[i].vm, t, &w->vf[i], k, o->locals);
  }
}

int dump_sample_thread(struct target *t, struct thread *th, const struct dump_opts *o,
                       struct unwinder *u, const struct dump_vm *vms, size_t nvms,
                       struct stack_capture *cap, struct dump_walk *w, int keep)
{
  w->n = 0;
  w->err = 0;
  for (size_t i = 0; i < nvms && i < DUMP_VMS_MAX; i++) {
    vm_frames_reset(&w->vf[i]);
    w->vf[i].runtime = vms[i].rt->name;
  }
  w->nvms = nvms < DUMP_VMS_MAX ? nvms : DUMP_VMS_MAX;
  int r = target_stop(t, th);
  if (r)
    return r;
  mem_invalidate(t->mem);
  r = unwind_capture(t->mem, t->maps, &th->regs, o->stack_bytes, cap);
  if (r == -VMS_E_NOSTACK && !target_reload_maps(t)) {
    /* a thread created after we read the maps: its stack is a new mapping */
    unwinder_flush(u);
    r = unwind_capture(t->mem, t->maps, &th->regs, o->stack_bytes, cap);
  }
  /* VM state that changes once the thread runs: copied now if the runtimes can, walked
   * after the release; else everything is walked with the thread standing still */
  int late = !r;
  for (size_t i = 0; !r && i < nvms && late; i++)
    late = vms[i].rt->capture && !vms[i].rt->capture(vms[i].vm, t, th, cap);
  if (!r && nvms && !late) {
    native_walk(t, u, o, cap, w);
    vm_walks(t, th, vms, nvms, cap, o, w);
  }
  test_hold();
  if (keep)
    target_resume(t, th);
  else
    target_release(t, th);
  if (!r && (late || !nvms)) {
    native_walk(t, u, o, cap, w);
    vm_walks(t, th, vms, nvms, cap, o, w);
  }
  return r;
}

size_t dump_walk_vm_frames(const struct dump_walk *w)
{
  size_t n = 0;
  for (size_t i = 0; i < w->nvms; i++)
    n += w->vf[i].n;
  return n;
}

int dump_walk_vm_err(const struct dump_walk *w)
{
  for (size_t i = 0; i < w->nvms; i++)
    if (w->vf[i].err)
      return w->vf[i].err;
  return 0;
}

void dump_walk_free(struct dump_walk *w)
{
  for (size_t i = 0; i < DUMP_VMS_MAX; i++)
    vm_frames_free(&w->vf[i]);
  free(w->fr);
  w->fr = NULL;
}

void dump_walk_where(struct target *t, const struct dump_walk *w, char *buf, size_t cap)
{
  buf[0] = 0;
  if (!w->err || w->err == -VMS_E_TRUNCATED || !w->n)
    return;
  uint64_t pc = w->fr[w->n - 1].pc;
  const struct map *m = maps_find(t->maps, pc);
  if (!m)
    snprintf(buf, cap, " at an unmapped address");
  else if (m->mod) {
    snprintf(buf, cap, " in %s", m->mod->name);
    for (char *c = buf; *c; c++)
      if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
        *c = '?';
  } else if (strchr(m->perms, 'x'))
    snprintf(buf, cap, " at JIT code");
  else
    snprintf(buf, cap, " at %s", m->path && m->path[0] == '[' ? m->path : "non-code memory");
}

/* Native frames with each VM frame replaced by its VM segment (or one of the views). */
/* A runtime's state, its "{}" replaced by the name of the native frame it stands for
 * (target bytes: printable ASCII only). */
static void state_text(struct target *t, const struct dump_walk *w, const struct vm_frames *vf,
                       char *buf, size_t cap)
{
  snprintf(buf, cap, "%s", vf->state);
  char *ph = strstr(buf, "{}");
  if (!ph || !vf->state_sym || vf->state_sym > w->n)
    return;
  const struct frame *f = &w->fr[vf->state_sym - 1];
  struct sym_info si;
  char name[64], rest[sizeof vf->state];
  symbolize(t->maps, f->pc, f->flags & FRAME_F_EXACT, 0, &si);
  symbolize_name(&si, f->pc, name, sizeof name);
  for (char *q = name; *q; q++)
    if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
      *q = '?';
  snprintf(rest, sizeof rest, "%s", ph + 2);
  snprintf(ph, cap - (size_t)(ph - buf), "%s%s", name, rest);
}

/* Native frames with each VM frame replaced by its VM segment (or one of the views). */
static int merge(struct target *t, const struct dump_opts *o, const struct dump_walk *w,
                 struct arena *strs, struct thread_stack *ts)
{
  ts->walk_err = w->err;
  /* the runtimes met on this thread, innermost first */
  size_t order[DUMP_VMS_MAX], no = 0;
  for (size_t i = 0; i < w->nvms; i++)
    if (w->vf[i].n || w->vf[i].err) {
      size_t at = w->vf[i].n ? w->vf[i].v[0].anchor : SIZE_MAX, k = no++;
      while (k > 0 && (w->vf[order[k - 1]].n ? w->vf[order[k - 1]].v[0].anchor : SIZE_MAX) > at) {
        order[k] = order[k - 1];
        k--;
      }
      order[k] = i;
    }
  for (size_t k = 0; k < no; k++) {
    const struct vm_frames *vf = &w->vf[order[k]];
    struct thread_vm *tv = &ts->vms[ts->nvms++];
    tv->runtime = vf->runtime;
    tv->err = vf->err;
    state_text(t, w, vf, tv->state, sizeof tv->state);
  }
  dump_walk_where(t, w, ts->walk_where, sizeof ts->walk_where);
  if (!ts->nvms && w->nvms) {
    /* the process has a VM, this thread is not running it (an idle worker in epoll_wait) */
    ts->vms[0].runtime = w->vm_name;
    snprintf(ts->vms[0].state, sizeof ts->vms[0].state, "not running code");
    ts->nvms = 1;
  }
  size_t nvf = dump_walk_vm_frames(w);
  struct pick *pk = malloc((w->n + nvf + 1) * sizeof *pk);
  ts->frames = calloc(w->n + nvf + 1, sizeof *ts->frames);
  if (!pk || !ts->frames) {
    free(pk);
    return -ENOMEM;
  }
  size_t np = stack_pick(w->fr, w->n, w->vf, w->nvms, o->view, pk);
  ts->n = 0;
  for (size_t i = 0; i < np; i++) {
    struct out_frame *of = &ts->frames[ts->n++];
    if (!pk[i].vm && pk[i].named_by) {
      /* a native frame in a C function the VM names: without a symbol of its own it is
       * shown by that name (mixed view), or left to the VM frame there already */
      const struct frame *f = &w->fr[pk[i].idx];
      symbolize(t->maps, f->pc, f->flags & FRAME_F_EXACT, 0, &of->si);
      if (!of->si.func) {
        if (o->view == VIEW_VM) {
          ts->n--;
          memset(of, 0, sizeof *of);
          continue;
        }
        pk[i] = (struct pick){ 1, pk[i].list, pk[i].named_by - 1, 0 };
      }
    }
    if (pk[i].vm) {
      const struct vm_frame *v = &w->vf[pk[i].list].v[pk[i].idx];
      of->kind = v->kind;
      of->runtime = w->vf[pk[i].list].runtime;
      if (vm_frame_copy(strs, v, &of->vm)) {
        free(pk);
        return -ENOMEM;
      }
      if (v->kind == FK_CFUNC) {
        of->pc = v->pc;
        symbolize(t->maps, v->pc, 1, 0, &of->si);
      } else if (v->kind == FK_NATIVE_SUB) {
        of->pc = v->pc;
        symbolize(t->maps, v->pc, 0, 0, &of->si);
      }
    } else {
      const struct frame *f = &w->fr[pk[i].idx];
      of->pc = f->pc;
      of->flags = f->flags;
      of->kind = FK_NATIVE;
      symbolize(t->maps, f->pc, f->flags & FRAME_F_EXACT, o->lines, &of->si);
    }
  }
  free(pk);
  return 0;
}

int dump_probe(struct target *t, const struct dump_opts *o, struct dump_result *res)
{
  int ret = 0;
  for (size_t i = 0; vm_runtimes[i] && res->nvms < sizeof res->vms / sizeof *res->vms; i++) {
    const struct vm_runtime *rt = vm_runtimes[i];
    if (o->only_runtime && strcmp(o->only_runtime, rt->name))
      continue;
    void *vm = NULL;
    int r = rt->probe(t, &vm);
    if (!r) {
      res->vms[res->nvms++] = (struct dump_vm){ rt, vm };
    } else {
      if (r != -ENOENT && !ret) {
        snprintf(res->runtime_err, sizeof res->runtime_err, "%s",
                 vm ? rt->describe(vm) : vms_strerror(r));
        ret = r;
      }
      if (vm)
        rt->free(vm);
    }
  }
  return ret;
}

int dump_collect(struct target *t, const struct dump_opts *o, struct dump_result *res)
{
  struct unwinder *u = NULL;
  struct stack_capture cap = { 0 };
  struct dump_walk w = { 0 };
  memset(res, 0, sizeof *res);
  int r = unwinder_new(&u);
  if (r)
    return r;
  w.fr = calloc(o->max_depth, sizeof *w.fr);
  if (!w.fr) {
    unwinder_free(u);
    return -ENOMEM;
  }
  int perr = dump_probe(t, o, res);
  if (o->only_runtime && (perr || !res->nvms)) {
    r = perr ? perr : -VMS_E_NORUNTIME;
    goto out;
  }
  for (size_t i = 0; i < res->nvms; i++)
    if (res->vms[i].rt->install)
      res->vms[i].rt->install(res->vms[i].vm, u);
  w.nvms = res->nvms;
  w.vm_name = res->nvms ? res->vms[0].rt->name : NULL;
  /* threads may appear while we work: read the task list again until it is stable */
  for (size_t done = 0; done < t->nthreads || target_refresh_threads(t) > 0;) {
    if (done == t->nthreads)
      continue;
    struct thread *th = &t->threads[done++];
    struct thread_stack *nts = realloc(res->threads, (res->n + 1) * sizeof *nts);
    if (!nts) {
      r = -ENOMEM;
      break;
    }
    res->threads = nts;
    struct thread_stack *ts = &nts[res->n++];
    memset(ts, 0, sizeof *ts);
    ts->tid = th->tid;
    ts->nstid = th->nstid;
    memcpy(ts->name, th->name, sizeof ts->name);
    ts->state = th->state;
    if (th->state == 'Z' || th->state == 'X') {
      ts->err = -ESRCH;
      continue;
    }
    ts->err = dump_sample_thread(t, th, o, u, res->vms, res->nvms, &cap, &w, 0);
    if (ts->err == -VMS_E_GONE) {
      r = ts->err;
      break;
    }
    /* reading /proc was allowed but attaching is not (yama ptrace_scope, an LSM): that is
     * the whole process's problem, said once with its remedy */
    if (done == 1 && (ts->err == -EPERM || ts->err == -EACCES || ts->err == -VMS_E_TRACED)) {
      r = ts->err;
      break;
    }
    if (!ts->err && (r = merge(t, o, &w, &res->strs, ts)))
      break;
    if (target_interrupted())
      break;
  }
  if (!r && o->coroutines && !target_interrupted()) {
    /* coroutines are read with the process's first thread held still (in a one-threaded
     * VM nothing else can resume them meanwhile) */
    for (size_t i = 0; i < res->nvms && !res->coros.runtime; i++) {
      const struct dump_vm *v = &res->vms[i];
      if (!v->rt->coroutines || !t->nthreads || target_stop(t, &t->threads[0]))
        continue;
      mem_invalidate(t->mem);
      v->rt->coroutines(v->vm, t, &res->coros);
      /* their variables while they cannot be resumed either */
      for (size_t j = 0; o->locals && v->rt->locals && j < res->coros.n; j++)
        for (size_t k = 0; k < res->coros.v[j].vf.n; k++)
          v->rt->locals(v->vm, t, &res->coros.v[j].vf, k, o->locals);
      target_release(t, &t->threads[0]);
      res->coros.runtime = v->rt->name;
      for (size_t j = 0; j < res->coros.n; j++)
        res->coros.v[j].vf.runtime = v->rt->name;
    }
  }
  target_detach(t);
  if (!r && !target_alive(t))
    r = -VMS_E_GONE;
  /* a runtime that found out during the walk that it does not know this build */
  for (size_t i = 0; !r && i < res->n && !res->runtime_err[0]; i++)
    for (size_t k = 0; k < res->threads[i].nvms; k++) {
      const struct thread_vm *tv = &res->threads[i].vms[k];
      for (size_t j = 0; tv->err == -VMS_E_UNSUPPORTED && j < res->nvms; j++)
        if (!strcmp(res->vms[j].rt->name, tv->runtime) && !res->runtime_err[0])
          snprintf(res->runtime_err, sizeof res->runtime_err, "%s",
                   res->vms[j].rt->describe(res->vms[j].vm));
    }
  if (!r && o->only_runtime && res->runtime_err[0])
    r = -VMS_E_UNSUPPORTED;
out:
  dump_walk_free(&w);
  unwind_capture_free(&cap);
  unwinder_free(u);
  return r;
}

void dump_result_free(struct dump_result *res)
{
  for (size_t i = 0; i < res->n; i++)
    free(res->threads[i].frames);
  free(res->threads);
  for (size_t i = 0; i < res->nvms; i++)
    res->vms[i].rt->free(res->vms[i].vm);
  vm_coroutines_free(&res->coros);
  arena_free(&res->strs);
  memset(res, 0, sizeof *res);
}

int dump_partial(const struct dump_result *res)
{
  if (res->runtime_err[0] || res->coros.err)
    return 1;
  for (size_t i = 0; i < res->n; i++) {
    const struct thread_stack *ts = &res->threads[i];
    if ((ts->err && ts->err != -ESRCH) || ts->walk_err)
      return 1;
    for (size_t k = 0; k < ts->nvms; k++)
      if (ts->vms[k].err)
        return 1;
  }
  return 0;
}
