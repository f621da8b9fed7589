/* LuaJIT object readers: strings, prototypes and their line and variable info, and the
 * names functions get from their caller's bytecode (lj_debug_funcname). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lj_vm.h"
#include "vmstack/err.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"

/* -- Reading helpers ------------------------------------------------------ */




/* A GCstr's text, cut at cap-1 characters. */
int lj_read_str(struct lj_vm *vm, uint64_t s, char *buf, size_t cap)
{
  const struct lj_layout *lo = vm->lo;
  uint8_t tmp[64];
  if (!s || !cap || lo->str.size > sizeof tmp)
    return -VMS_E_BADDATA;
  /* the header first: the string may end right before unmapped memory */
  if (mem_read(vm->t->mem, s, tmp, lo->str.size) || tmp[lo->L.gct] != lo->gct.str)
    return -VMS_E_BADDATA;
  uint32_t len = (uint32_t)rd(tmp, lo->str.len, 4);
  size_t n = len < cap - 1 ? len : cap - 1;
  if (n && mem_read(vm->t->mem, s + lo->str.size, buf, n))
    return -VMS_E_BADDATA;
  buf[n] = 0;   /* (control bytes stay: every output escapes them its own way) */
  return 0;
}


int lj_read_proto(struct lj_vm *vm, uint64_t pt, struct proto *p)
{
  const struct lj_layout *lo = vm->lo;
  uint8_t b[256];
  size_t w = lo->gcref_size, mw = lo->mref_size;
  if (lo->pt.size > sizeof b || mem_read(vm->t->mem, pt, b, lo->pt.size))
    return -VMS_E_BADDATA;
  if (b[lo->L.gct] != lo->gct.proto)
    return -VMS_E_BADDATA;
  p->addr = pt;
  p->bc = pt + lo->pt.size;
  p->sizebc = (uint32_t)rd(b, lo->pt.sizebc, 4);
  p->k = rd(b, lo->pt.k, mw);
  p->chunkname = rd(b, lo->pt.chunkname, w);
  p->firstline = (int32_t)rd(b, lo->pt.firstline, 4);
  p->numline = (uint32_t)rd(b, lo->pt.numline, 4);
  p->lineinfo = rd(b, lo->pt.lineinfo, mw);
  p->uvinfo = rd(b, lo->pt.uvinfo, mw);
  p->varinfo = rd(b, lo->pt.varinfo, mw);
  p->sizeuv = b[lo->pt.sizeuv];
  p->numparams = b[lo->pt.numparams];
  p->framesize = b[lo->pt.framesize];
  p->flags = b[lo->pt.flags];
  p->sizept = (uint32_t)rd(b, lo->pt.sizept, 4);
  /* the bytecode lies inside the proto's own allocation */
  if (!p->sizebc || (uint64_t)lo->pt.size + (uint64_t)p->sizebc * 4 > p->sizept)
    return -VMS_E_BADDATA;
  return 0;
}

/* Bytecode position of the instruction before pc (pc points after it); -1 if outside. */
int64_t lj_proto_pos(const struct proto *p, uint64_t pc)
{
  if (pc < p->bc + 4 || pc > p->bc + (uint64_t)p->sizebc * 4 || (pc - p->bc) & 3)
    return -1;
  return (int64_t)((pc - p->bc) / 4) - 1;
}

/* lj_debug_line: line of bytecode position pos. */
int lj_proto_line(struct lj_vm *vm, const struct proto *p, int64_t pos)
{
  if (!p->lineinfo || pos < 0 || pos > (int64_t)p->sizebc)
    return 0;
  if (pos == (int64_t)p->sizebc)
    return p->firstline + (int)p->numline;
  if (pos == 0)
    return p->firstline;
  pos--;
  size_t w = p->numline < 256 ? 1 : p->numline < 65536 ? 2 : 4;
  uint64_t d = 0;
  if (mem_read(vm->t->mem, p->lineinfo + (uint64_t)pos * w, &d, w))
    return 0;
  return p->firstline + (int)d;
}

