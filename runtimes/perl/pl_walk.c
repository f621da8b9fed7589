#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/tls.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"
#include "pl_vm.h"

/* -- The walk --------------------------------------------------------------- */

struct pframe {
  int seg;                   /* runops run, innermost 0 */
  char func[128];
  uint64_t cop;
  uint64_t cv;               /* a sub's CV (0: an eval or the main program) */
  uint32_t depth;            /* the CV's depth in this call (its pad: padlist[depth]) */
  uint8_t kind;              /* PL_FRAME_* */
};

static int is_runops(const struct pl_vm *vm, const struct frame *f)
{
  uint64_t pc = f->flags & FRAME_F_EXACT ? f->pc : f->pc - 1;
  for (size_t i = 0; i < vm->nrunops; i++)
    if (pc >= vm->runops[i][0] && pc < vm->runops[i][1])
      return 1;
  return 0;
}

/* The frames of the copied stacks, innermost first, each with its runops run. */
static int collect(struct pl_vm *vm, struct pframe *pf, size_t max, size_t *ret_n)
{
  const struct pl_layout *lo = vm->lo;
  size_t n = 0;
  int seg = 0, bump = 0, r = 0;
  uint64_t pending = vm->snap.curcop;
  for (size_t k = 0; k < vm->snap.nsi && n < max; k++) {
    const struct si_copy *c = &vm->snap.si[k];
    int prev_null_sub = 0;   /* the context just above was a SUB entered from C */
    for (int32_t i = c->cxix; i >= 0 && n < max; i--) {
      const uint8_t *cx = c->cx + (size_t)i * lo->cx.size;
      uint8_t type = cx[lo->cx.type], t = type & lo->cxt.mask;
      int sub = t == lo->cxt.sub || t == lo->cxt.format, eval = t == lo->cxt.eval;
      if (!sub && !eval) {
        prev_null_sub = 0;
        continue;
      }
      if (t == lo->cxt.sub && (type & lo->cxt.sub_re_fake))
        continue;
      uint64_t retop = rd(cx, sub ? lo->cx.sub_retop : lo->cx.eval_retop, 8);
      /* call_sv with G_EVAL: an eval context right below the sub, both left by the same
       * run of the op loop */
      int same_call = eval && !retop && prev_null_sub;
      if (bump && !same_call) {
        seg++;
        bump = 0;
      }
      struct pframe *f = &pf[n++];
      f->seg = seg;
      f->cop = pending;
      f->cv = 0;
      f->depth = 0;
      f->kind = sub ? PL_FRAME_SUB : PL_FRAME_EVAL;
      if (sub) {
        uint64_t cv = rd(cx, t == lo->cxt.sub ? lo->cx.sub_cv : lo->cx.format_cv, 8);
        if (t == lo->cxt.sub) {
          f->cv = cv;
          f->depth = (uint32_t)rd(cx, lo->loc.cx_olddepth, 4) + 1;
        }
        if (pl_cv_name(vm, cv, f->func, sizeof f->func)) {
          if (k == 0 && i == c->cxix) {
            /* the innermost context is counted before it is filled in: one being
             * entered right now; it is not a frame yet */
            n--;
            continue;
          }
          fmt(f->func, sizeof f->func, "(unknown sub)");
          r = -VMS_E_BADDATA;
        }
      } else {
        uint64_t namesv = rd(cx, lo->cx.eval_old_namesv, 8);
        struct svh h;
        char req[100];
        if (namesv && !pl_sv_head(vm, namesv, &h) && h.u &&
            mem_read_cstr(vm->t->mem, h.u, req, sizeof req) >= 0 && pl_text_ok(req))
          fmt(f->func, sizeof f->func, "require %s", req);
        else if (namesv) {
          fmt(f->func, sizeof f->func, "require");
          r = -VMS_E_BADDATA;
        }
        else if (type & lo->cxt.evalblock)
          fmt(f->func, sizeof f->func, "eval {...}");
        else
          fmt(f->func, sizeof f->func, "(eval)");
      }
      pending = rd(cx, lo->cx.oldcop, 8);
      if (!retop)
        bump = 1;
      prev_null_sub = sub && !retop;
    }
    if (k + 1 < vm->snap.nsi) {
      seg++;   /* another stackinfo: another run of the op loop */
      bump = 0;
    }
  }
  if (n < max) {
    if (bump)
      seg++;
    struct pframe *f = &pf[n++];
    f->seg = seg;
    f->cop = pending;
    f->cv = 0;
    f->depth = 1;
    f->kind = PL_FRAME_MAIN;
    fmt(f->func, sizeof f->func, "main");
  } else if (!r) {
    r = -VMS_E_TRUNCATED;   /* (the main program's frame is always the last) */
  }
  *ret_n = n;
  return r;
}

