/* Perl 5 runtime: detection, the interpreter of each thread, and the walk of its context
 * stack, equal to what caller() reports.
 *
 * The walk (pp_ctl.c, Perl_caller_cx):
 *   pending = PL_curcop                       the innermost frame's current statement
 *   for si = PL_curstackinfo, then si->si_prev (sort, signal, DESTROY ... stacks):
 *     for cx = si->si_cxstack[si_cxix] down to [0]:
 *       SUB/FORMAT: frame "Pkg::name" at pending;            pending = cx->blk_oldcop
 *       EVAL:       frame "eval {...}", "(eval)" or "require F" at pending; the same
 *       others (loops, blocks, s///): not frames
 *   the main program at pending
 * A context's blk_oldcop is the statement that was current when it was entered: the call
 * site, which is the line of the frame outside it.
 *
 * Mixed stacks: each run of the op loop (Perl_runops_standard) is one native frame; a new
 * one starts where C calls Perl (call_sv: a context whose retop is NULL) and with each new
 * stackinfo. The Perl frames of each run take the place of its runops frame, innermost
 * first; XS subs and the interpreter's pp_ functions stay as native frames between them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pl_layout.h"
#include "vmstack/elf.h"
#include "vmstack/json.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/tls.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"

#define SI_MAX 64            /* stackinfos followed at most */
#define CX_MAX 65536         /* contexts of one stackinfo read at most */
#define CX_BYTES_MAX (8u << 20)
#define NAME_MAX_LEN 128     /* chars of a package or sub name kept */
#define RUNOPS_MAX 4
#define CACHE_SIZE 1024      /* entries of each name cache (direct-mapped) */


/* -- State ------------------------------------------------------------------ */

/* One stackinfo as copied during the stop. */
struct si_copy {
  uint64_t addr, prev;
  int32_t cxix, type;
  uint8_t *cx;               /* (cxix + 1) contexts */
  size_t cap;
};

struct xs_entry {
  uint64_t addr;             /* CvXSUB */
  char name[NAME_MAX_LEN];
};

/* Where a thread's stacks were at its last sample. */
struct pl_where {
  pid_t tid;
  uint64_t interp, interp_at, curcop_at, cursi_at, si, cxstack;
  int32_t cxix, cxmax;
};
#define WHERE_SLOTS 64

struct cop_entry {           /* COP (address, file pointer, line) -> file */
  uint64_t cop, fileptr;
  int line;
  char file[256];            /* as large as a walk's: a hit is never cut shorter */
};

struct cv_entry {            /* CV address (+ its GV and stash, checked) -> name */
  uint64_t cv, gv, stash;
  char name[NAME_MAX_LEN];
};

struct pl_vm {
  struct target *t;
  const struct pl_layout *lo;
  struct module *mod;
  char desc[320];
  int ver[3];
  /* where the interpreter is */
  uint64_t curinterp;        /* &PL_curinterp */
  struct tls_var tls;        /* how PL_current_context is found in a thread */
  uint64_t g_curcop, g_curstackinfo, g_compiling;   /* without MULTIPLICITY: globals */
  uint64_t runops[RUNOPS_MAX][2];
  size_t nrunops;
  /* the copy of the thread sampled last */
  struct {
    int valid;
    pid_t tid;
    uint64_t interp, curcop, compiling;
    struct si_copy si[SI_MAX];
    size_t nsi;
    int err;
  } snap;
  struct cop_entry *cops;
  struct cv_entry *cvs;
  struct pl_where where[WHERE_SLOTS];
  /* XS subs by the address of their C function (from the stashes), sorted */
  struct xs_entry *xs;
  size_t nxs;
  uint64_t xs_built_ms;      /* when the table was last built (0: never) */
  uint64_t xs_miss[16];      /* functions not found after a rebuild: no rebuild for them */
  size_t nxs_miss;
  uint64_t entersub[2];      /* Perl_pp_entersub's range: it calls XS subs */
  uint64_t g_defstash;       /* &PL_defstash without MULTIPLICITY */
};

__attribute__((format(printf, 3, 4))) static void fmt(char *buf, size_t cap, const char *f, ...)
{
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, cap, f, ap);
  va_end(ap);
}

static uint64_t rd(const uint8_t *b, size_t off, size_t w)
{
  uint64_t v = 0;
  memcpy(&v, b + off, w);
  return v;
}

