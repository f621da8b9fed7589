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

/* -- Capture: the context stacks, copied while the thread stands still ------ */

/* The thread's interpreter: its thread-local pointer, else PL_curinterp for the main
 * thread. 0 when the thread runs no Perl. */
int pl_thread_interp(struct pl_vm *vm, const struct thread *th, uint64_t *ret,
                         uint64_t *ret_at)
{
  *ret = 0;
  *ret_at = 0;
  if (vm->tls.kind != TLS_NONE && th->regs.fs_base) {
    uint64_t addr, v;
    int r = tls_addr(vm->t->mem, &vm->tls, th->regs.fs_base, &addr);
    if (r)
      return r;
    if (!addr)
      return 0;   /* this thread never touched libperl's thread-locals: no Perl */
    if (mem_read(vm->t->mem, addr, &v, 8))
      return -VMS_E_BADDATA;
    *ret = v;
    *ret_at = addr;
    return 0;
  }
  if (th->tid != vm->t->pid)
    return 0;
  *ret_at = vm->curinterp;
  return rptr(vm, vm->curinterp, ret);
}

/* Fill c from a stackinfo's bytes; its contexts come separately. */
static int si_parse(const struct pl_layout *lo, uint64_t addr, const uint8_t *sib,
                    struct si_copy *c, int32_t *ret_cxmax, uint64_t *ret_base)
{
  c->addr = addr;
  c->prev = rd(sib, lo->si.prev, 8);
  c->cxix = (int32_t)rd(sib, lo->si.cxix, 4);
  c->type = (int32_t)rd(sib, lo->si.type, 4);
  *ret_cxmax = (int32_t)rd(sib, lo->si.cxmax, 4);
  *ret_base = rd(sib, lo->si.cxstack, 8);
  if (c->cxix < -1 || c->cxix >= CX_MAX || *ret_cxmax < c->cxix || !*ret_base ||
      (*ret_base & 7) || (size_t)(c->cxix + 1) * lo->cx.size > CX_BYTES_MAX)
    return -VMS_E_BADDATA;
  return 0;
}

static int si_room(struct si_copy *c, size_t n)
{
  if (n <= c->cap)
    return 0;
  uint8_t *nb = realloc(c->cx, n);
  if (!nb)
    return -ENOMEM;
  c->cx = nb;
  c->cap = n;
  return 0;
}

/* Where PL_curcop and PL_curstackinfo of the thread are (0: the thread runs no Perl). */
static int thread_vars(struct pl_vm *vm, const struct thread *th, uint64_t *ret_interp,
                       uint64_t *ret_interp_at, uint64_t *ret_curcop, uint64_t *ret_cursi)
{
  const struct pl_layout *lo = vm->lo;
  *ret_interp_at = 0;
  if (!lo->multiplicity) {
    if (th->tid != vm->t->pid)
      return -ENOENT;   /* without MULTIPLICITY only the main thread runs Perl */
    *ret_interp = 0;
    *ret_curcop = vm->g_curcop;
    *ret_cursi = vm->g_curstackinfo;
    return 0;
  }
  int r = pl_thread_interp(vm, th, ret_interp, ret_interp_at);
  if (r)
    return r;
  if (!*ret_interp)
    return -ENOENT;
  *ret_curcop = *ret_interp + lo->interp.curcop;
  *ret_cursi = *ret_interp + lo->interp.curstackinfo;
  return 0;
}

#define CX_SPARE 4   /* contexts read beyond the last depth seen, in the one-read path */

/* The one-read path: where the thread's stacks were at its last sample, read in one call
 * (its interpreter, PL_curcop and PL_curstackinfo, the stackinfo, its contexts) and
 * accepted when they are still there. Fills snap.si[0]; -EAGAIN when they moved. */