static int pl_walk(void *vmv, struct target *t, struct thread *th,
                   const struct stack_capture *cap, const struct frame *native,
                   size_t nnative, struct vm_frames *out)
{
  struct pl_vm *vm = vmv;
  (void)t;
  (void)cap;
  if (!vm->snap.valid || vm->snap.tid != th->tid) {
    int r = vm->snap.tid == th->tid && vm->snap.err ? vm->snap.err : pl_copy_stacks(vm, th);
    vm->snap.err = 0;
    if (r == -ENOENT)
      return 0;   /* this thread runs no Perl */
    if (r) {
      out->err = r;
      return r;
    }
  }
  vm->snap.valid = 0;
  /* as many frames as the copied contexts can give, up to the frames asked for */
  size_t max = out->max ? out->max : VM_FRAMES_DEFAULT, n = 0, can = 1;
  for (size_t k = 0; k < vm->snap.nsi; k++)
    can += vm->snap.si[k].cxix >= 0 ? (size_t)vm->snap.si[k].cxix + 1 : 0;
  struct pframe *pf = malloc((can < max ? can : max) * sizeof *pf);
  if (!pf)
    return out->err = -ENOMEM;
  int r = collect(vm, pf, can < max ? can : max, &n);
  /* runs of the op loop among the native frames, innermost first */
  size_t runs[64], nruns = 0;
  for (size_t i = 0; i < nnative && nruns < 64; i++)
    if (is_runops(vm, &native[i]))
      runs[nruns++] = i;
  int parsing = 0;
  for (size_t i = 0; i < nnative && vm->yyparse[1]; i++) {
    uint64_t pc = native[i].flags & FRAME_F_EXACT ? native[i].pc : native[i].pc - 1;
    parsing |= pc >= vm->yyparse[0] && pc < vm->yyparse[1];
  }
  if (nnative && !nruns && n == 1 && !r && !out->native_err && !parsing) {
    /* an embedded interpreter between calls (nginx's perl module in a worker serving a
     * Lua request): no op loop and no parser on a native stack read to its end, no sub
     * entered, only the main program's base context: this thread runs no Perl now */
    free(pf);
    return 0;
  }
  size_t first = out->n;
  for (size_t i = 0; i < n; i++) {
    size_t anchor = !nruns ? nnative
                   : runs[(size_t)pf[i].seg < nruns ? (size_t)pf[i].seg : nruns - 1];
    struct vm_frame *v = vm_frames_push(out, anchor, FK_FUNCTION);
    if (!v) {
      r = -ENOMEM;
      break;
    }
    char file[256];
    file[0] = 0;
    vm_frames_setf(out, &v->func, "%s", pf[i].func);
    /* for the locals hook: the sub's CV and depth, the statement it is at, what it is */
    v->ctx[0] = pf[i].cv;
    v->ctx[1] = pf[i].depth;
    v->ctx[2] = pf[i].cop;
    v->ctx[3] = pf[i].kind;
    v->ctx[4] = vm->snap.interp;
    if (pl_cop_info(vm, pf[i].cop, file, sizeof file, &v->line) && !r)
      r = -VMS_E_BADDATA;
    if (file[0])
      vm_frames_setf(out, &v->file, "%s", file);
  }
  /* XS subs among the native frames: named frames in their place */
  for (size_t i = 0; i < nnative && !r; i++) {
    char module[64];
    const char *name = pl_xs_name(vm, native, i, nnative, module, sizeof module);
    if (!name)
      continue;
    struct vm_frame *v = vm_frames_push(out, i, FK_NATIVE_SUB);
    if (!v) {
      r = -ENOMEM;
      break;
    }
    vm_frames_setf(out, &v->func, "%s", name);
    vm_frames_setf(out, &v->file, "%s", module);
    v->pc = native[i].pc;
  }
  /* grouped by anchor, innermost first (stable: the Perl frames of a run keep their order) */
  for (size_t a = first + 1; a < out->n; a++) {
    struct vm_frame tmp = out->v[a];
    size_t b = a;
    while (b > first && out->v[b - 1].anchor > tmp.anchor) {
      out->v[b] = out->v[b - 1];
      b--;
    }
    out->v[b] = tmp;
  }
  fmt(out->state, sizeof out->state, "%s", vm->snap.curcop == vm->snap.compiling ?
      "compiling" : "running");
  free(pf);
  if (r && !out->err)
    out->err = r;
  return r;
}

/* Without stopping the thread: copy the stacks, then check that the structure (stackinfo,
 * depth, context array) is the one copied; the current statement may have moved on
 * meanwhile, which only moves the innermost line. */
static int pl_walk_running(void *vmv, struct target *t, struct thread *th,
                           struct vm_frames *out)
{
  struct pl_vm *vm = vmv;
  const struct pl_layout *lo = vm->lo;
  int r = pl_copy_stacks(vm, th);
  if (r == -ENOENT)
    return 0;
  if (r)
    return out->err = r == -VMS_E_BADDATA ? -VMS_E_TORN : r;
  const struct si_copy *c = &vm->snap.si[0];
  uint64_t si = 0;
  int32_t cxix = -2;
  mem_invalidate(t->mem);   /* read again, not from the copies just made */
  if (lo->multiplicity)
    mem_read(t->mem, vm->snap.interp + lo->interp.curstackinfo, &si, 8);
  else
    mem_read(t->mem, vm->g_curstackinfo, &si, 8);
  if (si == c->addr)
    mem_read(t->mem, si + lo->si.cxix, &cxix, 4);
  if (si != c->addr || cxix != c->cxix) {
    vm->snap.valid = 0;
    return out->err = -VMS_E_TORN;
  }
  return pl_walk(vm, t, th, NULL, NULL, 0, out);
}

extern const struct vm_runtime vm_runtime_perl;
const struct vm_runtime vm_runtime_perl = {
  .name = "perl",
  .alias = "perl-stack",
  .only = "perl-only",
  .noun = "Perl interpreter",
  .lang = "Perl",
  .caps = VM_CAP_NONBLOCKING | VM_CAP_HEAP | VM_CAP_LOCALS,
  .probe = pl_probe,
  .capture = pl_capture,
  .walk = pl_walk,
  .walk_running = pl_walk_running,
  .locals = pl_locals,
  .heap = pl_heap,
  .heap_label = pl_heap_label,
  .describe = pl_describe,
  .free = pl_free,
};