static int rptr(struct pl_vm *vm, uint64_t addr, uint64_t *ret)
{
  *ret = 0;
  if (!addr || (addr & 7))
    return -VMS_E_BADDATA;
  return mem_read(vm->t->mem, addr, ret, 8);
}

/* -- Detection -------------------------------------------------------------- */

/* The module holding the interpreter: perl itself or a libperl an embedder loaded. */
static struct module *find_module(struct maps *mp)
{
  for (size_t i = 0; i < mp->nmods; i++) {
    struct module *m = mp->mods[i];
    uint64_t a;
    if (!m || maps_module_open(mp, m) || !m->elf)
      continue;
    if (!elf_file_lookup(m->elf, "PL_curinterp", &a, NULL) &&
        !elf_file_lookup(m->elf, "Perl_runops_standard", &a, NULL))
      return m;
  }
  return NULL;
}

static int sym(struct pl_vm *vm, const char *name, uint64_t *ret, uint64_t *ret_size)
{
  uint64_t a;
  if (elf_file_lookup(vm->mod->elf, name, &a, ret_size))
    return -ENOENT;
  *ret = a + vm->mod->bias;
  return 0;
}

/* A read-only value exported by the interpreter, read from the file (it is constant). */
static int sym_const(struct pl_vm *vm, const char *name, void *buf, size_t len)
{
  uint64_t a;
  if (elf_file_lookup(vm->mod->elf, name, &a, NULL))
    return -ENOENT;
  if (!elf_file_read(vm->mod->elf, a, buf, len))
    return 0;
  return mem_read(vm->t->mem, a + vm->mod->bias, buf, len);
}

static int bincompat_has(const char *opts, const char *flag)
{
  size_t l = strlen(flag);
  for (const char *p = opts; (p = strstr(p, flag)); p += l)
    if ((p == opts || p[-1] == ' ') && (p[l] == ' ' || !p[l]))
      return 1;
  return 0;
}

