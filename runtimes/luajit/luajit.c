/* LuaJIT 2.1 runtime: detection, layout choice, and the VM frame step. */
#include <capstone/capstone.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lj_vm.h"
#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"

#define VM_MIN_SIZE 4096     /* the interpreter's FDE spans ~16 KiB; nothing else near that */
#define DW_REG_RSP 7

/* -- Detection ------------------------------------------------------------ */

/* The module exporting LuaJIT's API: lua_close plus a luaJIT_* entry point (PUC Lua has the
 * former only). */
static struct module *find_module(struct maps *mp)
{
  return maps_module_with(mp, "lua_close", "luaJIT_setmode");
}

/* GC64 or not, from lua_close's first load through L (rdi): G = L->glref is a 64-bit load
 * at +16 with GC64, a 32-bit load at +8 without. */
static int detect_gc64(struct elf_file *ef, int *ret_gc64)
{
  uint64_t a;
  uint8_t code[64];
  if (elf_file_lookup(ef, "lua_close", &a, NULL) || elf_file_read(ef, a, code, sizeof code))
    return -VMS_E_UNSUPPORTED;
  csh h;
  if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
    return -ENOMEM;
  cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
  cs_insn *insn;
  size_t n = cs_disasm(h, code, sizeof code, a, 0, &insn);
  int r = -VMS_E_UNSUPPORTED;
  for (size_t i = 0; i < n && r; i++) {
    cs_x86 *x = &insn[i].detail->x86;
    if (insn[i].id != X86_INS_MOV || x->op_count != 2 || x->operands[0].type != X86_OP_REG ||
        x->operands[1].type != X86_OP_MEM || x->operands[1].mem.base != X86_REG_RDI)
      continue;
    int64_t disp = x->operands[1].mem.disp;
    if (disp == 16 && x->operands[1].size == 8) {
      *ret_gc64 = 1;
      r = 0;
    } else if (disp == 8 && x->operands[1].size == 4) {
      *ret_gc64 = 0;
      r = 0;
    }
  }
  cs_free(insn, n);
  cs_close(&h);
  return r;
}

/* The interpreter: the largest FDE whose CFA is rsp+CFRAME_SIZE for its whole length. */
static int find_vm_range(struct module *m, const struct lj_layout *lo, uint64_t *ret_start,
                         uint64_t *ret_end)
{
  uint64_t best_s = 0, best_e = 0, s, e, fde;
  int reg;
  int64_t off;
  for (size_t i = 0; !elf_file_fde_start(m->elf, i, &fde); i++) {
    if (elf_file_fde(m->elf, fde, &s, &e, &reg, &off) || e - s < VM_MIN_SIZE)
      continue;
    if (reg != DW_REG_RSP || off != lo->cf.size)
      continue;
    if (e - s > best_e - best_s) {
      best_s = s;
      best_e = e;
    }
  }
  if (!best_e)
    return -VMS_E_UNSUPPORTED;
  *ret_start = best_s + m->bias;
  *ret_end = best_e + m->bias;
  return 0;
}

/* Does the module's read-only data hold this exact string? (The version banner.) */
static int has_string(struct module *m, const char *s)
{
  uint64_t va, size;
  const uint8_t *b;
  if (elf_file_section(m->elf, ".rodata", &va, &size, &b) || !b)
    return 0;
  size_t l = strlen(s);
  for (const uint8_t *p = b; p + l <= b + size; p++) {
    p = memchr(p, s[0], (size_t)(b + size - p));
    if (!p || p + l > b + size)
      return 0;
    if (!memcmp(p, s, l) && (p + l == b + size || !p[l] || p[l] == ' '))
      return 1;
  }
  return 0;
}

