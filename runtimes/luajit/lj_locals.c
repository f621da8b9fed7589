/* LuaJIT locals: the variables of a frame the walk emitted, named as debug.getlocal and
 * debug.getupvalue name them, each value written as Lua would show it. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lj_vm.h"
#include "vmstack/frames.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"
#include "vmstack/vartext.h"

#define VARS_MAX 600          /* variables of one frame (a frame has at most 250 slots,
                                 upvalues and varargs as many again) */
#define TABLE_SCAN_MAX 4000000u /* slots of a table looked at to count its entries */
#define SCAN_CHUNK 4096         /* slots read at once while counting */

/* -- Values --------------------------------------------------------------------- */

/* The GC type (~itype) of a TValue: a gct.* value, 0..2 for nil/false/true, 3 for a light
 * userdata, or above 13 for a number. */
static uint32_t tv_type(const struct lj_layout *lo, uint64_t tv)
{
  uint32_t it = lo->gc64 ? (uint32_t)((int64_t)tv >> 47) : (uint32_t)(tv >> 32);
  return ~it;
}

static uint64_t tv_gc(const struct lj_layout *lo, uint64_t tv)
{
  return lo->gc64 ? tv & lo->gcvmask : (uint32_t)tv;
}

/* A number as LuaJIT's tostring writes it (%.14g; inf, -inf, and nan whatever its sign). */
static void put_num(struct vtext *o, double d)
{
  if (isnan(d))
    vt_put(o, "nan", 3);
  else if (isinf(d))
    vt_put(o, d < 0 ? "-inf" : "inf", d < 0 ? 4 : 3);
  else
    vt_putf(o, "%.14g", d);
}

struct lctx {
  struct lj_vm *vm;
  const struct lj_layout *lo;
  const struct vm_locals_opts *opts;
  struct vtext text;          /* the value being written (vt_value_room of them) */
  uint8_t *str;               /* a string's bytes being read: max_string + 8 */
};

/* A string object's bytes (up to want of them) and length. */
static int read_lstr(struct lctx *c, uint64_t s, uint8_t *buf, size_t want, size_t *ret_n,
                     size_t *ret_len)
{
  const struct lj_layout *lo = c->lo;
  uint8_t hd[64];
  if (lo->str.size > sizeof hd || mem_read(c->vm->t->mem, s, hd, lo->str.size) ||
      hd[lo->L.gct] != lo->gct.str)
    return -1;
  size_t len = (uint32_t)rd(hd, lo->str.len, 4);
  size_t n = len < want ? len : want;
  if (n && mem_read(c->vm->t->mem, s + lo->str.size, buf, n))
    return -1;
  *ret_n = n;
  *ret_len = len;
  return 0;
}

static const char *type_name(const struct lj_layout *lo, uint32_t t)
{
  if (t > 13)
    return "number";
  if (t == 0)
    return "nil";
  if (t == 1 || t == 2)
    return "boolean";
  if (t == 3 || t == lo->gct.udata)
    return "userdata";
  if (t == lo->gct.str)
    return "string";
  if (t == lo->gct.tab)
    return "table";
  if (t == lo->gct.func)
    return "function";
  if (t == lo->gct.thread)
    return "thread";
  if (t == lo->gct.cdata)
    return "cdata";
  return "?";
}

static void put_value(struct lctx *c, struct vtext *o, uint64_t tv, int depth, int64_t *ret_len);

/* A function: "function <@file:line>" for Lua, "builtin NAME" for the VM's and C ones
 * package.loaded names, else their address. */
static void put_func(struct lctx *c, struct vtext *o, uint64_t fn)
{
  const struct lj_layout *lo = c->lo;
  uint8_t fb[64];
  if (lo->fn.lsize > sizeof fb || mem_read(c->vm->t->mem, fn, fb, lo->fn.csize)) {
    vt_putf(o, "function 0x%" PRIx64, fn);
    return;
  }
  if (fb[lo->fn.ffid] == lo->ff_lua) {
    struct proto p;
    if (!mem_read(c->vm->t->mem, fn, fb, lo->fn.lsize) &&
        !lj_read_proto(c->vm, rd(fb, lo->fn.pc, lo->mref_size) - lo->pt.size, &p)) {
      char file[300];
      lj_chunk_name(c->vm, &p, file, sizeof file);
      vt_putf(o, "function <%s:%d>", file, p.firstline);
    } else {
      vt_putf(o, "function 0x%" PRIx64, fn);
    }
    return;
  }
  const char *nm = lj_func_name(c->vm, fn);
  if (nm)
    vt_putf(o, "builtin %s", nm);
  else if (fb[lo->fn.ffid] == lo->ff_c)
    vt_putf(o, "function: C 0x%" PRIx64, rd(fb, lo->fn.c_f, 8));
  else
    vt_putf(o, "builtin#%u", fb[lo->fn.ffid]);
}