static int pl_probe(struct target *t, void **ret_vm)
{
  struct module *m = find_module(t->maps);
  if (!m)
    return -ENOENT;
  struct pl_vm *vm = calloc(1, sizeof *vm);
  if (!vm)
    return -ENOMEM;
  vm->t = t;
  vm->mod = m;
  *ret_vm = vm;
  uint8_t v[3] = { 0 };
  uint16_t isize = 0;
  char opts[512] = "";
  if (sym_const(vm, "PL_revision", &v[0], 1) || sym_const(vm, "PL_version", &v[1], 1) ||
      sym_const(vm, "PL_subversion", &v[2], 1)) {
    fmt(vm->desc, sizeof vm->desc, "Perl in %s: no PL_revision/PL_version (older than 5.15?); "
        "not supported", m->name);
    return -VMS_E_UNSUPPORTED;
  }
  vm->ver[0] = v[0];
  vm->ver[1] = v[1];
  vm->ver[2] = v[2];
  sym_const(vm, "PL_interp_size", &isize, 2);
  {
    uint64_t a, size = 0;
    if (!elf_file_lookup(m->elf, "PL_bincompat_options", &a, &size)) {
      size_t n = size && size < sizeof opts ? size : sizeof opts - 1;
      if (elf_file_read(m->elf, a, opts, n))
        mem_read(t->mem, a + m->bias, opts, n);
      opts[n] = 0;
      opts[strnlen(opts, n)] = 0;
    }
  }
  int multi = bincompat_has(opts, "MULTIPLICITY");
  int debugging = bincompat_has(opts, "DEBUGGING");
  for (size_t i = 0; pl_layouts[i]; i++) {
    const struct pl_layout *lo = pl_layouts[i];
    if (v[0] == 5 && lo->version == v[1] && lo->multiplicity == multi && !debugging &&
        (!lo->interp_size || lo->interp_size == isize)) {
      vm->lo = lo;
      break;
    }
  }
  if (!vm->lo) {
    fmt(vm->desc, sizeof vm->desc, "Perl %d.%d.%d in %s (%s%s, interpreter size %u): a build "
        "not known; known: ", v[0], v[1], v[2], m->name, multi ? "threaded" : "non-threaded",
        debugging ? ", DEBUGGING" : "", (unsigned)isize);
    for (size_t i = 0; pl_layouts[i]; i++) {
      size_t l = strlen(vm->desc);
      fmt(vm->desc + l, sizeof vm->desc - l, "%s%s", i ? ", " : "", pl_layouts[i]->name);
    }
    return -VMS_E_UNSUPPORTED;
  }
  const struct pl_layout *lo = vm->lo;
  if (lo->multiplicity) {
    if (sym(vm, "PL_curinterp", &vm->curinterp, NULL)) {
      fmt(vm->desc, sizeof vm->desc, "Perl %d.%d.%d in %s: no PL_curinterp", v[0], v[1], v[2],
          m->name);
      return -VMS_E_UNSUPPORTED;
    }
    /* each thread's interpreter: the C11 thread-local PL_current_context (5.36+, when
     * the compiler has one): initial-exec in a perl executable, general-dynamic in a
     * libperl.so, local-exec in a static perl */
    tls_locate(t->mem, m, !strcmp(m->path, t->exe), "PL_current_context", &vm->tls);
  } else if (sym(vm, "PL_curcop", &vm->g_curcop, NULL) ||
             sym(vm, "PL_curstackinfo", &vm->g_curstackinfo, NULL)) {
    fmt(vm->desc, sizeof vm->desc, "Perl %d.%d.%d in %s: no PL_curcop/PL_curstackinfo symbols",
        v[0], v[1], v[2], m->name);
    return -VMS_E_UNSUPPORTED;
  } else {
    sym(vm, "PL_compiling", &vm->g_compiling, NULL);
  }
  static const char *const runops[] = { "Perl_runops_standard", "Perl_runops_debug" };
  for (size_t i = 0; i < sizeof runops / sizeof *runops; i++) {
    uint64_t a, size;
    if (!sym(vm, runops[i], &a, &size) && size && vm->nrunops < RUNOPS_MAX) {
      vm->runops[vm->nrunops][0] = a;
      vm->runops[vm->nrunops][1] = a + size;
      vm->nrunops++;
    }
  }
  {
    uint64_t a, size;
    if (!sym(vm, "Perl_pp_entersub", &a, &size) && size) {
      vm->entersub[0] = a;
      vm->entersub[1] = a + size;
    }
    if (!lo->multiplicity)
      sym(vm, "PL_defstash", &vm->g_defstash, NULL);
  }
  vm->cops = calloc(CACHE_SIZE, sizeof *vm->cops);
  vm->cvs = calloc(CACHE_SIZE, sizeof *vm->cvs);
  if (!vm->cops || !vm->cvs)
    return -ENOMEM;
  fmt(vm->desc, sizeof vm->desc, "Perl %d.%d.%d (%s, %s)", v[0], v[1], v[2], lo->name, m->name);
  return 0;
}

static const char *pl_describe(const void *vmv)
{
  return ((const struct pl_vm *)vmv)->desc;
}

static void pl_free(void *vmv)
{
  struct pl_vm *vm = vmv;
  if (!vm)
    return;
  for (size_t i = 0; i < SI_MAX; i++)
    free(vm->snap.si[i].cx);
  free(vm->cops);
  free(vm->cvs);
  free(vm->xs);
  free(vm);
}

/* -- Capture: the context stacks, copied while the thread stands still ------ */

/* The thread's interpreter: its thread-local pointer, else PL_curinterp for the main
 * thread. 0 when the thread runs no Perl. */