static int lj_probe(struct target *t, void **ret_vm)
{
  struct module *m = find_module(t->maps);
  if (!m)
    return -ENOENT;
  struct lj_vm *vm = calloc(1, sizeof *vm);
  if (!vm)
    return -ENOMEM;
  vm->t = t;
  vm->mod = m;
  uint64_t a;
  int flavour = elf_file_lookup(m->elf, "lua_setexdata", &a, NULL) ? LJ_FLAVOUR_UPSTREAM
                                                                     : LJ_FLAVOUR_OPENRESTY;
  int gc64 = -1;
  int r = detect_gc64(m->elf, &gc64);
  for (size_t i = 0; !r && i < lj_layouts_count; i++) {
    const struct lj_layout *lo = &lj_layouts[i];
    if (lo->flavour == flavour && lo->gc64 == gc64 && has_string(m, lo->version)) {
      vm->lo = lo;
      break;
    }
  }
  if (!vm->lo) {
    snprintf(vm->desc, sizeof vm->desc,
             "LuaJIT in %s: %s%s build not known (known: ", m->name,
             flavour == LJ_FLAVOUR_OPENRESTY ? "OpenResty " : "upstream ",
             gc64 < 0 ? "unrecognised" : gc64 ? "GC64" : "non-GC64");
    for (size_t i = 0; i < lj_layouts_count; i++) {
      size_t l = strlen(vm->desc);
      snprintf(vm->desc + l, sizeof vm->desc - l, "%s%s", i ? ", " : "", lj_layouts[i].name);
    }
    size_t l = strlen(vm->desc);
    snprintf(vm->desc + l, sizeof vm->desc - l, ")");
    *ret_vm = vm;
    return -VMS_E_UNSUPPORTED;
  }
  r = find_vm_range(m, vm->lo, &vm->vm_start, &vm->vm_end);
  if (r) {
    snprintf(vm->desc, sizeof vm->desc, "LuaJIT in %s: interpreter code not found (%s)",
             m->name, vm->lo->name);
    *ret_vm = vm;
    return r;
  }
  snprintf(vm->desc, sizeof vm->desc, "%s (%s, %s)", vm->lo->version, vm->lo->name, m->name);
  *ret_vm = vm;
  return 0;
}

static const char *lj_describe(const void *vmv)
{
  return ((const struct lj_vm *)vmv)->desc;
}

static void lj_free(void *vmv)
{
  struct lj_vm *vm = vmv;
  if (vm) {
    free(vm->names);
    free(vm->snap.s.bytes);
    free(vm->tc.v);
  }
  free(vm);
}

/* -- Finding and checking global_State ------------------------------------ */

int lj_check_G(struct lj_vm *vm, uint64_t G)
{
  const struct lj_layout *lo = vm->lo;
  uint64_t disp[128];
  size_t n = lo->bc.max < 128 ? lo->bc.max : 128;
  if (G == vm->G_checked)
    return 1;
  if (mem_read(vm->t->mem, G + lo->gg.g2disp, disp, n * 8))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (disp[i] < vm->vm_start || disp[i] >= vm->vm_end)
      return 0;
  vm->G_checked = G;
  return 1;
}

size_t lj_scan_G(struct lj_vm *vm, uint64_t *ret_G, size_t max)
{
  size_t found = 0;
  const struct lj_layout *lo = vm->lo;
  struct maps *mp = vm->t->maps;
  size_t need = lo->bc.max;
  uint64_t *buf = malloc(1u << 20);
  if (!buf)
    return 0;
  /* the maps as they are now: the allocator maps and unmaps as it goes (a range read
   * at attach may have been given back, or merged with its neighbour) */
  if (!target_reload_maps(vm->t))
    mp = vm->t->maps;
  for (size_t i = 0; i < mp->n; i++) {
    const struct map *m = &mp->v[i];
    if (m->perms[0] != 'r' || m->perms[1] != 'w' || (m->path && strcmp(m->path, "[heap]")))
      continue;
    /* without GC64 every GC object lives in the low 4 GiB */
    if (!lo->gc64 && m->start >= (1ull << 32))
      continue;
    for (uint64_t a = m->start; a < m->end; a += (1u << 20) - need * 8) {
      size_t len = m->end - a < (1u << 20) ? (size_t)(m->end - a) : (1u << 20);
      if (mem_read(vm->t->mem, a, buf, len)) {
        /* part of it is gone: the pages that are left, the others as zeros */
        size_t ok = 0;
        for (size_t o = 0; o < len; o += 4096) {
          size_t pl = len - o < 4096 ? len - o : 4096;
          if (mem_read(vm->t->mem, a + o, (uint8_t *)buf + o, pl))
            memset((uint8_t *)buf + o, 0, pl);
          else
            ok = 1;
        }
        if (!ok)
          break;
      }
      size_t run = 0;
      for (size_t k = 0; k < len / 8; k++) {
        run = buf[k] >= vm->vm_start && buf[k] < vm->vm_end ? run + 1 : 0;
        if (run == need) {
          uint64_t G = a + (k + 1 - need) * 8 - lo->gg.g2disp;
          int dup = 0;   /* (chunks overlap: a table at a chunk's end is met twice) */
          for (size_t d = 0; d < found; d++)
            dup |= ret_G[d] == G;
          if (!dup && found < max && lj_check_G(vm, G))
            ret_G[found++] = G;
        }
      }
      if (len < (1u << 20))
        break;
    }
  }
  free(buf);
  return found;
}