void lj_chunk_name(struct lj_vm *vm, const struct proto *p, char *buf, size_t cap)
{
  char s[STR_MAX];
  if (lj_read_str(vm, p->chunkname, s, sizeof s)) {
    fmt(buf, cap, "?");
    return;
  }
  if (s[0] == '@' || s[0] == '=')
    fmt(buf, cap, "%s", s);
  else {
    char *nl = strchr(s, '\n');
    if (nl)
      *nl = 0;
    fmt(buf, cap, "[string \"%.60s%s\"]", s, strlen(s) > 60 || nl ? "..." : "");
  }
}

/* -- Function names from the caller's bytecode (lj_debug_funcname) --------- */

static int read_ins(struct lj_vm *vm, const struct proto *p, int64_t pos, uint32_t *ret)
{
  if (pos < 0 || pos >= (int64_t)p->sizebc)
    return -1;
  return mem_read(vm->t->mem, p->bc + (uint64_t)pos * 4, ret, 4);
}

static const char *const varname_special[] = {
  NULL, "(for index)", "(for limit)", "(for step)", "(for generator)", "(for state)",
  "(for control)",
};

static uint64_t uleb(const uint8_t **pp, const uint8_t *end)
{
  uint64_t v = 0;
  int sh = 0;
  while (*pp < end && sh < 35) {
    uint8_t b = *(*pp)++;
    v |= (uint64_t)(b & 0x7f) << sh;
    if (!(b & 0x80))
      break;
    sh += 7;
  }
  return v;
}

/* Debug info: it lies inside the proto's own allocation (sizept bytes from the proto), so
 * read up to its end, at most max bytes; halving while the end runs into unmapped memory
 * (a corrupt size). 0 when not even 64 bytes (or the whole rest) can be read. */
static size_t read_upto(struct lj_vm *vm, const struct proto *p, uint64_t addr, void *buf,
                        size_t max)
{
  uint64_t end = p->addr + p->sizept;
  size_t n = max;
  if (addr >= p->addr && addr < end && end - addr < n)
    n = (size_t)(end - addr);
  if (n < 64 && !mem_read(vm->t->mem, addr, buf, n))
    return n;
  while (n >= 64 && mem_read(vm->t->mem, addr, buf, n))
    n /= 2;
  return n >= 64 ? n : 0;
}

/* Name of the local in `slot` at bytecode position pos, from varinfo (lj_debug's
 * debug_varname). */
int lj_local_name(struct lj_vm *vm, const struct proto *p, int64_t pos, uint32_t slot,
                  char *buf, size_t cap)
{
  uint8_t vi[2048];
  size_t n = p->varinfo ? read_upto(vm, p, p->varinfo, vi, sizeof vi) : 0;
  if (!n)
    return -1;
  const uint8_t *q = vi, *end = vi + n;
  uint64_t last = 0;
  while (q < end && *q) {
    const uint8_t *name = q;
    if (*q < 7)
      q++;
    else {
      q = memchr(q, 0, (size_t)(end - q));
      if (!q)
        return -1;
      q++;
    }
    uint64_t start = last += uleb(&q, end);
    uint64_t stop = start + uleb(&q, end);
    if (start > (uint64_t)pos)
      break;
    if ((uint64_t)pos < stop && slot-- == 0) {
      fmt(buf, cap, "%s", *name < 7 ? varname_special[*name] : (const char *)name);
      return 0;
    }
  }
  return -1;
}

static int kstr(struct lj_vm *vm, const struct proto *p, uint32_t idx, char *buf, size_t cap)
{
  uint64_t ref = 0;
  size_t w = vm->lo->gcref_size;
  if (mem_read(vm->t->mem, p->k - (uint64_t)(idx + 1) * w, &ref, w))
    return -1;
  /* GC64 tags references in their top bits; 32-bit references are plain */
  return lj_read_str(vm, vm->lo->gcvmask ? ref & vm->lo->gcvmask : (uint32_t)ref, buf, cap);
}