static int thread_interp(struct pl_vm *vm, const struct thread *th, uint64_t *ret,
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
  int r = thread_interp(vm, th, ret_interp, ret_interp_at);
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
static int copy_stacks(struct pl_vm *vm, const struct thread *th)
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

static int pl_capture(void *vmv, struct target *t, struct thread *th,
                      const struct stack_capture *cap)
{
  struct pl_vm *vm = vmv;
  (void)t;
  (void)cap;
  vm->snap.err = copy_stacks(vm, th);
  return 0;
}

/* -- Names ------------------------------------------------------------------ */

static size_t hash_addr(uint64_t a)
{
  return hash_word(a, 10) & (CACHE_SIZE - 1);
}

/* Names and file names read from the target are text (UTF-8 under `use utf8`): bytes that
 * are not are garbage, from a freed or reused object. Control characters become '?'. */
static int text_ok(char *s)
{
  for (unsigned char *p = (unsigned char *)s; *p;) {
    if (*p < 0x20) {
      *p++ = '?';
      continue;
    }
    size_t n = utf8_len(p);
    if (!n)
      return 0;
    p += n;
  }
  return 1;
}

/* Copy text, cut (when it must be) at a character boundary. */
static void copy_text(char *dst, size_t cap, const char *src)
{
  size_t n = strlen(src);
  if (n >= cap) {
    n = cap - 1;
    while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
      n--;   /* src[n] would start the cut-off part: not in the middle of a character */
  }
  memcpy(dst, src, n);
  dst[n] = 0;
}

/* A HEK's key, cut at cap-1 bytes. */
static int hek_str(struct pl_vm *vm, uint64_t hek, char *buf, size_t cap)
{
  const struct pl_layout *lo = vm->lo;
  int32_t len;
  if (!hek || (hek & 3) || mem_read(vm->t->mem, hek + lo->hek.len, &len, 4) || len < 0)
    return -VMS_E_BADDATA;
  size_t n = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
  if (n && mem_read(vm->t->mem, hek + lo->hek.key, buf, n))
    return -VMS_E_BADDATA;
  buf[n] = 0;
  /* (a name cut in the middle of a character keeps only whole characters) */
  if (n == cap - 1)
    for (size_t k = n; k > 0 && k + 4 > n; k--)
      if (((unsigned char)buf[k - 1] & 0xc0) == 0xc0) {
        buf[k - 1] = 0;
        break;
      }
  return text_ok(buf) ? 0 : -VMS_E_BADDATA;
}

/* SV head fields. */
struct svh {
  uint64_t any;
  uint32_t refcnt, flags;
  uint64_t u;
};

static int sv_head(struct pl_vm *vm, uint64_t sv, struct svh *h)
{
  const struct pl_layout *lo = vm->lo;
  uint8_t b[32];
  if (!sv || (sv & 7) || lo->sv.size > sizeof b || mem_read(vm->t->mem, sv, b, lo->sv.size))
    return -VMS_E_BADDATA;
  h->any = rd(b, lo->sv.any, 8);
  h->refcnt = (uint32_t)rd(b, lo->sv.refcnt, 4);
  h->flags = (uint32_t)rd(b, lo->sv.flags, 4);
  h->u = rd(b, lo->sv.u, 8);
  return 0;
}

/* A stash's name (HvNAME). */
static int hv_name(struct pl_vm *vm, uint64_t hv, char *buf, size_t cap)
{
  const struct pl_layout *lo = vm->lo;
  struct svh h;
  if (sv_head(vm, hv, &h) || (h.flags & lo->svt.mask) != lo->svt.pvhv || !(h.flags & lo->svf_ook))
    return -VMS_E_BADDATA;
  uint64_t aux;
  if (lo->xhv.aux_in_body) {
    aux = h.any + lo->xhv.aux;
  } else {
    uint64_t max;
    if (rptr(vm, h.any + lo->xhv.max, &max) || max > (1u << 30) || !h.u)
      return -VMS_E_BADDATA;
    aux = h.u + (max + 1) * 8;
  }
  uint64_t name_u;
  int32_t count;
  if (rptr(vm, aux + lo->hvaux.name_u, &name_u) ||
      mem_read(vm->t->mem, aux + lo->hvaux.name_count, &count, 4) || !name_u)
    return -VMS_E_BADDATA;
  uint64_t hek = name_u;
  if (count) {
    /* several names (effective names too): the first is the name */
    uint64_t names[2];
    if (mem_read(vm->t->mem, name_u, names, sizeof names))
      return -VMS_E_BADDATA;
    hek = names[0];   /* NULL when the stash was deleted: no name, as HvNAME */
  }
  return hek_str(vm, hek, buf, cap);
}

/* "Pkg::name" of a CV, as caller() prints it (gv_efullname); lexical subs unqualified. */
static int cv_name(struct pl_vm *vm, uint64_t cv, char *buf, size_t cap)
{
  const struct pl_layout *lo = vm->lo;
  struct svh h;
  uint8_t body[256];
  if (sv_head(vm, cv, &h) || ((h.flags & lo->svt.mask) != lo->svt.pvcv &&
                              (h.flags & lo->svt.mask) != lo->svt.pvfm) ||
      !h.any || lo->xcv.size > sizeof body || mem_read(vm->t->mem, h.any, body, lo->xcv.size))
    return -VMS_E_BADDATA;
  uint64_t stash = rd(body, lo->xcv.stash, 8), gv = rd(body, lo->xcv.gv, 8);
  uint32_t cvflags = (uint32_t)rd(body, lo->xcv.flags, 4);
  struct cv_entry *e = &vm->cvs[hash_addr(cv)];
  if (e->cv == cv && e->gv == gv && e->stash == stash) {
    copy_text(buf, cap, e->name);
    return 0;
  }
  char name[NAME_MAX_LEN], pkg[NAME_MAX_LEN];
  int r;
  if (cvflags & lo->cvf.named) {
    /* xcv_gv_u is the name's HEK (lexical subs, and subs whose GV was never made) */
    if ((r = hek_str(vm, gv, name, sizeof name)))
      return r;
    if (cvflags & lo->cvf.lexical)
      pkg[0] = 0;
    else if (hv_name(vm, stash, pkg, sizeof pkg))
      snprintf(pkg, sizeof pkg, "__ANON__");
  } else {
    struct svh g;
    if (sv_head(vm, gv, &g) || (g.flags & lo->svt.mask) != lo->svt.pvgv ||
        !(g.flags & lo->svpgv_gp) || !g.any)
      return -VMS_E_BADDATA;
    uint64_t egv = 0;
    if (g.u)
      rptr(vm, g.u + lo->gp.egv, &egv);
    struct svh eg;
    uint64_t gbody = g.any;
    if (egv && egv != gv && !sv_head(vm, egv, &eg) && (eg.flags & lo->svt.mask) == lo->svt.pvgv &&
        eg.any)
      gbody = eg.any;
    uint64_t hek, gstash;
    if (rptr(vm, gbody + lo->xgv.namehek, &hek) || (r = hek_str(vm, hek, name, sizeof name)))
      return -VMS_E_BADDATA;
    if (rptr(vm, gbody + lo->xgv.stash, &gstash) || !gstash ||
        hv_name(vm, gstash, pkg, sizeof pkg))
      snprintf(pkg, sizeof pkg, "__ANON__");
  }
  char full[2 * NAME_MAX_LEN + 4];
  snprintf(full, sizeof full, "%s%s%s", pkg, pkg[0] ? "::" : "", name);
  copy_text(buf, cap, full);
  e->cv = cv;
  e->gv = gv;
  e->stash = stash;
  copy_text(e->name, sizeof e->name, buf);
  return 0;
}

/* A COP's file and line. The COP is always read (code is freed and its ops reused by new
 * code at the same addresses: string evals, redefined subs); the cache keeps the file name
 * for the same COP, file pointer and line. */
static int cop_info(struct pl_vm *vm, uint64_t cop, char *file, size_t cap, int *ret_line)
{
  const struct pl_layout *lo = vm->lo;
  uint8_t b[128];
  if (!cop || (cop & 7) || lo->cop.size > sizeof b || mem_read(vm->t->mem, cop, b, lo->cop.size))
    return -VMS_E_BADDATA;
  /* a statement's COP is a nextstate (or dbstate, under the debugger) op; PL_compiling,
   * the parser's position, is the exception */
  unsigned type = (unsigned)rd(b, lo->op.type_word, 2) & 0x1ff;
  if (cop != vm->snap.compiling && type != lo->opn.nextstate && type != lo->opn.dbstate)
    return -VMS_E_BADDATA;
  uint32_t line = (uint32_t)rd(b, lo->cop.line, 4);
  uint64_t f = rd(b, lo->cop.file, 8);
  *ret_line = line > 0x7fffffff ? 0 : (int)line;
  struct cop_entry *e = &vm->cops[hash_addr(cop)];
  if (e->cop == cop && e->fileptr == f && e->line == *ret_line && cop != vm->snap.compiling) {
    copy_text(file, cap, e->file);
    return 0;
  }
  char name[256];
  name[0] = 0;
  if (lo->multiplicity) {
    if (f && mem_read_cstr(vm->t->mem, f, name, sizeof name) < 0)
      return -VMS_E_BADDATA;
  } else if (f) {
    /* the file's GV, named "_<file" */
    struct svh g;
    uint64_t hek;
    char nm[260];
    if (sv_head(vm, f, &g) || (g.flags & lo->svt.mask) != lo->svt.pvgv || !g.any ||
        rptr(vm, g.any + lo->xgv.namehek, &hek) || hek_str(vm, hek, nm, sizeof nm))
      return -VMS_E_BADDATA;
    copy_text(name, sizeof name, strncmp(nm, "_<", 2) ? nm : nm + 2);
  }
  if (!text_ok(name)) {
    file[0] = 0;
    return -VMS_E_BADDATA;
  }
  copy_text(file, cap, name);
  if (cop != vm->snap.compiling) {
    e->cop = cop;
    e->fileptr = f;
    e->line = *ret_line;
    copy_text(e->file, sizeof e->file, name);
  }
  return 0;
}

/* -- XS subs ---------------------------------------------------------------- */

/* XS subs are C functions: a stripped module has no symbol for them, but perl knows each
 * one's name (its CV, in a stash, holds the function's address). The stashes are walked
 * (breadth first from PL_defstash, bounded) into a table from address to "Pkg::name";
 * again when a function is not found, at most every XS_REBUILD_MS (modules load later). */
#define XS_HV_MAX 4096        /* stashes visited at most */
#define XS_HE_MAX 200000      /* entries read at most */
#define XS_BUCKETS_MAX 65536  /* buckets of one stash at most */
#define XS_REBUILD_MS 2000
#define XS_MISSES 16

struct xs_build {
  struct xs_entry *v;
  size_t n, cap;
  uint64_t hv[XS_HV_MAX];
  char pkg[XS_HV_MAX][NAME_MAX_LEN];
  size_t nhv;
  size_t nhe;
};

static void xs_add(struct pl_vm *vm, struct xs_build *b, uint64_t cv, const char *pkg,
                   const char *name)
{
  const struct pl_layout *lo = vm->lo;
  struct svh h;
  uint8_t body[256];
  if (sv_head(vm, cv, &h) || (h.flags & lo->svt.mask) != lo->svt.pvcv || !h.any ||
      lo->xcv.size > sizeof body || mem_read(vm->t->mem, h.any, body, lo->xcv.size) ||
      !((uint32_t)rd(body, lo->xcv.flags, 4) & lo->cvf.isxsub))
    return;
  uint64_t fn = rd(body, lo->xcv.root, 8);   /* xcv_root_u.xcv_xsub */
  if (!fn)
    return;
  if (b->n == b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 256;
    struct xs_entry *nv = realloc(b->v, nc * sizeof *nv);
    if (!nv)
      return;
    b->v = nv;
    b->cap = nc;
  }
  b->v[b->n].addr = fn;
  /* named as caller() would (its own GV: an imported List::Util::first stays that), else
   * by where it was found */
  if (cv_name(vm, cv, b->v[b->n].name, sizeof b->v[b->n].name)) {
    char full[2 * NAME_MAX_LEN + 4];
    snprintf(full, sizeof full, "%s::%s", pkg, name);
    copy_text(b->v[b->n].name, sizeof b->v[b->n].name, full);
  }
  b->n++;
}

static int xs_cmp_name(const void *a, const void *b)
{
  const struct xs_entry *x = a, *y = b;
  return x->addr != y->addr ? (x->addr < y->addr ? -1 : 1) : strcmp(x->name, y->name);
}

/* One entry per function. Several subs can share one (XS ALIAS: List::Util's any, all,
 * none and notall; constant subs): their names are joined, "List::Util::all|any|none". */
static size_t xs_merge(struct xs_entry *v, size_t n)
{
  qsort(v, n, sizeof *v, xs_cmp_name);
  size_t out = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    char joined[4 * NAME_MAX_LEN];
    snprintf(joined, sizeof joined, "%s", v[i].name);
    const char *colon = strrchr(v[i].name, ':');
    size_t pl = colon ? (size_t)(colon + 1 - v[i].name) : 0, names = 1;
    for (; j < n && v[j].addr == v[i].addr; j++) {
      if (!strcmp(v[j].name, v[j - 1].name))
        continue;   /* the same sub, found twice (imported) */
      size_t l = strlen(joined);
      if (++names > 4) {
        if (names == 5)
          snprintf(joined + l, sizeof joined - l, "|...");
        continue;
      }
      /* the package once when they share it */
      const char *nm = pl && !strncmp(v[j].name, v[i].name, pl) && !strchr(v[j].name + pl, ':')
                       ? v[j].name + pl : v[j].name;
      snprintf(joined + l, sizeof joined - l, "|%s", nm);
    }
    v[out].addr = v[i].addr;
    copy_text(v[out].name, sizeof v[out].name, joined);
    out++;
    i = j;
  }
  return out;
}