/* -- Unwind step for VM frames -------------------------------------------- */

static int read_ptr(const struct lj_vm *vm, struct unwind_ctx *ctx, uint64_t addr, uint64_t *ret)
{
  *ret = 0;
  return unwind_read(ctx, addr, ret, vm->lo->gc64 ? 8 : 4);
}

/* A lua_State pointer is believable: the GC header says thread and its G points back to a
 * global_State whose main thread is a thread too. */
static int valid_L(struct lj_vm *vm, struct unwind_ctx *ctx, uint64_t L)
{
  const struct lj_layout *lo = vm->lo;
  uint8_t gct;
  uint64_t G, mainL;
  if (!L || (L & 7) || unwind_read(ctx, L + lo->L.gct, &gct, 1) || gct != lo->gct.thread)
    return 0;
  if (read_ptr(vm, ctx, L + lo->L.glref, &G) || !G || (G & 7))
    return 0;
  if (G == vm->G)
    return 1;
  if (read_ptr(vm, ctx, G + lo->g.mainthref, &mainL) || !mainL ||
      unwind_read(ctx, mainL + lo->L.gct, &gct, 1) || gct != lo->gct.thread)
    return 0;
  if (!lj_check_G(vm, G)) {
    /* a real lua_State whose global_State does not look as the layout says: wrong table
     * for this build; better no Lua frames than wrong ones */
    if (!vm->layout_bad)
      snprintf(vm->desc, sizeof vm->desc, "LuaJIT in %s: a build the %s layout does not fit "
               "(no dispatch table at G+%u for G=0x%" PRIx64 "); it is not supported",
               vm->mod->name, lo->name, (unsigned)lo->gg.g2disp, G);
    vm->layout_bad = 1;
    return 0;
  }
  vm->G = G;
  return 1;
}

/* Pop the VM's C frame at cframe: the caller's registers sit right below the CFA
 * (cframe + CFRAME_SIZE). Frames inside the interpreter are walked this way rather than
 * with CFI: VM-internal subroutines (vm_floor and others) are reached by call, so rsp can
 * be 8 below the cframe while the FDE assumes it is the cframe. */
static int pop_cframe(struct unwind_ctx *ctx, uint64_t cfa, struct unwind_regs *r)
{
  uint64_t v[5];   /* r14, r15, rbx, rbp, return address (cfa-40 .. cfa-8) */
  if (unwind_read(ctx, cfa - 40, v, sizeof v))
    return -1;
  r->r14 = v[0];
  r->r15 = v[1];
  r->bx = v[2];
  r->bp = v[3];
  r->ip = v[4];
  r->sp = cfa;
  return 0;
}

/* Is cf one of L's VM entries (L->cframe, then each one's SAVE_CFRAME, outwards)?
 * 1 yes, 0 no, -1 when L's chain cannot be read. */
static int on_chain(struct lj_vm *vm, struct unwind_ctx *ctx, uint64_t L, uint64_t cf)
{
  const struct lj_layout *lo = vm->lo;
  uint64_t c;
  if (vm->snap.valid && vm->snap.s.L == L)
    c = vm->snap.s.cframe;
  else if (unwind_read(ctx, L + lo->L.cframe, &c, 8))
    return -1;
  c &= (uint64_t)lo->cf.rawmask;
  for (int i = 0; i < LJ_MAX_CFRAMES && c; i++) {
    if (c == cf)
      return 1;
    if (c > cf)
      return 0;   /* outer entries lie higher on the stack */
    if (unwind_read(ctx, c + lo->cf.ofs_prev, &c, 8))
      return -1;
    c &= (uint64_t)lo->cf.rawmask;
  }
  return 0;
}

