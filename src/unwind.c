/* Native unwinding with libunwind's remote interface and our own accessors.
 *
 * libunwind-ptrace's accessors read one word per PTRACE_PEEKDATA and find unwind tables
 * through /proc/PID/maps paths, which fails for deleted files and other mount namespaces.
 * Ours serve stack words from the bytes captured during the stop, module bytes (.eh_frame,
 * .eh_frame_hdr, code) from the module files we opened through /proc/PID/root or
 * map_files, and anything else from live memory. The unwind table lookup is libunwind's
 * own binary search over .eh_frame_hdr (as perf does), fed with addresses in the target. */
#include <errno.h>
#include <libunwind.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/unwind.h"

/* Exported by libunwind but not declared in its headers. */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
                                              unw_dyn_info_t *di, unw_proc_info_t *pi,
                                              int need_unwind_info, void *arg);

#define REDZONE 128
#define MAX_STEPS 16

struct step_hook {
  unwind_step_fn fn;
  void *arg;
};

struct unwinder {
  unw_addr_space_t as;
  struct step_hook hooks[MAX_STEPS];
  size_t nhooks;
  struct {
    void (*fn)(void *arg);
    void *arg;
  } on_walk[MAX_STEPS];
  size_t non_walk;
};

struct unwind_ctx {
  struct maps *mp;
  struct mem *m;
  const struct stack_capture *cap;
  struct unwind_regs regs;      /* registers of the frame the cursor was started at */
  uint64_t noinfo_ip;           /* last ip find_proc_info had no CFI for */
};

/* -- Capture -------------------------------------------------------------- */

int unwind_capture(struct mem *m, const struct maps *mp, const struct user_regs_struct *regs,
                   size_t max_bytes, struct stack_capture *cap)
{
  cap->regs = *regs;
  cap->len = 0;
  const struct map *s = maps_find(mp, regs->rsp);
  if (!s)
    return -VMS_E_NOSTACK;
  uint64_t lo = regs->rsp - REDZONE < s->start ? s->start : regs->rsp - REDZONE;
  uint64_t hi = s->end - regs->rsp > max_bytes ? regs->rsp + max_bytes : s->end;
  size_t len = (size_t)(hi - lo);
  if (len > cap->cap) {
    uint8_t *nb = realloc(cap->bytes, len);
    if (!nb)
      return -ENOMEM;
    cap->bytes = nb;
    cap->cap = len;
  }
  int r = mem_read(m, lo, cap->bytes, len);
  if (r == -EFAULT) {
    /* our maps may be stale (a thread stack unmapped or shrunk since): keep the readable
     * prefix, page by page */
    struct mem_iov v[64];
    size_t n = 0;
    for (uint64_t a = lo; a < hi && n < 64; n++) {
      uint64_t e = (a | 0xfff) + 1 < hi ? (a | 0xfff) + 1 : hi;
      v[n] = (struct mem_iov){ a, cap->bytes + (a - lo), (size_t)(e - a), 0 };
      a = e;
    }
    mem_readv(m, v, n);
    len = 0;
    for (size_t i = 0; i < n && !v[i].err; i++)
      len += v[i].len;
    r = len > REDZONE ? 0 : -EFAULT;
  }
  if (r)
    return r;
  cap->base = lo;
  cap->len = len;
  return 0;
}

void unwind_capture_free(struct stack_capture *cap)
{
  free(cap->bytes);
  cap->bytes = NULL;
  cap->cap = cap->len = 0;
}

/* -- Memory as the walk sees it ------------------------------------------- */

int unwind_in_capture(const struct unwind_ctx *ctx, uint64_t addr, size_t len)
{
  const struct stack_capture *c = ctx->cap;
  return c && addr >= c->base && addr - c->base <= c->len && len <= c->len - (addr - c->base);
}

int unwind_read(struct unwind_ctx *ctx, uint64_t addr, void *buf, size_t len)
{
  const struct stack_capture *c = ctx->cap;
  if (c && addr >= c->base && addr + len <= c->base + c->len && addr + len >= addr) {
    memcpy(buf, c->bytes + (addr - c->base), len);
    return 0;
  }
  const struct map *mp = maps_find(ctx->mp, addr);
  if (mp && mp->mod && !strchr(mp->perms, 'w') && addr + len <= mp->end) {
    struct module *mod = mp->mod;
    if (!mod->elf_tried)
      maps_module_open(ctx->mp, mod);
    if (mod->elf && !elf_file_read(mod->elf, addr - mod->bias, buf, len))
      return 0;
  }
  return mem_read(ctx->m, addr, buf, len);
}