static void xs_stash(struct pl_vm *vm, struct xs_build *b, size_t k)
{
  const struct pl_layout *lo = vm->lo;
  struct svh h;
  uint64_t max;
  if (sv_head(vm, b->hv[k], &h) || (h.flags & lo->svt.mask) != lo->svt.pvhv || !h.u ||
      rptr(vm, h.any + lo->xhv.max, &max) || max + 1 > XS_BUCKETS_MAX)
    return;
  size_t nb = (size_t)max + 1;
  uint64_t *bucket = malloc(nb * 8);
  if (!bucket || mem_read(vm->t->mem, h.u, bucket, nb * 8)) {
    free(bucket);
    return;
  }
  for (size_t i = 0; i < nb; i++) {
    for (uint64_t he = bucket[i]; he && b->nhe < XS_HE_MAX; b->nhe++) {
      uint64_t e[3];
      if ((he & 7) || mem_read(vm->t->mem, he, e, sizeof e))
        break;
      uint64_t next = rd((uint8_t *)e, lo->he.next, 8), hek = rd((uint8_t *)e, lo->he.hek, 8),
               val = rd((uint8_t *)e, lo->he.val, 8);
      he = next;
      char key[NAME_MAX_LEN];
      struct svh v;
      if (hek_str(vm, hek, key, sizeof key) || sv_head(vm, val, &v))
        continue;
      size_t kl = strlen(key);
      if ((v.flags & lo->svt.mask) == lo->svt.pvgv && (v.flags & lo->svpgv_gp) && v.u) {
        uint64_t gp[16];
        if (mem_read(vm->t->mem, v.u, gp, sizeof gp))
          continue;
        uint64_t cv = rd((uint8_t *)gp, lo->gp.cv, 8), hv = rd((uint8_t *)gp, lo->gp.hv, 8);
        if (cv)
          xs_add(vm, b, cv, b->pkg[k], key);
        if (hv && kl > 2 && !strcmp(key + kl - 2, "::") && b->nhv < XS_HV_MAX) {
          /* a nested package; main:: holds itself */
          int seen = 0;
          for (size_t j = 0; j < b->nhv && !seen; j++)
            seen = b->hv[j] == hv;
          if (!seen) {
            key[kl - 2] = 0;
            b->hv[b->nhv] = hv;
            if (!strcmp(b->pkg[k], "main"))
              fmt(b->pkg[b->nhv], sizeof b->pkg[0], "%s", key);
            else
              fmt(b->pkg[b->nhv], sizeof b->pkg[0], "%s::%s", b->pkg[k], key);
            b->nhv++;
          }
        }
      } else if ((v.flags & lo->svf_rok) && v.u) {
        xs_add(vm, b, v.u, b->pkg[k], key);   /* a sub stored in the stash as a reference */
      }
    }
  }
  free(bucket);
}