/* -- Traces by machine-code address ---------------------------------------- */

#define TRACES_MAX 65536     /* J->sizetrace is at most LJ_MAX_TRACE + 1 */
#define TRACE_MCODE_MAX (64u << 20)

static int te_cmp(const void *a, const void *b)
{
  const struct lj_trace_ent *x = a, *y = b;
  return x->mcode < y->mcode ? -1 : x->mcode > y->mcode;
}

/* Read every trace of G: J->trace[1 .. sizetrace-1], their headers in batches. */
static int traces_build(struct lj_vm *vm, uint64_t G)
{
  const struct lj_layout *lo = vm->lo;
  struct mem *m = vm->t->mem;
  uint64_t J = G - lo->gg.g + lo->gg.J, traces = 0;
  uint32_t sizetrace = 0;
  vm->tc.G = G;
  vm->tc.n = 0;
  vm->tc.rebuilt = 1;
  if (lo->tr.size > 128 || mem_read(m, J + lo->J.trace, &traces, 8) ||
      mem_read(m, J + lo->J.sizetrace, &sizetrace, 4) || sizetrace > TRACES_MAX || !traces)
    return -VMS_E_BADDATA;
  size_t w = lo->gcref_size;
  uint8_t *refs = malloc((size_t)sizetrace * w + 1);
  if (!refs)
    return -ENOMEM;
  if (sizetrace && mem_read(m, traces, refs, (size_t)sizetrace * w)) {
    free(refs);
    return -VMS_E_BADDATA;
  }
  enum { BATCH = 64 };
  uint8_t hdr[BATCH][128];
  struct mem_iov iov[BATCH];
  uint32_t no[BATCH];
  size_t nb = 0;
  for (uint32_t i = 1; i <= sizetrace; i++) {
    if (i < sizetrace) {
      uint64_t T = 0;
      memcpy(&T, refs + (size_t)i * w, w);
      if (lo->gcvmask)
        T &= lo->gcvmask;
      if (T && !(T & 7)) {
        iov[nb] = (struct mem_iov){ T, hdr[nb], lo->tr.size, 0 };
        no[nb++] = i;
      }
    }
    if (nb == BATCH || (i == sizetrace && nb)) {
      mem_readv(m, iov, nb);
      for (size_t k = 0; k < nb; k++) {
        const uint8_t *h = hdr[k];
        uint64_t mcode = 0, startpc = 0;
        uint32_t szmcode = 0;
        uint16_t spadjust = 0, traceno = 0;
        if (iov[k].err || h[lo->L.gct] != lo->gct.trace)
          continue;
        memcpy(&mcode, h + lo->tr.mcode, 8);
        memcpy(&szmcode, h + lo->tr.szmcode, 4);
        memcpy(&spadjust, h + lo->tr.spadjust, 2);
        memcpy(&traceno, h + lo->tr.traceno, 2);
        memcpy(&startpc, h + lo->tr.startpc, lo->mref_size);
        if (traceno != no[k] || !mcode || !szmcode || szmcode > TRACE_MCODE_MAX)
          continue;
        if (vm->tc.n == vm->tc.cap) {
          size_t nc = vm->tc.cap ? vm->tc.cap * 2 : 64;
          struct lj_trace_ent *nv = realloc(vm->tc.v, nc * sizeof *nv);
          if (!nv) {
            free(refs);
            return -ENOMEM;
          }
          vm->tc.v = nv;
          vm->tc.cap = nc;
        }
        vm->tc.v[vm->tc.n++] = (struct lj_trace_ent){ mcode, mcode + szmcode, iov[k].addr,
                                                      startpc, traceno, spadjust };
      }
      nb = 0;
    }
  }
  free(refs);
  if (vm->tc.n)
    qsort(vm->tc.v, vm->tc.n, sizeof *vm->tc.v, te_cmp);
  return 0;
}

static const struct lj_trace_ent *traces_find(const struct lj_vm *vm, uint64_t ip)
{
  size_t lo = 0, hi = vm->tc.n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (vm->tc.v[mid].mcode <= ip)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* the last trace starting at or below ip (a return address may be its very end) */
  if (lo && ip <= vm->tc.v[lo - 1].end)
    return &vm->tc.v[lo - 1];
  return NULL;
}