static int copy_fast(struct pl_vm *vm, const struct thread *th, uint64_t *ret_cursi_val)
{
  const struct pl_layout *lo = vm->lo;
  struct pl_where *w = &vm->where[(unsigned)th->tid % WHERE_SLOTS];
  if (w->tid != th->tid || !w->si)
    return -EAGAIN;
  struct si_copy *c = &vm->snap.si[0];
  size_t ncx = (size_t)w->cxix + 1 + CX_SPARE;
  if (ncx > (size_t)w->cxmax + 1)
    ncx = (size_t)w->cxmax + 1;
  if (si_room(c, ncx * lo->cx.size))
    return -ENOMEM;
  uint64_t interp = 0, v[2] = { 0, 0 };
  uint8_t sib[256];
  struct mem_iov iov[5];
  size_t n = 0;
  if (lo->multiplicity && !w->interp_at)
    return -EAGAIN;
  if (lo->multiplicity)
    iov[n++] = (struct mem_iov){ w->interp_at, &interp, 8, 0 };
  iov[n++] = (struct mem_iov){ w->curcop_at, &v[0], 8, 0 };
  iov[n++] = (struct mem_iov){ w->cursi_at, &v[1], 8, 0 };
  iov[n++] = (struct mem_iov){ w->si, sib, lo->si.size, 0 };
  iov[n++] = (struct mem_iov){ w->cxstack, c->cx, ncx * lo->cx.size, 0 };
  if (lo->si.size > sizeof sib || mem_readv(vm->t->mem, iov, n))
    return -EAGAIN;
  int32_t cxmax;
  uint64_t base;
  if ((lo->multiplicity && interp != w->interp) || v[1] != w->si ||
      si_parse(lo, w->si, sib, c, &cxmax, &base) || base != w->cxstack ||
      cxmax != w->cxmax || (size_t)(c->cxix + 1) > ncx)
    return -EAGAIN;
  vm->snap.interp = w->interp;
  vm->snap.curcop = v[0];
  *ret_cursi_val = v[1];
  return 0;
}

/* Copy PL_curcop and every stackinfo with its contexts, innermost first. */
int pl_copy_stacks(struct pl_vm *vm, const struct thread *th)
{
  const struct pl_layout *lo = vm->lo;
  struct mem *m = vm->t->mem;
  vm->snap.valid = 0;
  vm->snap.nsi = 0;
  vm->snap.tid = th->tid;
  uint64_t cur_si = 0, interp = 0, interp_at = 0, curcop_at = 0, cursi_at = 0;
  int fast = copy_fast(vm, th, &cur_si) == 0;
  if (fast) {
    struct pl_where *w = &vm->where[(unsigned)th->tid % WHERE_SLOTS];
    interp = w->interp;
    curcop_at = w->curcop_at;
    cursi_at = w->cursi_at;
    vm->snap.nsi = 1;
  } else {
    int r = thread_vars(vm, th, &interp, &interp_at, &curcop_at, &cursi_at);
    if (r)
      return r;
    uint64_t v[2];
    struct mem_iov iov[2] = { { curcop_at, &v[0], 8, 0 }, { cursi_at, &v[1], 8, 0 } };
    if (mem_readv(m, iov, 2))
      return -VMS_E_BADDATA;
    vm->snap.interp = interp;
    vm->snap.curcop = v[0];
    cur_si = v[1];
  }
  vm->snap.compiling = lo->multiplicity ? interp + lo->interp.compiling : vm->g_compiling;
  if (!cur_si)
    return -ENOENT;   /* an interpreter not yet (or no longer) set up */
  uint8_t sib[256];
  if (lo->si.size > sizeof sib)
    return -VMS_E_BADDATA;
  uint64_t si = fast ? (vm->snap.si[0].type == lo->si_type.main ? 0 : vm->snap.si[0].prev)
                     : cur_si;
  uint64_t base0 = 0;
  int32_t cxmax0 = 0;
  while (si && vm->snap.nsi < SI_MAX) {
    for (size_t k = 0; k < vm->snap.nsi; k++)
      if (vm->snap.si[k].addr == si)
        return -VMS_E_BADDATA;   /* a loop */
    struct si_copy *c = &vm->snap.si[vm->snap.nsi];
    int32_t cxmax;
    uint64_t base;
    if ((si & 7) || mem_read(m, si, sib, lo->si.size) ||
        si_parse(lo, si, sib, c, &cxmax, &base))
      return -VMS_E_BADDATA;
    size_t n = (size_t)(c->cxix + 1) * lo->cx.size;
    if (si_room(c, n))
      return -ENOMEM;
    if (n && mem_read(m, base, c->cx, n))
      return -VMS_E_BADDATA;
    if (vm->snap.nsi == 0) {
      base0 = base;
      cxmax0 = cxmax;
    }
    vm->snap.nsi++;
    if (c->type == lo->si_type.main)
      break;
    si = c->prev;
  }
  if (!fast) {
    /* remembered for the next sample of this thread: the one-read path */
    struct pl_where *w = &vm->where[(unsigned)th->tid % WHERE_SLOTS];
    *w = (struct pl_where){ th->tid, interp, interp_at, curcop_at, cursi_at, cur_si, base0,
                            vm->snap.si[0].cxix, cxmax0 };
  } else {
    vm->where[(unsigned)th->tid % WHERE_SLOTS].cxix = vm->snap.si[0].cxix;
  }
  vm->snap.valid = 1;
  return 0;
}

int pl_capture(void *vmv, struct target *t, struct thread *th,
                      const struct stack_capture *cap)
{
  struct pl_vm *vm = vmv;
  (void)t;
  (void)cap;
  vm->snap.err = pl_copy_stacks(vm, th);
  return 0;
}