static void xs_build(struct pl_vm *vm)
{
  const struct pl_layout *lo = vm->lo;
  vm->xs_built_ms = clock_ms();
  uint64_t defstash = 0;
  if (lo->multiplicity)
    rptr(vm, vm->snap.interp ? vm->snap.interp + lo->interp.defstash : 0, &defstash);
  else
    rptr(vm, vm->g_defstash, &defstash);
  if (!defstash)
    return;
  struct xs_build *b = calloc(1, sizeof *b);
  if (!b)
    return;
  b->hv[0] = defstash;
  fmt(b->pkg[0], sizeof b->pkg[0], "main");
  b->nhv = 1;
  for (size_t k = 0; k < b->nhv && b->nhe < XS_HE_MAX; k++)
    xs_stash(vm, b, k);
  b->n = xs_merge(b->v, b->n);
  free(vm->xs);
  vm->xs = b->v;
  vm->nxs = b->n;
  free(b);
}

static const char *xs_find(const struct pl_vm *vm, uint64_t fn)
{
  size_t lo = 0, hi = vm->nxs;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (vm->xs[mid].addr < fn)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < vm->nxs && vm->xs[lo].addr == fn ? vm->xs[lo].name : NULL;
}

/* The XS sub a native frame is in: the frame was called by pp_entersub, and its function
 * (from the module's unwind table) is a CV's XSUB. */