/* The trace of G whose machine code holds ip: from the cache when the trace is still
 * there as it was, else from the traces read again (once per walk). */
static int trace_by_addr(struct lj_vm *vm, uint64_t G, uint64_t ip, struct lj_trace_ent *ret)
{
  const struct lj_layout *lo = vm->lo;
  for (int pass = 0; pass < 2; pass++) {
    const struct lj_trace_ent *e = vm->tc.G == G ? traces_find(vm, ip) : NULL;
    if (e) {
      uint8_t h[128];
      uint64_t mcode = 0;
      uint32_t szmcode = 0;
      if (!mem_read(vm->t->mem, e->T, h, lo->tr.size) && h[lo->L.gct] == lo->gct.trace) {
        uint16_t spadjust = 0, traceno = 0;
        memcpy(&mcode, h + lo->tr.mcode, 8);
        memcpy(&szmcode, h + lo->tr.szmcode, 4);
        memcpy(&spadjust, h + lo->tr.spadjust, 2);
        memcpy(&traceno, h + lo->tr.traceno, 2);
        if (mcode == e->mcode && mcode + szmcode == e->end && spadjust == e->spadjust &&
            traceno == e->traceno) {
          *ret = *e;
          return 1;
        }
      }
    }
    uint64_t now = clock_ms();
    /* (at most once per walk and every 50 ms, whichever G is asked for: with several
     * VMs in a process every lookup would read all traces again) */
    if (pass || vm->tc.rebuilt || (vm->tc.built_ms && now - vm->tc.built_ms < 50))
      return 0;
    vm->tc.built_ms = now;
    if (traces_build(vm, G))
      return 0;
  }
  return 0;
}

/* -- Unwind step for VM and JIT frames ------------------------------------ */

/* The running lua_State of G and its innermost VM entry at or above sp (entries below
 * belong to frames already met, e.g. lua_cpcall's under the exit handler): L as copied
 * while the thread was stopped, else read now. */
static int running_cframe(struct lj_vm *vm, struct unwind_ctx *ctx, uint64_t G, uint64_t sp,
                          uint64_t *ret_L, uint64_t *ret_cf)
{
  const struct lj_layout *lo = vm->lo;
  uint64_t L, cf;
  if (vm->snap.valid && vm->snap.G == G) {
    L = vm->snap.s.L;
    cf = vm->snap.s.cframe;
  } else {
    if (read_ptr(vm, ctx, G + lo->g.cur_L, &L) || !valid_L(vm, ctx, L) ||
        unwind_read(ctx, L + lo->L.cframe, &cf, 8))
      return 0;
    cf &= (uint64_t)lo->cf.rawmask;
  }
  for (int i = 0; i < LJ_MAX_CFRAMES && cf && cf < sp; i++) {
    if (unwind_read(ctx, cf + lo->cf.ofs_prev, &cf, 8))
      return 0;
    cf &= (uint64_t)lo->cf.rawmask;
  }
  if (!L || !cf || cf < sp)
    return 0;
  *ret_L = L;
  *ret_cf = cf;
  return 1;
}

static int vmstate_of(struct lj_vm *vm, struct unwind_ctx *ctx, uint64_t G, int32_t *ret)
{
  if (vm->snap.valid && vm->snap.G == G) {
    *ret = vm->snap.vmstate;
    return 0;
  }
  return unwind_read(ctx, G + vm->lo->g.vmstate, ret, 4);
}

/* A frame in code of G's JIT or VM that has no frame of its own to read. In a trace's
 * machine code the trace's stack adjustment gives the VM's C frame (lj_gdbjit.c's rule:
 * CFA = rsp + CFRAME_SIZE_JIT + spadjust) and it must be the running lua_State's
 * innermost VM entry; anywhere else (exit stubs and handler, a side trace's first
 * instructions, foreign JIT code called from Lua) that entry is taken as it is, and the
 * frames between are not known. */