/* -- libunwind accessors -------------------------------------------------- */

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
                              int need_unwind_info, void *arg)
{
  struct unwind_ctx *ctx = arg;
  struct module *mod = maps_module(ctx->mp, ip);
  uint64_t hdr, table, count;
  if (!mod || !mod->elf || elf_file_eh_frame_hdr(mod->elf, &hdr, &table, &count)) {
    ctx->noinfo_ip = ip;
    return -UNW_ENOINFO;
  }
  unw_dyn_info_t di;
  memset(&di, 0, sizeof di);
  di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
  di.start_ip = mod->start;
  di.end_ip = mod->end;
  di.u.rti.segbase = mod->bias + hdr;
  di.u.rti.table_data = mod->bias + table;
  di.u.rti.table_len = count * 8 / sizeof(unw_word_t);
  int r = _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi, need_unwind_info, arg);
  if (r < 0)
    ctx->noinfo_ip = ip;
  return r;
}

static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
  /* libunwind frees table-format info from its own pool */
  (void)as, (void)pi, (void)arg;
}

static int acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *dil, void *arg)
{
  (void)as, (void)dil, (void)arg;
  return -UNW_ENOINFO;
}

static int acc_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *valp, int write,
                          void *arg)
{
  (void)as;
  if (write)
    return -UNW_EINVAL;   /* never write to the target */
  return unwind_read(arg, addr, valp, sizeof *valp) ? -UNW_EINVAL : 0;
}

static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *valp, int write,
                          void *arg)
{
  (void)as;
  struct unwind_ctx *ctx = arg;
  const struct user_regs_struct *r = &ctx->cap->regs;
  const struct unwind_regs *u = &ctx->regs;
  if (write)
    return -UNW_EREADONLYREG;
  switch (reg) {
  case UNW_X86_64_RAX: *valp = r->rax; break;
  case UNW_X86_64_RDX: *valp = r->rdx; break;
  case UNW_X86_64_RCX: *valp = r->rcx; break;
  case UNW_X86_64_RBX: *valp = u->bx; break;
  case UNW_X86_64_RSI: *valp = r->rsi; break;
  case UNW_X86_64_RDI: *valp = r->rdi; break;
  case UNW_X86_64_RBP: *valp = u->bp; break;
  case UNW_X86_64_RSP: *valp = u->sp; break;
  case UNW_X86_64_R8: *valp = r->r8; break;
  case UNW_X86_64_R9: *valp = r->r9; break;
  case UNW_X86_64_R10: *valp = r->r10; break;
  case UNW_X86_64_R11: *valp = r->r11; break;
  case UNW_X86_64_R12: *valp = u->r12; break;
  case UNW_X86_64_R13: *valp = u->r13; break;
  case UNW_X86_64_R14: *valp = u->r14; break;
  case UNW_X86_64_R15: *valp = u->r15; break;
  case UNW_X86_64_RIP: *valp = u->ip; break;
  default: return -UNW_EBADREG;
  }
  return 0;
}

static int acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
                            void *arg)
{
  (void)as, (void)reg, (void)val, (void)write, (void)arg;
  return -UNW_EBADREG;
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
  (void)as, (void)c, (void)arg;
  return -UNW_EINVAL;
}

static int acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len,
                             unw_word_t *offp, void *arg)
{
  (void)as, (void)addr, (void)buf, (void)len, (void)offp, (void)arg;
  return -UNW_ENOINFO;   /* we symbolise after the walk ourselves */
}

static unw_accessors_t accessors = {
  .find_proc_info = acc_find_proc_info,
  .put_unwind_info = acc_put_unwind_info,
  .get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
  .access_mem = acc_access_mem,
  .access_reg = acc_access_reg,
  .access_fpreg = acc_access_fpreg,
  .resume = acc_resume,
  .get_proc_name = acc_get_proc_name,
};

/* -- Unwinder ------------------------------------------------------------- */

int unwinder_new(struct unwinder **ret_u)
{
  struct unwinder *u = calloc(1, sizeof *u);
  if (!u)
    return -ENOMEM;
  u->as = unw_create_addr_space(&accessors, 0);
  if (!u->as) {
    free(u);
    return -ENOMEM;
  }
  unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
  *ret_u = u;
  return 0;
}

void unwinder_free(struct unwinder *u)
{
  if (!u)
    return;
  unw_destroy_addr_space(u->as);
  free(u);
}

int unwinder_add_step(struct unwinder *u, unwind_step_fn fn, void *arg)
{
  if (u->nhooks == MAX_STEPS)
    return -ENOSPC;
  u->hooks[u->nhooks++] = (struct step_hook){ fn, arg };
  return 0;
}

int unwinder_on_walk(struct unwinder *u, void (*fn)(void *arg), void *arg)
{
  if (u->non_walk == MAX_STEPS)
    return -ENOSPC;
  u->on_walk[u->non_walk].fn = fn;
  u->on_walk[u->non_walk++].arg = arg;
  return 0;
}

void unwinder_flush(struct unwinder *u)
{
  unw_flush_cache(u->as, 0, 0);
}