static const char *xs_name(struct pl_vm *vm, const struct frame *native, size_t i,
                           size_t nnative, char *module, size_t cap)
{
  if (!vm->entersub[1] || i + 1 >= nnative)
    return NULL;
  uint64_t ret = native[i + 1].pc - 1;
  if (ret < vm->entersub[0] || ret >= vm->entersub[1])
    return NULL;
  uint64_t pc = native[i].flags & FRAME_F_EXACT ? native[i].pc : native[i].pc - 1;
  struct module *m = maps_module(vm->t->maps, pc);
  uint64_t hdr, table, count, start;
  if (!m || !m->elf || elf_file_eh_frame_hdr(m->elf, &hdr, &table, &count) || !count)
    return NULL;
  /* the function's start: the last FDE starting at or below pc (the table is sorted) */
  size_t lo = 0, hi = (size_t)count;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (elf_file_fde_start(m->elf, mid, &start))
      return NULL;
    if (start <= pc - m->bias)
      lo = mid;
    else
      hi = mid;
  }
  if (elf_file_fde_start(m->elf, lo, &start) || start > pc - m->bias)
    return NULL;
  uint64_t fn = start + m->bias;
  const char *name = xs_find(vm, fn);
  int known_miss = 0;
  for (size_t k = 0; k < XS_MISSES && !known_miss; k++)
    known_miss = vm->xs_miss[k] == fn;
  if (!name && !known_miss && clock_ms() - vm->xs_built_ms >= XS_REBUILD_MS) {
    /* an XS sub loaded since, or a function pp_entersub calls that is none */
    xs_build(vm);
    if (!(name = xs_find(vm, fn)))
      vm->xs_miss[vm->nxs_miss++ % XS_MISSES] = fn;
  }
  if (name)
    fmt(module, cap, "%s", m->name);
  return name;
}