static int jit_frame_G(struct lj_vm *vm, struct unwind_ctx *ctx, struct unwind_regs *r,
                       uint64_t G, int in_vm)
{
  const struct lj_layout *lo = vm->lo;
  struct lj_trace_ent te;
  int have_t = !in_vm && trace_by_addr(vm, G, r->ip, &te);
  uint64_t runL = 0, cfr = 0, cf = 0, L = 0;
  if (running_cframe(vm, ctx, G, r->sp, &runL, &cfr) &&
      !unwind_in_capture(ctx, cfr, lo->cf.size))
    cfr = 0;   /* not in this thread's stack as copied: another thread's VM, or too deep */
  enum lj_cf_kind kind = LJ_CF_GUESS;
  if (have_t) {
    uint64_t c = r->sp + lo->cf.size_jit + te.spadjust - lo->cf.size;
    if (cfr ? c == cfr
            : !read_ptr(vm, ctx, c + lo->cf.ofs_l, &L) && valid_L(vm, ctx, L) &&
                  on_chain(vm, ctx, L, c) == 1) {
      cf = c;
      kind = LJ_CF_TRACE;
    }
  }
  if (!cf)
    cf = cfr;
  if (!cf || read_ptr(vm, ctx, cf + lo->cf.ofs_l, &L) || !valid_L(vm, ctx, L))
    return 0;
  int32_t state = 0;
  vmstate_of(vm, ctx, G, &state);
  struct lj_cframe rec = { r->ip, r->sp, cf, L, 0, 0, kind, 0, 0, 0 };
  if (kind == LJ_CF_TRACE) {
    rec.trace = (int)te.traceno;
    rec.startpc = te.startpc;
  } else if (state > 0) {
    rec.trace = state;
  }
  read_ptr(vm, ctx, cf + lo->cf.ofs_pc, &rec.save_pc);
  /* compiled code keeps the caller's r12 and r13 in the cframe (JLOOP stores them) */
  int onjit = kind == LJ_CF_TRACE || state > 0 || state == ~(int32_t)lo->vmst.exit;
  uint64_t r12 = r->r12, r13 = r->r13;
  /* (vm_x64.dasc's JLOOP stores r13 at cf-8, vm_x86.dasc's, used without GC64, at cf+8) */
  uint64_t r13_at = lo->gc64 ? cf - 8 : cf + 8;
  if (onjit && (unwind_read(ctx, cf, &r12, 8) || unwind_read(ctx, r13_at, &r13, 8)))
    r12 = r->r12, r13 = r->r13;
  if (pop_cframe(ctx, cf + lo->cf.size, r))
    return 0;
  r->r12 = r12;
  r->r13 = r13;
  if (vm->ncf < LJ_MAX_CFRAMES)
    vm->cf[vm->ncf++] = rec;
  return 1;
}

/* Which VM runs this code? Each thread may have its own: on GC64 r14 (DISPATCH, kept on
 * traces) names it; otherwise the one copied at the stop, the one seen last, then every
 * global_State in memory. */
static int jit_frame(struct lj_vm *vm, struct unwind_ctx *ctx, struct unwind_regs *r, int in_vm)
{
  const struct lj_layout *lo = vm->lo;
  if (lo->gc64 && r->r14 > lo->gg.g2disp && lj_check_G(vm, r->r14 - lo->gg.g2disp) &&
      jit_frame_G(vm, ctx, r, r->r14 - lo->gg.g2disp, in_vm))
    return 1;
  if (vm->snap.valid && jit_frame_G(vm, ctx, r, vm->snap.G, in_vm))
    return 1;
  if (vm->G && vm->G != vm->snap.G && jit_frame_G(vm, ctx, r, vm->G, in_vm))
    return 1;
  uint64_t now = clock_ms();
  if (!vm->nscanned || (vm->nscanned == (size_t)-1 && now - vm->scanned_ms >= 1000)) {
    /* (none found: looked for again at most every second, the VM may start later) */
    vm->scanned_ms = now;
    vm->nscanned = lj_scan_G(vm, vm->scanned, sizeof vm->scanned / sizeof *vm->scanned);
    if (!vm->nscanned)
      vm->nscanned = (size_t)-1;
  }
  for (size_t i = 0; vm->nscanned != (size_t)-1 && i < vm->nscanned; i++)
    if (vm->scanned[i] != vm->G && jit_frame_G(vm, ctx, r, vm->scanned[i], in_vm))
      return 1;
  return 0;
}

