#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/json.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/tls.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"
#include "pl_vm.h"

/* -- Names ------------------------------------------------------------------ */

static size_t hash_addr(uint64_t a)
{
  return hash_word(a, 10) & (CACHE_SIZE - 1);
}

/* Names and file names read from the target are text (UTF-8 under `use utf8`): bytes that
 * are not are garbage, from a freed or reused object. Control characters become '?'. */
int pl_text_ok(char *s)
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
int pl_hek_str(struct pl_vm *vm, uint64_t hek, char *buf, size_t cap)
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
  return pl_text_ok(buf) ? 0 : -VMS_E_BADDATA;
}

/* SV head fields. */

int pl_sv_head(struct pl_vm *vm, uint64_t sv, struct svh *h)
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
int pl_hv_name(struct pl_vm *vm, uint64_t hv, char *buf, size_t cap)
{
  const struct pl_layout *lo = vm->lo;
  struct svh h;
  if (pl_sv_head(vm, hv, &h) || (h.flags & lo->svt.mask) != lo->svt.pvhv || !(h.flags & lo->svf_ook))
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
  return pl_hek_str(vm, hek, buf, cap);
}

/* "Pkg::name" of a CV, as caller() prints it (gv_efullname); lexical subs unqualified. */
int pl_cv_name(struct pl_vm *vm, uint64_t cv, char *buf, size_t cap)
{
  const struct pl_layout *lo = vm->lo;
  struct svh h;
  uint8_t body[256];
  if (pl_sv_head(vm, cv, &h) || ((h.flags & lo->svt.mask) != lo->svt.pvcv &&
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
    if ((r = pl_hek_str(vm, gv, name, sizeof name)))
      return r;
    if (cvflags & lo->cvf.lexical)
      pkg[0] = 0;
    else if (pl_hv_name(vm, stash, pkg, sizeof pkg))
      snprintf(pkg, sizeof pkg, "__ANON__");
  } else {
    struct svh g;
    if (pl_sv_head(vm, gv, &g) || (g.flags & lo->svt.mask) != lo->svt.pvgv ||
        !(g.flags & lo->svpgv_gp) || !g.any)
      return -VMS_E_BADDATA;
    uint64_t egv = 0;
    if (g.u)
      rptr(vm, g.u + lo->gp.egv, &egv);
    struct svh eg;
    uint64_t gbody = g.any;
    if (egv && egv != gv && !pl_sv_head(vm, egv, &eg) && (eg.flags & lo->svt.mask) == lo->svt.pvgv &&
        eg.any)
      gbody = eg.any;
    uint64_t hek, gstash;
    if (rptr(vm, gbody + lo->xgv.namehek, &hek) || (r = pl_hek_str(vm, hek, name, sizeof name)))
      return -VMS_E_BADDATA;
    if (rptr(vm, gbody + lo->xgv.stash, &gstash) || !gstash ||
        pl_hv_name(vm, gstash, pkg, sizeof pkg))
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
int pl_cop_info(struct pl_vm *vm, uint64_t cop, char *file, size_t cap, int *ret_line)
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
    if (pl_sv_head(vm, f, &g) || (g.flags & lo->svt.mask) != lo->svt.pvgv || !g.any ||
        rptr(vm, g.any + lo->xgv.namehek, &hek) || pl_hek_str(vm, hek, nm, sizeof nm))
      return -VMS_E_BADDATA;
    copy_text(name, sizeof name, strncmp(nm, "_<", 2) ? nm : nm + 2);
  }
  if (!pl_text_ok(name)) {
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
  if (pl_sv_head(vm, cv, &h) || (h.flags & lo->svt.mask) != lo->svt.pvcv || !h.any ||
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
  if (pl_cv_name(vm, cv, b->v[b->n].name, sizeof b->v[b->n].name)) {
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
  if (pl_sv_head(vm, b->hv[k], &h) || (h.flags & lo->svt.mask) != lo->svt.pvhv || !h.u ||
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
      if (pl_hek_str(vm, hek, key, sizeof key) || pl_sv_head(vm, val, &v))
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
const char *pl_xs_name(struct pl_vm *vm, const struct frame *native, size_t i,
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