static void regs_from_cursor(unw_cursor_t *c, struct unwind_regs *r)
{
  unw_word_t v;
  static const struct {
    int reg;
    size_t off;
  } map[] = {
    { UNW_REG_IP, offsetof(struct unwind_regs, ip) },
    { UNW_REG_SP, offsetof(struct unwind_regs, sp) },
    { UNW_X86_64_RBP, offsetof(struct unwind_regs, bp) },
    { UNW_X86_64_RBX, offsetof(struct unwind_regs, bx) },
    { UNW_X86_64_R12, offsetof(struct unwind_regs, r12) },
    { UNW_X86_64_R13, offsetof(struct unwind_regs, r13) },
    { UNW_X86_64_R14, offsetof(struct unwind_regs, r14) },
    { UNW_X86_64_R15, offsetof(struct unwind_regs, r15) },
  };
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    *(uint64_t *)((char *)r + map[i].off) = unw_get_reg(c, map[i].reg, &v) ? 0 : v;
}

int unwind_stack(struct unwinder *u, struct maps *mp, struct mem *m,
                 const struct stack_capture *cap, struct frame *frames, size_t max,
                 size_t *ret_n)
{
  struct unwind_ctx ctx = { .mp = mp, .m = m, .cap = cap };
  const struct user_regs_struct *r = &cap->regs;
  ctx.regs = (struct unwind_regs){ r->rip, r->rsp, r->rbp, r->rbx, r->r12, r->r13, r->r14,
                                   r->r15 };
  unw_cursor_t c;
  size_t n = 0;
  int err = 0;
  uint32_t next_flags = FRAME_F_EXACT;
  for (size_t i = 0; i < u->non_walk; i++)
    u->on_walk[i].fn(u->on_walk[i].arg);
  if (unw_init_remote(&c, u->as, &ctx) < 0) {
    *ret_n = 0;
    return -VMS_E_UNWIND;
  }
  for (;;) {
    if (n == max) {
      err = -VMS_E_TRUNCATED;
      break;
    }
    struct unwind_regs cur;
    regs_from_cursor(&c, &cur);
    if (!cur.ip)
      break;
    /* a frame seen before: the walk loops (signal frames and runtime steps may move sp
     * down, so comparing neighbours is not enough) */
    for (size_t i = 0; i < n; i++)
      if (frames[i].pc == cur.ip && frames[i].sp == cur.sp) {
        err = -VMS_E_CYCLE;
        goto out;
      }
    struct frame *f = &frames[n++];
    f->pc = cur.ip;
    f->sp = cur.sp;
    f->flags = next_flags;
    next_flags = 0;
    /* a runtime may know this frame better than CFI (VM frames, JIT code) */
    int handled = 0;
    for (size_t i = 0; i < u->nhooks && !handled; i++) {
      struct unwind_regs nr = cur;
      int h = u->hooks[i].fn(u->hooks[i].arg, &ctx, &nr);
      if (h < 0) {
        err = h;
        goto out;
      }
      if (h > 0) {
        if (nr.sp <= cur.sp && nr.ip == cur.ip) {
          err = -VMS_E_CYCLE;
          goto out;
        }
        ctx.regs = nr;
        if (unw_init_remote(&c, u->as, &ctx) < 0) {
          err = -VMS_E_UNWIND;
          goto out;
        }
        next_flags |= FRAME_F_RUNTIME;
        handled = 1;
      }
    }
    if (handled)
      continue;
    ctx.noinfo_ip = 0;
    int s = unw_step(&c);
    int nocfi = ctx.noinfo_ip && (ctx.noinfo_ip == cur.ip || ctx.noinfo_ip + 1 == cur.ip);
    if (s == 0) {
      /* the end, unless libunwind gave up on a frame it had no CFI for (JIT code, a
       * stripped .eh_frame): that is not the bottom of the stack */
      if (nocfi)
        err = -VMS_E_NOUNWIND;
      break;
    }
    if (s < 0) {
      err = s == -UNW_ENOINFO ? -VMS_E_NOUNWIND : -VMS_E_UNWIND;
      break;
    }
    /* libunwind tells whether the frame it just stepped over was a signal frame */
    if (unw_is_signal_frame(&c) > 0) {
      f->flags |= FRAME_F_SIGNAL;
      next_flags |= FRAME_F_EXACT;
    }
    /* libunwind looks a return address up at ip-1 */
    if (nocfi)
      next_flags |= FRAME_F_NOCFI;
    unw_word_t nsp, nip;
    unw_get_reg(&c, UNW_REG_SP, &nsp);
    unw_get_reg(&c, UNW_REG_IP, &nip);
    if (nip) {
      /* a return address must point into code: anything else is stale stack data (a
       * thread caught before its first frame, a torn or corrupt stack) */
      const struct map *xm = maps_find(mp, nip - 1);
      if (!xm || !strchr(xm->perms, 'x')) {
        err = -VMS_E_BADRET;
        break;
      }
    }
    /* the stack grows down: a caller's frame never lies below its callee's (except a
     * signal handler's frame, which may sit on an alternate stack) */
    if (nsp < cur.sp && !(f->flags & FRAME_F_SIGNAL)) {
      err = -VMS_E_CYCLE;
      break;
    }
    if (nsp == cur.sp) {
      if (nip == cur.ip) {
        err = -VMS_E_CYCLE;
        break;
      }
    }
  }
out:
  *ret_n = n;
  return err;
}