/* ip in anonymous executable memory (machine code of traces, exit stubs, or another
 * JIT's)? The JIT maps new areas as it goes and flips their protection while it writes
 * them: the maps are read again when ip is in none (not more than every 50 ms: an address
 * in no mapping can also be garbage). */
static int in_anon_code(struct lj_vm *vm, uint64_t ip)
{
  if (ip < 4096)
    return 0;
  const struct map *xm = maps_find(vm->t->maps, ip);
  if (!xm || (!xm->mod && !strchr(xm->perms, 'x'))) {
    uint64_t now = clock_ms();
    if (now - vm->maps_reloaded_ms >= 50 && !target_reload_maps(vm->t)) {
      vm->maps_reloaded_ms = now;
      xm = maps_find(vm->t->maps, ip);
    }
  }
  return xm && !xm->mod && strchr(xm->perms, 'x');
}

/* A return address into a trace of any known VM? */
static int into_trace(struct lj_vm *vm, uint64_t ip)
{
  struct lj_trace_ent te;
  if (!in_anon_code(vm, ip))
    return 0;
  uint64_t Gs[3] = { vm->snap.valid ? vm->snap.G : 0, vm->G, vm->tc.G };
  for (size_t i = 0; i < 3; i++)
    if (Gs[i] && trace_by_addr(vm, Gs[i], ip, &te))
      return 1;
  return 0;
}

int lj_step(void *arg, struct unwind_ctx *ctx, struct unwind_regs *r)
{
  struct lj_vm *vm = arg;
  const struct lj_layout *lo = vm->lo;
  if (vm->layout_bad)
    return 0;
  if (r->ip < vm->vm_start || r->ip >= vm->vm_end)
    return in_anon_code(vm, r->ip) ? jit_frame(vm, ctx, r, 0) : 0;
  /* the interpreter, or a VM subroutine it called (rsp 8 lower) */
  for (uint64_t adj = 0; adj <= 8; adj += 8) {
    uint64_t cf = r->sp + adj, L, pc;
    if (read_ptr(vm, ctx, cf + lo->cf.ofs_l, &L) || !valid_L(vm, ctx, L) ||
        !on_chain(vm, ctx, L, cf))
      continue;
    read_ptr(vm, ctx, cf + lo->cf.ofs_pc, &pc);
    int32_t nres = 0;
    unwind_read(ctx, cf + lo->cf.ofs_nres, &nres, 4);
    struct lj_cframe rec = { r->ip, r->sp, cf, L, pc, r->bx, LJ_CF_INTERP, 0, 0, nres < 0 };
    if (pop_cframe(ctx, cf + lo->cf.size, r))
      return 0;
    if (vm->ncf < LJ_MAX_CFRAMES)
      vm->cf[vm->ncf++] = rec;
    return 1;
  }
  /* a VM helper called from a trace (lj_vm_floor, lj_vm_modi, ...): leaf code that keeps
   * its return address at rsp */
  uint64_t ret;
  if (!unwind_read(ctx, r->sp, &ret, 8) && into_trace(vm, ret)) {
    r->ip = ret;
    r->sp += 8;
    return 1;
  }
  /* the exit handler, vm_exit_interp, an entry before its frame is set up */
  return jit_frame(vm, ctx, r, 1);
}

static void lj_walk_start(void *vmv)
{
  struct lj_vm *vm = vmv;
  vm->ncf = 0;
  vm->tc.rebuilt = 0;
}

static int lj_install(void *vmv, struct unwinder *u)
{
  int r = unwinder_add_step(u, lj_step, vmv);
  return r ? r : unwinder_on_walk(u, lj_walk_start, vmv);
}

extern const struct vm_runtime vm_runtime_luajit;
const struct vm_runtime vm_runtime_luajit = {
  .name = "luajit",
  .alias = "lua-stack",
  .only = "lua-only",
  .noun = "Lua VM",
  .lang = "Lua",
  .caps = VM_CAP_COROUTINES | VM_CAP_HEAP | VM_CAP_LOCALS,
  .probe = lj_probe,
  .install = lj_install,
  .capture = lj_capture,
  .walk = lj_walk,
  .coroutines = lj_coroutines,
  .locals = lj_locals,
  .heap = lj_heap,
  .heap_label = lj_heap_label,
  .describe = lj_describe,
  .free = lj_free,
};