int lj_upvalue_name(struct lj_vm *vm, const struct proto *p, uint32_t idx, char *buf,
                        size_t cap)
{
  char u[1024];
  size_t n = p->uvinfo && idx < p->sizeuv ? read_upto(vm, p, p->uvinfo, u, sizeof u) : 0;
  if (!n)
    return -1;
  const char *q = u, *end = u + n;
  for (uint32_t i = 0; i < idx; i++) {
    q = memchr(q, 0, (size_t)(end - q));
    if (!q || ++q >= end)
      return -1;
  }
  if (!memchr(q, 0, (size_t)(end - q)))
    return -1;
  fmt(buf, cap, "%s", q);
  return 0;
}

/* lj_debug_slotname: what the caller put in `slot` before position pos. */
static int slot_name(struct lj_vm *vm, const struct proto *p, int64_t pos, uint32_t slot,
                     char *buf, size_t cap)
{
  const struct lj_layout *lo = vm->lo;
  for (int hops = 0; hops < 16; hops++) {
    if (!lj_local_name(vm, p, pos, slot, buf, cap))
      return 0;
    int64_t i = pos;
    for (int64_t steps = 0;; steps++) {
      if (--i < 0 || steps > 65536)
        return -1;
      uint32_t ins;
      if (read_ins(vm, p, i, &ins))
        return -1;
      uint8_t op = ins & 0xff, a = (ins >> 8) & 0xff;
      if (op >= lo->bc.max)
        return -1;
      unsigned ma = lo->bcmode[op] & 7;
      if (ma == lo->bcm.base) {
        if (slot >= a && (op != lo->bc.knil || slot <= (ins >> 16)))
          return -1;
      } else if (ma == lo->bcm.dst && a == slot) {
        if (op == lo->bc.mov) {
          slot = ins >> 16;
          pos = i;
          break;   /* follow the source slot */
        }
        if (op == lo->bc.gget)
          return kstr(vm, p, ins >> 16, buf, cap);
        if (op == lo->bc.tgets) {
          char f[STR_MAX];
          if (kstr(vm, p, (ins >> 16) & 0xff, f, sizeof f))
            return -1;
          uint32_t prev;
          /* a method call: obj:name() copies the object right after the callee slot */
          if (!read_ins(vm, p, i - 1, &prev) && (prev & 0xff) == lo->bc.mov &&
              ((prev >> 8) & 0xff) == a + 1u + lo->fr2 && (prev >> 16) == (ins >> 24))
            fmt(buf, cap, "method '%s'", f);
          else
            fmt(buf, cap, "%s", f);
          return 0;
        }
        if (op == lo->bc.uget)
          return lj_upvalue_name(vm, p, ins >> 16, buf, cap);
        return -1;
      }
    }
  }
  return -1;
}

/* Name of the function called by the instruction before caller_pc in proto p. */
int lj_call_name(struct lj_vm *vm, const struct proto *p, uint64_t caller_pc, char *buf,
                     size_t cap)
{
  const struct lj_layout *lo = vm->lo;
  int64_t pos = lj_proto_pos(p, caller_pc);
  uint32_t ins;
  if (pos < 0 || read_ins(vm, p, pos, &ins))
    return -1;
  uint8_t op = ins & 0xff, a = (ins >> 8) & 0xff;
  if (op == lo->bc.call || op == lo->bc.callm || op == lo->bc.callt || op == lo->bc.callmt ||
      op == lo->bc.itern)
    return slot_name(vm, p, pos, a, buf, cap);
  if (op == lo->bc.iterc)
    return slot_name(vm, p, pos, a - 3u, buf, cap);
  unsigned mm = lo->bcmode[op < lo->bc.max ? op : 0] >> 11;
  if (op < lo->bc.max && mm < lo->mm_max && lo->mm_names[mm]) {
    fmt(buf, cap, "__%s", lo->mm_names[mm]);
    return 0;
  }
  return -1;
}