/* A table key in a preview: "name = ", "[1.5] = ", "[\"a b\"] = ". */
static void put_key(struct lctx *c, struct vtext *o, uint64_t key)
{
  const struct lj_layout *lo = c->lo;
  uint32_t t = tv_type(lo, key);
  if (t == lo->gct.str) {
    uint8_t s[64];
    size_t n, len;
    if (!read_lstr(c, tv_gc(lo, key), s, sizeof s, &n, &len) && n == len && n &&
        !(s[0] >= '0' && s[0] <= '9')) {
      size_t i = 0;
      while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                       (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        i++;
      if (i == n) {
        vt_put(o, (const char *)s, n);
        vt_put(o, " = ", 3);
        return;
      }
    }
  }
  vt_put(o, "[", 1);
  put_value(c, o, key, 1, NULL);
  vt_put(o, "] = ", 4);
}

/* "table 0x… {1, 2, name = "api", … (+N more)}": the first entries of the array part, then
 * of the hash part; nested tables without their entries. */
static void put_table(struct lctx *c, struct vtext *o, uint64_t tab, int depth, int64_t *ret_len)
{
  const struct lj_layout *lo = c->lo;
  uint8_t b[128];
  vt_putf(o, "table 0x%" PRIx64, tab);
  if (lo->tab.size > sizeof b || mem_read(c->vm->t->mem, tab, b, lo->tab.size) ||
      b[lo->L.gct] != lo->gct.tab)
    return;
  if (depth > 0)
    return;
  uint64_t array = rd(b, lo->tab.array, lo->mref_size), node = rd(b, lo->tab.node, lo->mref_size);
  uint32_t asize = (uint32_t)rd(b, lo->tab.asize, 4), hmask = (uint32_t)rd(b, lo->tab.hmask, 4);
  size_t shown = 0, total = 0, want = c->opts->preview;
  int exact = asize <= TABLE_SCAN_MAX && hmask < TABLE_SCAN_MAX;
  /* in the order next() gives them; keys left out while they count 1, 2, 3 ... */
  int64_t next_index = 1;
  vt_put(o, " {", 2);
  uint64_t chunk[SCAN_CHUNK];
  for (uint32_t i = 0; i < asize && i < TABLE_SCAN_MAX; i++) {
    if (i % SCAN_CHUNK == 0) {
      size_t k = asize - i < SCAN_CHUNK ? asize - i : SCAN_CHUNK;
      if (mem_read(c->vm->t->mem, array + (uint64_t)i * 8, chunk, k * 8)) {
        exact = 0;
        break;
      }
    }
    uint64_t v = chunk[i % SCAN_CHUNK];
    if (tv_type(lo, v) == 0)
      continue;
    total++;
    if (shown < want) {
      if (shown++)
        vt_put(o, ", ", 2);
      if (i == next_index) {
        next_index++;
      } else {
        vt_putf(o, "[%u] = ", i);
        next_index = -1;
      }
      put_value(c, o, v, depth + 1, NULL);
    }
  }
  /* (nodes read SCAN_CHUNK / 4 at a time: a node is at most 32 bytes) */
  uint8_t *nodes = (uint8_t *)chunk;
  size_t per = sizeof chunk / (lo->node.size ? lo->node.size : 1);
  if (lo->node.size && lo->node.size <= 64) {
    for (uint64_t i = 0; i <= hmask && i < TABLE_SCAN_MAX; i++) {
      if (i % per == 0) {
        size_t k = hmask + 1 - i < per ? (size_t)(hmask + 1 - i) : per;
        if (mem_read(c->vm->t->mem, node + i * lo->node.size, nodes, k * lo->node.size)) {
          exact = 0;
          break;
        }
      }
      const uint8_t *nb = nodes + (i % per) * lo->node.size;
      uint64_t v = rd(nb, lo->node.val, 8), k = rd(nb, lo->node.key, 8);
      if (tv_type(lo, v) == 0)
        continue;
      total++;
      if (shown < want) {
        if (shown++)
          vt_put(o, ", ", 2);
        double kd;
        memcpy(&kd, &k, 8);
        if (next_index > 0 && tv_type(lo, k) > 13 && kd == (double)next_index) {
          next_index++;
        } else {
          put_key(c, o, k);
          next_index = -1;
        }
        put_value(c, o, v, depth + 1, NULL);
      }
    }
  }
  /* (past the slots counted, at least that many) */
  if (total > shown || !exact)
    vt_putf(o, "%s\xe2\x80\xa6 (+%s%zu more)", shown ? ", " : "", exact ? "" : "\xe2\x89\xa5",
            total - shown);
  vt_put(o, "}", 1);
  if (ret_len)
    *ret_len = exact ? (int64_t)total : -1;
}

static void put_value(struct lctx *c, struct vtext *o, uint64_t tv, int depth, int64_t *ret_len)
{
  const struct lj_layout *lo = c->lo;
  uint32_t t = tv_type(lo, tv);
  uint64_t gc = tv_gc(lo, tv);
  if (t > 13) {
    double d;
    memcpy(&d, &tv, 8);
    put_num(o, d);
  } else if (t == 0) {
    vt_put(o, "nil", 3);
  } else if (t == 1 || t == 2) {
    vt_put(o, t == 2 ? "true" : "false", t == 2 ? 4 : 5);
  } else if (t == 3) {
    vt_putf(o, "userdata 0x%" PRIx64 " (light)", lo->gc64 ? tv & ((UINT64_C(1) << 47) - 1) : (uint32_t)tv);
  } else if (t == lo->gct.str) {
    uint8_t s[48], *b = depth ? s : c->str;
    size_t n, len;
    size_t want = depth ? 40 : c->opts->max_string;
    if (read_lstr(c, gc, b, want + 4, &n, &len)) {
      vt_putf(o, "string 0x%" PRIx64 " (unreadable)", gc);
      return;
    }
    vt_string(o, b, n, len, want, VT_LUA, 1);
    if (ret_len)
      *ret_len = (int64_t)len;
  } else if (t == lo->gct.tab) {
    put_table(c, o, gc, depth, ret_len);
  } else if (t == lo->gct.func) {
    put_func(c, o, gc);
  } else {
    vt_putf(o, "%s 0x%" PRIx64, type_name(lo, t), gc);
  }
}

/* -- Frames ----------------------------------------------------------------------- */


/* One slot's value (from the stack copied at the stop when it holds that stack). */
static int slot_value(struct lj_vm *vm, uint64_t L, uint64_t addr, uint64_t *ret)
{
  if (L == vm->snap_L && !slot(&vm->snap.s, addr, ret))
    return 0;
  return mem_read(vm->t->mem, addr, ret, 8);
}

static int add_var(struct lctx *c, struct vt_vars *vs, enum vm_var_kind kind, const char *name,
                   uint64_t tv)
{
  const struct lj_layout *lo = c->lo;
  if (vs->n == VARS_MAX)
    return 0;
  uint32_t t = tv_type(lo, tv);
  struct vm_var v = { kind, name, type_name(lo, t), "", 0, -1 };
  v.addr = t >= lo->gct.str && t <= lo->gct.udata ? tv_gc(lo, tv) : 0;
  c->text.n = 0;
  c->text.b[0] = 0;
  put_value(c, &c->text, tv, 0, &v.len);
  vt_mark_cut(&c->text);   /* (a value longer than its room ends in "…") */
  v.value = c->text.b;
  return vt_vars_put(vs, vs->n, &v);
}

static int note(struct vt_vars *vs, const char *what)
{
  struct vm_var v = { VAR_NOTE, "", "", what, 0, -1 };
  return vt_vars_put(vs, vs->n, &v);
}

int lj_locals(void *vmv, struct target *t, struct vm_frames *vf, size_t i,
              const struct vm_locals_opts *opts)
{
  struct lj_vm *vm = vmv;
  const struct lj_layout *lo = vm->lo;
  struct vm_frame *fr = &vf->v[i];
  (void)t;
  if (fr->kind != FK_FUNCTION || !fr->ctx[1])
    return 0;
  uint64_t L = fr->ctx[0], f = fr->ctx[1], fn = fr->ctx[2], pc = fr->ctx[3], top = fr->ctx[4];
  size_t room = vt_value_room(opts->max_string);
  struct lctx c = { vm, lo, opts, { malloc(room), 0, room }, malloc(opts->max_string + 8) };
  struct vt_vars vars = { 0 }, *vs = &vars;
  if (!c.text.b || !c.str) {
    free(c.text.b);
    free(c.str);
    return -ENOMEM;
  }
  uint8_t fb[64];
  struct proto p;
  int r = 0;
  if (lo->fn.lsize > sizeof fb || mem_read(vm->t->mem, fn, fb, lo->fn.lsize) ||
      fb[lo->fn.ffid] != lo->ff_lua ||
      lj_read_proto(vm, rd(fb, lo->fn.pc, lo->mref_size) - lo->pt.size, &p)) {
    r = -VMS_E_BADDATA;
    goto out;
  }
  uint64_t base = f + 8;
  uint64_t end = top > base ? top : base + 8ull * p.framesize;
  if (fr->trace) {
    /* the frame a trace runs in (the innermost of its VM entry): its slots in memory are
     * from before the trace */
    note(vs, "in JIT registers: the values of this frame are not restored");
  } else {
    int64_t pos = pc ? lj_proto_pos(&p, pc) : -1;
    uint32_t slot = 0;
    if (pos < 0)
      note(vs, "position unknown: no variable names");
    else if (!p.varinfo)
      note(vs, "no variable names: stripped bytecode");
    else {
      char nm[64];
      for (; slot < 250 && !lj_local_name(vm, &p, pos, slot, nm, sizeof nm); slot++) {
        uint64_t v = 0;
        if (slot_value(vm, L, base + 8ull * slot, &v))
          break;
        add_var(&c, vs, VAR_LOCAL, nm, v);
      }
    }
    /* the slots no variable names: with --all-slots (always, without names) */
    if (opts->all_slots || pos < 0 || !p.varinfo)
      for (; slot < 250 && base + 8ull * slot < end; slot++) {
        uint64_t v = 0;
        char nm[32];
        if (slot_value(vm, L, base + 8ull * slot, &v))
          break;
        snprintf(nm, sizeof nm, pos < 0 || !p.varinfo ? "(slot %u)" : "(*temporary)", slot + 1);
        add_var(&c, vs, VAR_TEMPORARY, nm, v);
      }
    /* varargs: between the fixed arguments where the caller put them and this frame */
    uint64_t fl = 0;
    int64_t link = 0;
    if (!slot_value(vm, L, f, &fl))
      link = lo->fr2 ? (int64_t)fl : (int32_t)(fl >> 32);   /* (as frame_at reads it) */
    if ((p.flags & lo->proto.vararg) && link && (link & lo->frame.type) != lo->frame.lua &&
        (unsigned)(link & lo->frame.typep) == lo->frame.varg) {
      uint64_t nf = f - (uint64_t)(link & ~(int64_t)7);
      uint64_t a = nf + 8 + 8ull * p.numparams, e = f - 8ull * lo->fr2;
      for (uint32_t k = 0; a < e && k < 250; a += 8, k++) {
        uint64_t v = 0;
        if (nf >= f || slot_value(vm, L, a, &v))
          break;
        add_var(&c, vs, VAR_VARARG, "(*vararg)", v);
      }
    }
  }
  /* upvalues, named by uvinfo: a closed one holds its value, an open one points at it */
  uint8_t nup = fb[lo->fn.nupvalues];
  for (uint32_t k = 0; k < nup && k < p.sizeuv; k++) {
    uint64_t uv = 0, v = 0;
    uint8_t ub[64];
    char nm[64];
    if (mem_read(vm->t->mem, fn + lo->fn.l_uvptr + (uint64_t)k * lo->gcref_size, &uv,
                 lo->gcref_size))
      break;
    uv = lo->gc64 ? uv : (uint32_t)uv;
    if (lo->uv.size > sizeof ub || mem_read(vm->t->mem, uv, ub, lo->uv.size) ||
        ub[lo->L.gct] != lo->gct.upval)
      continue;
    if (lj_upvalue_name(vm, &p, k, nm, sizeof nm))
      snprintf(nm, sizeof nm, "?");
    if (ub[lo->uv.closed])
      v = rd(ub, lo->uv.tv, 8);
    else if (slot_value(vm, L, rd(ub, lo->uv.v, lo->mref_size), &v))
      continue;
    add_var(&c, vs, VAR_UPVALUE, nm, v);
  }
out:
  if (vs->n)
    r = vm_frames_set_vars(vf, i, vs->v, vs->n) ? -ENOMEM : r;
  vt_vars_free(vs);
  free(c.text.b);
  free(c.str);
  return r;
}
