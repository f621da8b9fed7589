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

#define VM_MIN_SIZE 4096     /* the interpreter's FDE spans ~16 KiB; nothing else near that */
#define DW_REG_RSP 7

/* -- Detection ------------------------------------------------------------ */

/* The module exporting LuaJIT's API: lua_close plus a luaJIT_* entry point (PUC Lua has the
 * former only). */
static struct module *find_module(struct maps *mp)
{
  for (size_t i = 0; i < mp->nmods; i++) {
    struct module *m = mp->mods[i];
    uint64_t a;
    if (!m || maps_module_open(mp, m) || !m->elf)
      continue;
    if (!elf_file_lookup(m->elf, "lua_close", &a, NULL) &&
        !elf_file_lookup(m->elf, "luaJIT_setmode", &a, NULL))
      return m;
  }
  return NULL;
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
  for (size_t i = 0; i < mp->n; i++) {
    const struct map *m = &mp->v[i];
    if (m->perms[0] != 'r' || m->perms[1] != 'w' || (m->path && strcmp(m->path, "[heap]")))
      continue;
    /* without GC64 every GC object lives in the low 4 GiB */
    if (!lo->gc64 && m->start >= (1ull << 32))
      continue;
    for (uint64_t a = m->start; a < m->end; a += (1u << 20) - need * 8) {
      size_t len = m->end - a < (1u << 20) ? (size_t)(m->end - a) : (1u << 20);
      if (mem_read(vm->t->mem, a, buf, len))
        break;
      size_t run = 0;
      for (size_t k = 0; k < len / 8; k++) {
        run = buf[k] >= vm->vm_start && buf[k] < vm->vm_end ? run + 1 : 0;
        if (run == need) {
          uint64_t G = a + (k + 1 - need) * 8 - lo->gg.g2disp;
          if (found < max && lj_check_G(vm, G))
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

/* Frames inside the interpreter are walked with the VM's own frame layout rather than CFI:
 * VM-internal subroutines (vm_floor and others) are reached by call, so rsp can be 8 below
 * the cframe while the FDE assumes it is the cframe. The callee-saved registers the VM's
 * entry pushed sit right below the CFA (cframe + CFRAME_SIZE). */
/* Pop the VM's C frame at cframe: the caller's registers sit right below the CFA. */
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

/* JIT-compiled code has no CFI. While a trace runs, g->vmstate holds its number and r14
 * holds DISPATCH (GC64), so G = r14 - GG_G2DISP; the trace's stack adjustment gives the
 * VM's C frame: CFA = rsp + CFRAME_SIZE_JIT + spadjust (lj_gdbjit.c's rule). */
static int trace_in(struct lj_vm *vm, struct unwind_ctx *ctx, struct unwind_regs *r,
                    uint64_t G);

/* Which VM runs this trace? Each thread may have its own: on GC64 r14 (DISPATCH) names it;
 * otherwise try the one seen last, then every global_State in memory. */
static int trace_step(struct lj_vm *vm, struct unwind_ctx *ctx, struct unwind_regs *r)
{
  const struct lj_layout *lo = vm->lo;
  if (r->ip < 4096 || vm->layout_bad)
    return 0;
  const struct map *xm = maps_find(vm->t->maps, r->ip);
  if (!xm || (!xm->mod && !strchr(xm->perms, 'x'))) {
    /* the JIT maps new machine-code areas as it goes, and flips their protection while it
     * writes them: read the maps again (not more than every 50 ms: an address in no
     * mapping can also be garbage) */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (now - vm->maps_reloaded_ms >= 50 && !target_reload_maps(vm->t)) {
      vm->maps_reloaded_ms = now;
      xm = maps_find(vm->t->maps, r->ip);
    }
  }
  if (!xm || xm->mod || !strchr(xm->perms, 'x'))
    return 0;   /* traces live in anonymous executable memory */
  if (lo->gc64 && r->r14 > lo->gg.g2disp && lj_check_G(vm, r->r14 - lo->gg.g2disp))
    return trace_in(vm, ctx, r, r->r14 - lo->gg.g2disp);
  if (vm->G && trace_in(vm, ctx, r, vm->G))
    return 1;
  if (!vm->nscanned) {
    vm->nscanned = lj_scan_G(vm, vm->scanned, sizeof vm->scanned / sizeof *vm->scanned);
    if (!vm->nscanned)
      vm->nscanned = (size_t)-1;
  }
  for (size_t i = 0; vm->nscanned != (size_t)-1 && i < vm->nscanned; i++)
    if (trace_in(vm, ctx, r, vm->scanned[i]))
      return 1;
  return 0;
}

/* The trace of G running at r->ip, if any: pop the VM's C frame below it. */
static int trace_in(struct lj_vm *vm, struct unwind_ctx *ctx, struct unwind_regs *r,
                    uint64_t G)
{
  const struct lj_layout *lo = vm->lo;
  uint64_t J, traces, T, mcode, L, jit_base, startpc;
  int32_t state;
  uint32_t sizetrace, szmcode;
  uint16_t spadjust;
  int snap = vm->snap.valid && vm->snap.G == G;   /* copied while the thread was stopped */
  if (snap)
    state = vm->snap.vmstate;
  else if (!G || unwind_read(ctx, G + lo->g.vmstate, &state, 4))
    return 0;
  if (state <= 0)
    return 0;
  J = G - lo->gg.g + lo->gg.J;
  /* J.trace is a native pointer to GCRefs; startpc and jit_base are MRefs; mcode native */
  if (unwind_read(ctx, J + lo->J.trace, &traces, 8) ||
      unwind_read(ctx, J + lo->J.sizetrace, &sizetrace, 4) || (uint32_t)state >= sizetrace ||
      read_ptr(vm, ctx, traces + (uint64_t)lo->gcref_size * (uint32_t)state, &T) || !T)
    return 0;
  if (lo->gcvmask)
    T &= lo->gcvmask;
  if (unwind_read(ctx, T + lo->tr.mcode, &mcode, 8) ||
      unwind_read(ctx, T + lo->tr.szmcode, &szmcode, 4) ||
      unwind_read(ctx, T + lo->tr.spadjust, &spadjust, 2) ||
      read_ptr(vm, ctx, T + lo->tr.startpc, &startpc) ||
      (!snap && read_ptr(vm, ctx, G + lo->g.jit_base, &jit_base)))
    return 0;
  if (snap)
    jit_base = vm->snap.jit_base;
  if (r->ip < mcode || r->ip >= mcode + szmcode)
    return 0;
  uint64_t cfa = r->sp + lo->cf.size_jit + spadjust, cf = cfa - lo->cf.size;
  if (read_ptr(vm, ctx, cf + lo->cf.ofs_l, &L) || !valid_L(vm, ctx, L))
    return 0;
  if (vm->ncf < LJ_MAX_CFRAMES)
    vm->cf[vm->ncf++] = (struct lj_cframe){ r->ip, r->sp, cf, L, 0, 0, state, jit_base,
                                            startpc };
  return pop_cframe(ctx, cfa, r) ? 0 : 1;
}

int lj_step(void *arg, struct unwind_ctx *ctx, struct unwind_regs *r)
{
  struct lj_vm *vm = arg;
  const struct lj_layout *lo = vm->lo;
  if (r->ip < vm->vm_start || r->ip >= vm->vm_end)
    return trace_step(vm, ctx, r);
  for (uint64_t adj = 0; adj <= 8; adj += 8) {
    uint64_t cf = r->sp + adj, L, pc;
    if (read_ptr(vm, ctx, cf + lo->cf.ofs_l, &L) || !valid_L(vm, ctx, L))
      continue;
    read_ptr(vm, ctx, cf + lo->cf.ofs_pc, &pc);
    struct lj_cframe rec = { r->ip, r->sp, cf, L, pc, r->bx, 0, 0, 0 };
    if (pop_cframe(ctx, cf + lo->cf.size, r))
      return 0;
    if (vm->ncf < LJ_MAX_CFRAMES)
      vm->cf[vm->ncf++] = rec;
    return 1;
  }
  return 0;
}

static void lj_walk_start(void *vmv)
{
  ((struct lj_vm *)vmv)->ncf = 0;
}

static int lj_install(void *vmv, struct unwinder *u)
{
  int r = unwinder_add_step(u, lj_step, vmv);
  return r ? r : unwinder_on_walk(u, lj_walk_start, vmv);
}

extern const struct vm_runtime vm_runtime_luajit;
const struct vm_runtime vm_runtime_luajit = {
  .name = "luajit",
  .probe = lj_probe,
  .install = lj_install,
  .capture = lj_capture,
  .walk = lj_walk,
  .coroutines = lj_coroutines,
  .describe = lj_describe,
  .free = lj_free,
};