/* -- The walk --------------------------------------------------------------- */

struct pframe {
  int seg;                   /* runops run, innermost 0 */
  char func[128];
  uint64_t cop;
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
      if (sub) {
        uint64_t cv = rd(cx, t == lo->cxt.sub ? lo->cx.sub_cv : lo->cx.format_cv, 8);
        if (cv_name(vm, cv, f->func, sizeof f->func)) {
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
        if (namesv && !sv_head(vm, namesv, &h) && h.u &&
            mem_read_cstr(vm->t->mem, h.u, req, sizeof req) >= 0 && text_ok(req))
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
    fmt(f->func, sizeof f->func, "main");
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
    int r = vm->snap.tid == th->tid && vm->snap.err ? vm->snap.err : copy_stacks(vm, th);
    vm->snap.err = 0;
    if (r == -ENOENT)
      return 0;   /* this thread runs no Perl */
    if (r) {
      out->err = r;
      return r;
    }
  }
  vm->snap.valid = 0;
  size_t max = 4096, n = 0;
  struct pframe *pf = malloc(max * sizeof *pf);
  if (!pf)
    return out->err = -ENOMEM;
  int r = collect(vm, pf, max, &n);
  /* runs of the op loop among the native frames, innermost first */
  size_t runs[64], nruns = 0;
  for (size_t i = 0; i < nnative && nruns < 64; i++)
    if (is_runops(vm, &native[i]))
      runs[nruns++] = i;
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
    if (cop_info(vm, pf[i].cop, file, sizeof file, &v->line) && !r)
      r = -VMS_E_BADDATA;
    if (file[0])
      vm_frames_setf(out, &v->file, "%s", file);
  }
  /* XS subs among the native frames: named frames in their place */
  for (size_t i = 0; i < nnative && !r; i++) {
    char module[64];
    const char *name = xs_name(vm, native, i, nnative, module, sizeof module);
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
  int r = copy_stacks(vm, th);
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
  .caps = VM_CAP_NONBLOCKING,
  .probe = pl_probe,
  .capture = pl_capture,
  .walk = pl_walk,
  .walk_running = pl_walk_running,
  .describe = pl_describe,
  .free = pl_free,
};
