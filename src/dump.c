/* One-shot dump: per thread stop, copy registers and stack, release, then unwind. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"

/* Test seam, off unless set: VMSTACK_TEST_HOLD_MS keeps each thread stopped that long
 * (a signal cuts it short) and VMSTACK_TEST_CRASH=1 crashes vmstack while it holds one, so
 * that tests can check the target never stays stopped whatever happens to us. */
static void test_hold(void)
{
  static int init;
  static long hold_ms;
  static int crash;
  if (!init) {
    const char *h = getenv("VMSTACK_TEST_HOLD_MS"), *c = getenv("VMSTACK_TEST_CRASH");
    hold_ms = h ? atol(h) : 0;
    crash = c && *c == '1';
    init = 1;
  }
  if (crash)
    raise(SIGSEGV);
  if (hold_ms > 0 && !target_interrupted()) {
    struct timespec ts = { hold_ms / 1000, (hold_ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
  }
}

/* Stop, capture and release one thread: the pause is a stop/resume round trip plus one
 * read of the live part of its stack. */
static int capture_thread(struct target *t, struct thread *th, const struct dump_opts *o,
                          struct unwinder *u, struct stack_capture *cap)
{
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
  test_hold();
  target_release(t, th);
  return r;
}

static int walk_thread(struct target *t, struct unwinder *u, const struct dump_opts *o,
                       const struct stack_capture *cap, struct thread_stack *ts)
{
  struct frame *fr = calloc(o->max_depth, sizeof *fr);
  if (!fr)
    return -ENOMEM;
  size_t n = 0;
  ts->walk_err = unwind_stack(u, t->maps, t->mem, cap, fr, o->max_depth, &n);
  ts->frames = calloc(n ? n : 1, sizeof *ts->frames);
  if (!ts->frames) {
    free(fr);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    struct out_frame *of = &ts->frames[i];
    of->pc = fr[i].pc;
    of->flags = fr[i].flags;
    of->kind = FRAME_NATIVE;
    symbolize(t->maps, fr[i].pc, fr[i].flags & FRAME_F_EXACT, o->lines, &of->si);
  }
  ts->n = n;
  free(fr);
  return 0;
}

int dump_collect(struct target *t, const struct dump_opts *o, struct dump_result *res)
{
  struct unwinder *u = NULL;
  struct stack_capture cap = { 0 };
  memset(res, 0, sizeof *res);
  int r = unwinder_new(&u);
  if (r)
    return r;
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
    ts->err = capture_thread(t, th, o, u, &cap);
    if (ts->err == -VMS_E_GONE) {
      r = ts->err;
      break;
    }
    if (!ts->err && (r = walk_thread(t, u, o, &cap, ts)))
      break;
    if (target_interrupted())
      break;
  }
  target_detach(t);
  if (!r && !target_alive(t))
    r = -VMS_E_GONE;
  unwind_capture_free(&cap);
  unwinder_free(u);
  return r;
}

void dump_result_free(struct dump_result *res)
{
  for (size_t i = 0; i < res->n; i++)
    free(res->threads[i].frames);
  free(res->threads);
  res->threads = NULL;
  res->n = 0;
}

int dump_partial(const struct dump_result *res)
{
  for (size_t i = 0; i < res->n; i++) {
    const struct thread_stack *ts = &res->threads[i];
    if ((ts->err && ts->err != -ESRCH) || ts->walk_err)
      return 1;
  }
  return 0;
}
