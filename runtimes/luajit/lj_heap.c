/* LuaJIT heap enumeration: every GC object of each global_State (gc.root's list, the
 * string table's chains, open upvalues, userdata awaiting finalizers) with its exact size
 * (as the lj_*_free functions give it back), its references labelled as Lua would spell
 * them, and the roots: _G, the registry, the main thread and the running coroutine, the
 * VM's own gcroot[], the FFI's C types and the JIT's traces. Weak references (__mode) are
 * not given. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lj_vm.h"
#include "vmstack/heap.h"
#include "vmstack/json.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"

#define OBJ_LIST_MAX 200000000u   /* objects of one list visited at most */
#define KEY_TEXT 48               /* characters of a string key in a label */
#define MODE_CACHE 1024
#define CT_CHAIN_MAX 64           /* attribute links of a C type followed at most (a few in use) */
#define CT_SIZE_MAX 0x7fffffffu   /* the FFI refuses larger C types */

struct ctx {
  struct lj_vm *vm;
  const struct lj_layout *lo;
  struct mem *mem;
  struct heap *h;
  uint32_t ty[16];              /* heap type ids by gct */
  struct {                      /* metatable → weak mode ('k' 1, 'v' 2), cached */
    uint64_t mt;
    uint8_t mode;
  } modes[MODE_CACHE];
  uint64_t bytes;             /* the VMs' own gc.total */
  uint64_t mainL;             /* the main thread of the VM being read: it lives in the GG_State */
  uint64_t stale_L;           /* its running thread when its frames cannot be read from memory */
  uint32_t gg_size;
  /* the FFI's C type table of the VM being read (CTState tab[0..top)): a cdata's size is its
   * C type's */
  const uint8_t *ct;
  uint8_t *ct_own;
  uint32_t ct_top;
  uint64_t cts;               /* the FFI's state, an object of its own (0: none) */
  /* an aligned block of the copy known to be in one piece, and the one last found not to be:
   * most reads fall in the block of the last one, without a search of the copy's regions */
  uint64_t wbase, wbad;
  const uint8_t *wptr;
  int err;
};

/* The GC object a TValue holds (0 for none); its gct in *gct. */
static uint64_t tv_obj(const struct lj_layout *lo, uint64_t tv, uint8_t *gct)
{
  uint32_t it = lo->gc64 ? (uint32_t)((int64_t)tv >> 47) : (uint32_t)(tv >> 32);
  uint32_t t = ~it;
  if (t < lo->gct.str || t > lo->gct.udata)
    return 0;
  *gct = (uint8_t)t;
  return lo->gc64 ? tv & lo->gcvmask : (uint32_t)tv;
}

/* rd() with the widths the layouts use as constants (a variable-length memcpy is a call or
 * a rep movs for every field of millions of objects) */
static inline uint64_t ld(const uint8_t *b, size_t off, size_t w)
{
  if (w == 8) {
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
  }
  if (w == 4) {
    uint32_t v;
    memcpy(&v, b + off, 4);
    return v;
  }
  return rd(b, off, w);
}

static uint64_t ref(const struct lj_layout *lo, uint64_t r)
{
  return lo->gc64 ? r & lo->gcvmask : (uint32_t)r;
}

static int rd_mem(struct ctx *c, uint64_t addr, void *buf, size_t len)
{
  return mem_read(c->mem, addr, buf, len);
}

#define WIN (64u << 10)

/* [addr, addr + len) in the copy (mem_copy_ptr), or NULL */
static const uint8_t *cptr(struct ctx *c, uint64_t addr, size_t len)
{
  if (c->wptr && addr - c->wbase < WIN && len <= WIN - (addr - c->wbase))
    return c->wptr + (addr - c->wbase);
  uint64_t base = addr & ~(uint64_t)(WIN - 1);
  if (len <= WIN - (addr - base) && base != c->wbad) {
    const uint8_t *p = mem_copy_ptr(c->mem, base, WIN);
    if (p) {
      c->wbase = base;
      c->wptr = p;
      return p + (addr - base);
    }
    c->wbad = base;
  }
  return mem_copy_ptr(c->mem, addr, len);
}

/* -- Labels ----------------------------------------------------------------- */

static int ident(const char *s)
{
  if (!*s || (*s >= '0' && *s <= '9'))
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_'))
      return 0;
  return 1;
}

/* A hash key as Lua would index with it: .name, ["a b"], [3], [true], [table] */
static void key_label(struct ctx *c, uint64_t key, char *buf, size_t cap)
{
  const struct lj_layout *lo = c->lo;
  uint8_t gct = 0;
  uint64_t o = tv_obj(lo, key, &gct);
  if (o && gct == lo->gct.str) {
    char s[KEY_TEXT + 1];
    uint8_t hd[32];
    if (lo->str.size <= sizeof hd && !rd_mem(c, o, hd, lo->str.size) &&
        !lj_read_str(c->vm, o, s, sizeof s)) {
      uint32_t len = (uint32_t)ld(hd, lo->str.len, 4);
      const char *more = len > KEY_TEXT ? "..." : "";
      /* (bytes that are no text as \xNN: a label goes through JSON and back unchanged) */
      char e[4 * KEY_TEXT + 1];
      text_escape(e, sizeof e, s);
      if (ident(s) && !more[0])
        fmt(buf, cap, ".%s", e);
      else
        fmt(buf, cap, "[\"%s%s\"]", e, more);
      return;
    }
    fmt(buf, cap, "[string]");
    return;
  }
  if (o) {
    static const char *const names[] = { "string", "upvalue", "thread", "proto", "function",
                                         "trace", "cdata", "table", "userdata" };
    fmt(buf, cap, "[%s]", names[gct - lo->gct.str]);
    return;
  }
  uint32_t it = lo->gc64 ? (uint32_t)((int64_t)key >> 47) : (uint32_t)(key >> 32);
  if (~it == 1 || ~it == 2) {
    fmt(buf, cap, "[%s]", ~it == 2 ? "true" : "false");
    return;
  }
  double d;
  memcpy(&d, &key, 8);
  if (isfinite(d) && d == (double)(int64_t)d && fabs(d) < 1e15)
    fmt(buf, cap, "[%" PRId64 "]", (int64_t)d);
  else
    fmt(buf, cap, "[%g]", d);
}

/* -- Tables ----------------------------------------------------------------- */

struct tab {
  uint64_t addr, array, node, mt;
  uint32_t asize, hmask;
  int8_t colo;
};

static int read_tab(struct ctx *c, uint64_t addr, struct tab *t)
{
  const struct lj_layout *lo = c->lo;
  uint8_t buf[128];
  /* (in place in the copy when it is there: no copy of it) */
  const uint8_t *b = cptr(c, addr, lo->tab.size);
  if (!b && (lo->tab.size > sizeof buf || rd_mem(c, addr, buf, lo->tab.size)))
    return -VMS_E_BADDATA;
  if (!b)
    b = buf;
  if (b[lo->L.gct] != lo->gct.tab)
    return -VMS_E_BADDATA;
  t->addr = addr;
  t->array = ld(b, lo->tab.array, lo->mref_size);
  t->node = ld(b, lo->tab.node, lo->mref_size);
  t->mt = ref(lo, ld(b, lo->tab.metatable, lo->gcref_size));
  t->asize = (uint32_t)ld(b, lo->tab.asize, 4);
  t->hmask = (uint32_t)ld(b, lo->tab.hmask, 4);
  t->colo = (int8_t)b[lo->tab.colo];
  if (t->asize > (1u << 27) || t->hmask > (1u << 27))
    return -VMS_E_BADDATA;
  return 0;
}

static uint64_t tab_size(const struct lj_layout *lo, const struct tab *t)
{
  uint64_t s = lo->tab.size;
  if (t->hmask)
    s += (uint64_t)(t->hmask + 1) * lo->node.size;
  if (t->asize && t->colo <= 0)
    s += (uint64_t)t->asize * lo->tv_size;
  if (t->colo)
    s += (uint64_t)(t->colo & 0x7f) * lo->tv_size;
  return s;
}

/* The table's bytes of [addr, addr + len): straight from the copy, or read into *own. */
static const uint8_t *bytes_at(struct ctx *c, uint64_t addr, size_t len, uint8_t **own)
{
  *own = NULL;
  const uint8_t *p = cptr(c, addr, len);
  if (p)
    return p;
  if (!(*own = malloc(len ? len : 1)))
    return NULL;
  if (rd_mem(c, addr, *own, len)) {
    free(*own);
    *own = NULL;
    return NULL;
  }
  return *own;
}

/* __mode of a metatable: 1 weak keys, 2 weak values */
static uint8_t weak_mode(struct ctx *c, uint64_t mt)
{
  const struct lj_layout *lo = c->lo;
  size_t slot = (size_t)(mt >> 4) % MODE_CACHE;
  if (c->modes[slot].mt == mt)
    return c->modes[slot].mode;
  uint8_t mode = 0;
  struct tab t;
  if (!read_tab(c, mt, &t) && t.hmask && t.hmask < 4096) {
    uint8_t *own;
    size_t len = (size_t)(t.hmask + 1) * lo->node.size;
    const uint8_t *nodes = bytes_at(c, t.node, len, &own);
    for (uint32_t i = 0; nodes && i <= t.hmask; i++) {
      const uint8_t *nd = nodes + (size_t)i * lo->node.size;
      uint8_t g1 = 0, g2 = 0;
      uint64_t k = tv_obj(lo, ld(nd, lo->node.key, 8), &g1);
      uint64_t v = tv_obj(lo, ld(nd, lo->node.val, 8), &g2);
      char ks[8], vs[8];
      if (k && g1 == lo->gct.str && v && g2 == lo->gct.str && !lj_read_str(c->vm, k, ks, sizeof ks) &&
          !strcmp(ks, "__mode") && !lj_read_str(c->vm, v, vs, sizeof vs)) {
        mode = (uint8_t)((strchr(vs, 'k') ? 1 : 0) | (strchr(vs, 'v') ? 2 : 0));
        break;
      }
    }
    free(own);
  }
  c->modes[slot].mt = mt;
  c->modes[slot].mode = mode;
  return mode;
}

static void table(struct ctx *c, uint64_t addr)
{
  const struct lj_layout *lo = c->lo;
  struct tab t;
  if (read_tab(c, addr, &t)) {
    heap_object(c->h, addr, c->ty[lo->gct.tab], lo->tab.size, NULL);
    return;
  }
  heap_object(c->h, addr, c->ty[lo->gct.tab], tab_size(lo, &t), NULL);
  uint8_t mode = 0;
  if (t.mt) {
    heap_edge(c->h, addr, t.mt, "metatable");
    mode = weak_mode(c, t.mt);
  }
  uint8_t *own_a = NULL, *own_n = NULL;
  const uint8_t *arr = t.asize ? bytes_at(c, t.array, (size_t)t.asize * lo->tv_size, &own_a) : NULL;
  const uint8_t *nodes = t.hmask ? bytes_at(c, t.node, (size_t)(t.hmask + 1) * lo->node.size, &own_n) : NULL;
  /* how many children: a container with many is one "[*]"/"{*}" */
  size_t kids = 0;
  for (uint32_t i = 0; arr && i < t.asize; i++) {
    uint8_t g;
    kids += tv_obj(lo, ld(arr, (size_t)i * lo->tv_size, 8), &g) != 0;
  }
  for (uint32_t i = 0; nodes && i <= t.hmask; i++) {
    const uint8_t *nd = nodes + (size_t)i * lo->node.size;
    uint8_t g;
    kids += tv_obj(lo, ld(nd, lo->node.val, 8), &g) != 0;
  }
  int many = kids > HEAP_NAMED_MAX;
  char label[KEY_TEXT + 16];
  if (!(mode & 2))
    for (uint32_t i = 0; arr && i < t.asize; i++) {
      uint8_t g;
      uint64_t v = tv_obj(lo, ld(arr, (size_t)i * lo->tv_size, 8), &g);
      if (!v)
        continue;
      if (!many)
        fmt(label, sizeof label, "[%u]", i);
      heap_edge(c->h, addr, v, many ? "[*]" : label);
    }
  for (uint32_t i = 0; nodes && i <= t.hmask; i++) {
    const uint8_t *nd = nodes + (size_t)i * lo->node.size;
    uint8_t gv = 0, gk = 0;
    uint64_t tv = ld(nd, lo->node.val, 8), tk = ld(nd, lo->node.key, 8);
    uint32_t itv = lo->gc64 ? (uint32_t)((int64_t)tv >> 47) : (uint32_t)(tv >> 32);
    if (~itv == 0)
      continue;   /* nil value: an empty node */
    uint64_t v = tv_obj(lo, tv, &gv), k = tv_obj(lo, tk, &gk);
    if (v && !(mode & 2)) {
      if (!many)
        key_label(c, tk, label, sizeof label);
      heap_edge(c->h, addr, v, many ? "{*}" : label);
    }
    if (k && !(mode & 1))
      heap_edge(c->h, addr, k, "(key)");
  }
  free(own_a);
  free(own_n);
}

/* -- Other objects ------------------------------------------------------------ */

static void func(struct ctx *c, uint64_t addr, const uint8_t *b)
{
  const struct lj_layout *lo = c->lo;
  uint8_t ffid = b[lo->fn.ffid], nup = b[lo->fn.nupvalues];
  uint64_t env = ref(lo, ld(b, lo->fn.env, lo->gcref_size));
  int isLua = ffid == lo->ff_lua;
  uint64_t size = isLua ? (uint64_t)lo->fn.lsize - lo->gcref_size + (uint64_t)lo->gcref_size * nup
                        : (uint64_t)lo->fn.csize - lo->tv_size + (uint64_t)lo->tv_size * nup;
  heap_object(c->h, addr, c->ty[lo->gct.func], size, NULL);
  if (env)
    heap_edge(c->h, addr, env, "env");
  if (isLua) {
    uint64_t pc = ld(b, lo->fn.pc, lo->mref_size);
    struct proto p;
    int have = pc > lo->pt.size && !lj_read_proto(c->vm, pc - lo->pt.size, &p);
    if (have)
      heap_edge(c->h, addr, p.addr, "proto");
    uint64_t uv[256];
    size_t w = lo->gcref_size;
    uint8_t raw[256 * 8];
    if (nup && !rd_mem(c, addr + lo->fn.l_uvptr, raw, (size_t)nup * w))
      for (uint8_t i = 0; i < nup; i++) {
        uv[i] = ref(lo, ld(raw, (size_t)i * w, w));
        char nm[80], label[96];
        if (!have || lj_upvalue_name(c->vm, &p, i, nm, sizeof nm))
          fmt(nm, sizeof nm, "%u", i);
        fmt(label, sizeof label, "upvalue %s", nm);
        heap_edge(c->h, addr, uv[i], label);
      }
  } else {
    uint8_t raw[256 * 16];
    if (nup && !rd_mem(c, addr + lo->fn.c_upvalue, raw, (size_t)nup * lo->tv_size))
      for (uint8_t i = 0; i < nup; i++) {
        uint8_t g;
        uint64_t v = tv_obj(lo, ld(raw, (size_t)i * lo->tv_size, 8), &g);
        char label[32];
        fmt(label, sizeof label, "upvalue %u", i + 1);
        if (v)
          heap_edge(c->h, addr, v, label);
      }
  }
}

static void proto(struct ctx *c, uint64_t addr)
{
  const struct lj_layout *lo = c->lo;
  struct proto p;
  uint8_t b[256];
  if (lj_read_proto(c->vm, addr, &p) || lo->pt.size > sizeof b || rd_mem(c, addr, b, lo->pt.size)) {
    heap_object(c->h, addr, c->ty[lo->gct.proto], lo->pt.size, NULL);
    return;
  }
  heap_object(c->h, addr, c->ty[lo->gct.proto], p.sizept, NULL);
  if (p.chunkname)
    heap_edge(c->h, addr, ref(lo, p.chunkname), "chunkname");
  uint32_t nk = (uint32_t)ld(b, lo->pt.sizekgc, 4);
  size_t w = lo->gcref_size;
  if (nk && nk < (1u << 20)) {
    uint8_t *own;
    const uint8_t *k = bytes_at(c, p.k - (uint64_t)nk * w, (size_t)nk * w, &own);
    for (uint32_t i = 0; k && i < nk; i++) {
      uint64_t o = ref(lo, ld(k, (size_t)i * w, w));
      if (o)
        heap_edge(c->h, addr, o, "constant");
    }
    free(own);
  }
}

/* The names of a thread's stack slots that hold local variables: every frame whose PC is
 * known (all but the innermost of a running thread), by varinfo at that PC, as
 * debug.getlocal would name them. */
#define SLOT_NAMES_MAX 4096

struct slot_name {
  uint64_t addr;
  char label[HEAP_LABEL_MAX];
};

struct slot_names {
  struct ctx *c;
  struct slot_name *v;
  size_t n;
};

static int name_slots(void *arg, uint64_t fn, uint64_t base, uint64_t top, uint64_t pc)
{
  struct slot_names *sn = arg;
  struct lj_vm *vm = sn->c->vm;
  const struct lj_layout *lo = vm->lo;
  uint8_t fb[64];
  struct proto p;
  if (!pc || lo->fn.lsize > sizeof fb || rd_mem(sn->c, fn, fb, lo->fn.lsize) ||
      fb[lo->L.gct] != lo->gct.func || fb[lo->fn.ffid] != lo->ff_lua ||
      lj_read_proto(vm, ld(fb, lo->fn.pc, lo->mref_size) - lo->pt.size, &p))
    return 0;
  int64_t pos = lj_proto_pos(&p, pc);
  if (pos < 0)
    return 0;
  char file[256];
  lj_chunk_name(vm, &p, file, sizeof file);
  const char *f = file[0] == '@' ? file + 1 : file, *slash = strrchr(f, '/');
  if (slash && file[0] == '@')
    f = slash + 1;
  for (uint32_t slot = 0; slot < 256 && base + 8ull * slot < top; slot++) {
    char nm[64];
    if (sn->n == SLOT_NAMES_MAX)
      return 1;
    if (lj_local_name(vm, &p, pos, slot, nm, sizeof nm))
      continue;
    struct slot_name *s = &sn->v[sn->n++];
    s->addr = base + 8ull * slot;
    if (p.firstline)
      fmt(s->label, sizeof s->label, "local %s (%s:%d)", nm, f, p.firstline);
    else
      fmt(s->label, sizeof s->label, "local %s (%s main chunk)", nm, f);
  }
  return 0;
}

static int by_slot_addr(const void *a, const void *b)
{
  const struct slot_name *x = a, *y = b;
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void thread(struct ctx *c, uint64_t addr)
{
  const struct lj_layout *lo = c->lo;
  uint8_t b[256];
  if (lo->L.size > sizeof b || rd_mem(c, addr, b, lo->L.size)) {
    heap_object(c->h, addr, c->ty[lo->gct.thread], lo->L.size, NULL);
    return;
  }
  uint32_t stacksize = (uint32_t)ld(b, lo->L.stacksize, 4);
  uint64_t stack = ld(b, lo->L.stack, lo->mref_size), top = ld(b, lo->L.top, lo->mref_size);
  /* (the main thread is the head of the GG_State: the VM's one allocation with g, the JIT
   * state and the dispatch table) */
  heap_object(c->h, addr, c->ty[lo->gct.thread],
              (addr == c->mainL ? c->gg_size : lo->L.size) +
              (uint64_t)lo->tv_size * (stacksize < (1u << 26) ? stacksize : 0), NULL);
  uint64_t env = ref(lo, ld(b, lo->L.env, lo->gcref_size));
  if (env)
    heap_edge(c->h, addr, env, "env");
  if (top > stack && top - stack <= (uint64_t)stacksize * lo->tv_size) {
    uint8_t *own;
    const uint8_t *s = bytes_at(c, stack, (size_t)(top - stack), &own);
    /* the slots' names (what the frame walk named before any error), by address */
    struct slot_names sn = { c, s && addr != c->stale_L ? malloc(SLOT_NAMES_MAX * sizeof *sn.v)
                                                        : NULL, 0 };
    if (sn.v) {
      lj_each_frame(c->vm, addr, name_slots, &sn);
      qsort(sn.v, sn.n, sizeof *sn.v, by_slot_addr);
    }
    size_t k = 0;
    for (uint64_t i = 0; s && i < (top - stack) / lo->tv_size; i++) {
      uint8_t g;
      uint64_t v = tv_obj(lo, ld(s, (size_t)i * lo->tv_size, 8), &g);
      uint64_t at = stack + i * lo->tv_size;
      while (k < sn.n && sn.v[k].addr < at)
        k++;
      if (v)
        heap_edge(c->h, addr, v, k < sn.n && sn.v[k].addr == at ? sn.v[k].label : "stack");
    }
    free(sn.v);
    free(own);
  }
  /* open upvalues: chained through nextgc from openupval */
  uint64_t uv = ref(lo, ld(b, lo->L.openupval, lo->gcref_size));
  for (size_t n = 0; uv && n < (1u << 20); n++) {
    uint8_t u[64];
    if (lo->uv.size > sizeof u || rd_mem(c, uv, u, lo->uv.size) || u[lo->L.gct] != lo->gct.upval)
      break;
    heap_object(c->h, uv, c->ty[lo->gct.upval], lo->uv.size, NULL);
    heap_edge(c->h, addr, uv, "open upvalue");
    uint64_t next = ref(lo, ld(u, 0, lo->gcref_size));
    if (next == uv)
      break;
    uv = next;
  }
}

static void upval(struct ctx *c, uint64_t addr, const uint8_t *b)
{
  const struct lj_layout *lo = c->lo;
  heap_object(c->h, addr, c->ty[lo->gct.upval], lo->uv.size, NULL);
  uint8_t u[64];
  if (b[lo->uv.closed] && lo->uv.size <= sizeof u && !rd_mem(c, addr, u, lo->uv.size)) {
    uint8_t g;
    uint64_t v = tv_obj(lo, ld(u, lo->uv.tv, 8), &g);
    if (v)
      heap_edge(c->h, addr, v, "");   /* (the upvalue's name is on the function's edge) */
  }
}

static void udata(struct ctx *c, uint64_t addr)
{
  const struct lj_layout *lo = c->lo;
  uint8_t b[64];
  if (lo->ud.size > sizeof b || rd_mem(c, addr, b, lo->ud.size)) {
    heap_object(c->h, addr, c->ty[lo->gct.udata], lo->ud.size, NULL);
    return;
  }
  uint32_t len = (uint32_t)ld(b, lo->ud.len, 4);
  heap_object(c->h, addr, c->ty[lo->gct.udata], lo->ud.size + (uint64_t)len, NULL);
  uint64_t env = ref(lo, ld(b, lo->ud.env, lo->gcref_size));
  uint64_t mt = ref(lo, ld(b, lo->ud.metatable, lo->gcref_size));
  if (env)
    heap_edge(c->h, addr, env, "env");
  if (mt)
    heap_edge(c->h, addr, mt, "metatable");
}

static void trace(struct ctx *c, uint64_t addr)
{
  const struct lj_layout *lo = c->lo;
  uint8_t b[256];
  if (lo->tr.size > sizeof b || rd_mem(c, addr, b, lo->tr.size)) {
    heap_object(c->h, addr, c->ty[lo->gct.trace], lo->tr.size, NULL);
    return;
  }
  uint32_t nins = (uint32_t)ld(b, lo->tr.nins, 4), nk = (uint32_t)ld(b, lo->tr.nk, 4);
  uint32_t nsnap = (uint32_t)ld(b, lo->tr.nsnap, lo->tr.nsnap_w);
  uint32_t nsnapmap = (uint32_t)ld(b, lo->tr.nsnapmap, lo->tr.nsnapmap_w);
  uint64_t size = ((uint64_t)lo->tr.size + 7) & ~7ull;
  if (nins >= nk && nins - nk < (1u << 24))
    size += 8ull * (nins - nk) + 12ull * nsnap + 4ull * nsnapmap;
  heap_object(c->h, addr, c->ty[lo->gct.trace], size, NULL);
  uint64_t pt = ref(lo, ld(b, lo->tr.startpt, lo->gcref_size));
  if (pt)
    heap_edge(c->h, addr, pt, "start");
}

/* -- C data ------------------------------------------------------------------- */

/* The FFI's state at cts (none until the FFI is loaded): its C type table, kept for the sizes
 * of cdata, and an object of its own (rooted with the others) with its allocations (the
 * state, the C type table, the callbacks' type ids) and its references to the names of C
 * types and keywords: fixed strings that nothing else holds. */
static void ctypes_load(struct ctx *c, uint64_t cts)
{
  const struct lj_layout *lo = c->lo;
  uint8_t b[1024];
  if (!cts || !lo->ct.size || lo->ct.size_ptr > 8 || lo->ct.state_size > sizeof b ||
      rd_mem(c, cts, b, lo->ct.state_size))
    return;
  uint64_t tab = ld(b, lo->ct.tab, lo->ct.size_ptr);
  uint32_t top = (uint32_t)ld(b, lo->ct.top, 4), sizetab = (uint32_t)ld(b, lo->ct.sizetab, 4);
  uint32_t sizeid = (uint32_t)ld(b, lo->ct.sizeid, 4);
  uint64_t ids = ld(b, lo->ct.cbid, lo->ct.size_ptr);
  if (!top || top > sizetab || sizetab > (uint64_t)lo->ct.mask_cid + 1)
    return;
  c->ct = bytes_at(c, tab, (size_t)top * lo->ct.size, &c->ct_own);
  c->ct_top = c->ct ? top : 0;
  uint64_t size = lo->ct.state_size + (uint64_t)sizetab * lo->ct.size;
  if (ids && sizeid <= lo->ct.mask_cid + 1)
    size += (uint64_t)sizeid * lo->ct.id1_size;
  heap_object(c->h, cts, heap_type(c->h, "FFI C types"), size, NULL);
  c->cts = cts;
  for (uint32_t i = 0; c->ct && i < c->ct_top; i++) {
    uint64_t o = ref(lo, ld(c->ct, (size_t)i * lo->ct.size + lo->ct.name, lo->gcref_size));
    if (o)
      heap_edge(c->h, cts, o, "(C type name)");
  }
}

static void ctypes_drop(struct ctx *c)
{
  free(c->ct_own);
  c->ct_own = NULL;
  c->ct = NULL;
  c->ct_top = 0;
  c->cts = 0;
}

/* What lj_cdata_free gives back: a variable-sized (or realigned) cdata's whole allocation,
 * which begins before the header, as the GCcdataVar in front of the header describes it;
 * another the header and its C type's size (a pointer's for one without a size: functions),
 * the type reached through its attribute chain. Unreadable or implausible data gives the
 * header and a pointer, the size of the commonest cdata (boxed integers and pointers). */
static uint64_t cdata_size(struct ctx *c, uint64_t addr, const uint8_t *hd)
{
  const struct lj_layout *lo = c->lo;
  uint64_t fallback = (uint64_t)lo->cd.size + lo->ct.size_ptr;
  if (hd[lo->cd.marked] & lo->cd.vbit) {
    uint8_t v[16];
    if (lo->cd.v_size > sizeof v || addr < lo->cd.v_size ||
        rd_mem(c, addr - lo->cd.v_size, v, lo->cd.v_size))
      return fallback;
    uint32_t offset = (uint32_t)ld(v, lo->cd.v_offset, 2);
    uint32_t extra = (uint32_t)ld(v, lo->cd.v_extra, 2), len = (uint32_t)ld(v, lo->cd.v_len, 4);
    /* (the GCcdataVar and the header lie inside the allocation's extra bytes) */
    if (offset < lo->cd.v_size || (uint64_t)offset + lo->cd.size > extra || len > CT_SIZE_MAX)
      return fallback;
    return (uint64_t)len + extra;
  }
  uint32_t id = (uint32_t)ld(hd, lo->cd.ctypeid, 2);
  for (int n = 0; c->ct && id < c->ct_top && n < CT_CHAIN_MAX; n++) {
    const uint8_t *ct = c->ct + (size_t)id * lo->ct.size;
    uint32_t info = (uint32_t)ld(ct, lo->ct.info, 4), type = info >> lo->ct.shift_num;
    if (type != lo->ct.attrib) {
      uint32_t size = type <= lo->ct.hassize ? (uint32_t)ld(ct, lo->ct.ctsize, 4)
                                              : lo->ct.size_ptr;
      return size <= CT_SIZE_MAX ? lo->cd.size + (uint64_t)size : fallback;
    }
    id = info & lo->ct.mask_cid;
  }
  return fallback;
}

/* One object of gc.root's (or mmudata's) list. */
static void object(struct ctx *c, uint64_t addr, const uint8_t *hd)
{
  const struct lj_layout *lo = c->lo;
  uint8_t gct = hd[lo->L.gct];
  if (gct == lo->gct.tab) {
    table(c, addr);
  } else if (gct == lo->gct.func) {
    uint8_t b[128];
    size_t len = lo->fn.csize > lo->fn.lsize ? lo->fn.csize : lo->fn.lsize;
    if (len <= sizeof b && !rd_mem(c, addr, b, len))
      func(c, addr, b);
    else
      c->err = -VMS_E_BADDATA;
  } else if (gct == lo->gct.proto) {
    proto(c, addr);
  } else if (gct == lo->gct.thread) {
    thread(c, addr);
  } else if (gct == lo->gct.upval) {
    upval(c, addr, hd);
  } else if (gct == lo->gct.udata) {
    udata(c, addr);
  } else if (gct == lo->gct.trace) {
    trace(c, addr);
  } else if (gct == lo->gct.cdata) {
    heap_object(c->h, addr, c->ty[lo->gct.cdata], cdata_size(c, addr, hd), NULL);
  } else {
    c->err = -VMS_E_BADDATA;
  }
}

/* A list through nextgc (gc.root, a string chain, mmudata), bounded, cycles caught. */
static int walk_list(struct ctx *c, uint64_t first, uint64_t stop, int strings)
{
  const struct lj_layout *lo = c->lo;
  uint64_t obj = first, mark = first;
  size_t power = 1;
  const uint8_t *at = NULL;   /* obj's header in the copy, when it is there */
  for (size_t n = 0; obj && obj != stop; n++) {
    if (n > OBJ_LIST_MAX || heap_full(c->h))
      return -VMS_E_TRUNCATED;
    if (n == power) {
      mark = obj;
      power *= 2;
    } else if (n && obj == mark) {
      return -VMS_E_CYCLE;
    }
    uint8_t buf[64];
    size_t hl = strings ? lo->str.size : 16;
    const uint8_t *hd = at;
    if (hl > sizeof buf || (!hd && rd_mem(c, obj, buf, hl)))
      return -VMS_E_BADDATA;
    if (!hd)
      hd = buf;
    /* the next object is fetched while this one is looked at (the list is a chain of
     * cache misses) */
    uint64_t next = ref(lo, ld(hd, 0, lo->gcref_size));
    at = next && next != stop ? cptr(c, next, hl) : NULL;
    if (at) {
      __builtin_prefetch(at);
      __builtin_prefetch(at + 64);   /* (a table's header and array run on; never faults) */
    }
    if (strings) {
      if (hd[lo->L.gct] != lo->gct.str)
        return -VMS_E_BADDATA;
      uint32_t len = (uint32_t)ld(hd, lo->str.len, 4);
      heap_object(c->h, obj, c->ty[lo->gct.str], lo->str.size + ((len + 4ull) & ~3ull), NULL);
    } else {
      object(c, obj, hd);
    }
    if (next == obj)
      return -VMS_E_CYCLE;
    obj = next;
  }
  return 0;
}

static int one_G(struct ctx *c, uint64_t G, const char *tag)
{
  const struct lj_layout *lo = c->lo;
  uint8_t g[4096];
  if (lo->g.size > sizeof g || rd_mem(c, G, g, lo->g.size))
    return -VMS_E_BADDATA;
  size_t w = lo->gcref_size;
  /* the VM's state itself (GG_State: L, g, J, dispatch) and its string table */
  uint64_t GG = G - lo->gg.g, mask = ld(g, lo->g.str_mask, 4), strtab = ld(g, lo->g.str_tab, 8);
  char label[64];
  c->mainL = GG;
  c->gg_size = lo->gg.size;
  /* the running thread's L->base is current only while it is in C (the interpreter and
   * traces keep BASE in a register): its slots are named then only */
  int32_t vmstate = (int32_t)ld(g, lo->g.vmstate, 4);
  c->stale_L = vmstate == ~(int32_t)lo->vmst.c ? 0 : ref(lo, ld(g, lo->g.cur_L, w));
  ctypes_drop(c);
  ctypes_load(c, ld(g, lo->g.ctype_state, lo->mref_size));
  if (mask < (1u << 28)) {
    heap_object(c->h, strtab, heap_type(c->h, "string table"), (mask + 1) * w, NULL);
    fmt(label, sizeof label, "%s(string table)", tag);
    heap_root(c->h, strtab, label);
  }
  uint64_t total = ld(g, lo->g.gc_total, lo->g.gc_total_size);
  /* the objects */
  int r = walk_list(c, ref(lo, ld(g, lo->g.gc_root, w)), 0, 0);
  if (!r && mask < (1u << 28)) {
    uint8_t *own;
    const uint8_t *tab = bytes_at(c, strtab, (mask + 1) * w, &own);
    for (uint64_t i = 0; tab && !r && i <= mask; i++)
      r = walk_list(c, ref(lo, ld(tab, i * w, w)) & ~1ull, 0, 1);
    free(own);
  }
  uint64_t mmu = ref(lo, ld(g, lo->g.gc_mmudata, w));
  if (!r && mmu) {
    /* circular: mmudata is the last; the first is its nextgc */
    uint64_t first = 0;
    if (!rd_mem(c, mmu, &first, w))
      r = walk_list(c, ref(lo, first), mmu, 0);
    uint8_t hd[16];
    if (!r && !rd_mem(c, mmu, hd, sizeof hd))
      object(c, mmu, hd);
  }
  /* roots: _G first (its paths are the ones people know), then the registry */
  uint64_t mainL = GG;
  uint8_t Lb[256];
  if (mainL && lo->L.size <= sizeof Lb && !rd_mem(c, mainL, Lb, lo->L.size)) {
    uint64_t env = ref(lo, ld(Lb, lo->L.env, w));
    fmt(label, sizeof label, "%s_G", tag);
    if (env)
      heap_root(c->h, env, label);
  }
  uint8_t gct;
  uint64_t reg = tv_obj(lo, ld(g, lo->g.registrytv, 8), &gct);
  fmt(label, sizeof label, "%sregistry", tag);
  if (reg)
    heap_root(c->h, reg, label);
  fmt(label, sizeof label, "%smain thread", tag);
  if (mainL)
    heap_root(c->h, mainL, label);
  uint64_t curL = ref(lo, ld(g, lo->g.cur_L, w));
  fmt(label, sizeof label, "%srunning coroutine", tag);
  if (curL && curL != mainL)
    heap_root(c->h, curL, label);
  fmt(label, sizeof label, "%s(VM names and metatables)", tag);
  for (size_t i = 0; i < lo->gcroot_max; i++) {
    uint64_t o = ref(lo, ld(g, lo->g.gcroot + i * w, w));
    if (o)
      heap_root(c->h, o, label);
  }
  fmt(label, sizeof label, "%s(FFI C types)", tag);
  if (c->cts)
    heap_root(c->h, c->cts, label);
  /* the JIT's traces */
  uint64_t J = GG + lo->gg.J;
  uint8_t jb[64];
  if (lo->J.sizetrace && !rd_mem(c, J + lo->J.trace, jb, 8) &&
      !rd_mem(c, J + lo->J.sizetrace, jb + 8, 4)) {
    uint64_t tr = ld(jb, 0, 8);
    uint32_t n = (uint32_t)ld(jb, 8, 4);
    uint8_t *own;
    const uint8_t *v = n && n < 65536 ? bytes_at(c, tr, (size_t)n * w, &own) : NULL;
    fmt(label, sizeof label, "%sJIT traces", tag);
    for (uint32_t i = 0; v && i < n; i++) {
      uint64_t o = ref(lo, ld(v, (size_t)i * w, w));
      if (o)
        heap_root(c->h, o, label);
    }
    if (v)
      free(own);
  }
  c->bytes += total;
  ctypes_drop(c);
  return r;
}

int lj_heap(void *vmv, struct target *t, struct heap *h)
{
  struct lj_vm *vm = vmv;
  const struct lj_layout *lo = vm->lo;
  struct ctx *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->vm = vm;
  c->lo = lo;
  c->mem = t->mem;
  c->h = h;
  static const char *const names[] = { "string", "upvalue", "thread", "proto", "function",
                                       "trace", "cdata", "table", "userdata" };
  for (uint8_t i = 0; i < 9; i++)
    c->ty[(lo->gct.str + i) & 15] = heap_type(h, names[i]);
  /* every VM of the process (a host may run several), found by their dispatch tables */
  uint64_t Gs[16];
  size_t nG = lj_scan_G(vm, Gs, sizeof Gs / sizeof *Gs);
  if (!nG && vm->G && lj_check_G(vm, vm->G))
    Gs[nG++] = vm->G;
  int r = nG ? 0 : -VMS_E_NORUNTIME;
  for (size_t i = 0; i < nG && (!r || r == -VMS_E_TRUNCATED); i++) {
    char tag[32] = "";
    if (nG > 1)
      fmt(tag, sizeof tag, "VM %zu: ", i + 1);
    int e = one_G(c, Gs[i], tag);
    r = r ? r : e;
  }
  heap_vm_total(h, c->bytes, 0, "gc.total");
  if (!r)
    r = c->err;
  free(c);
  return r;
}

/* The key under which table `from` holds `to`, read from the process as it is now. */
int lj_heap_label(void *vmv, struct target *t, uint64_t from, uint64_t to, char *buf,
                  size_t cap)
{
  struct lj_vm *vm = vmv;
  const struct lj_layout *lo = vm->lo;
  struct ctx *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->vm = vm;
  c->lo = lo;
  c->mem = t->mem;
  struct tab tb;
  int r = -ENOENT;
  if (!read_tab(c, from, &tb)) {
    uint8_t *own = NULL;
    const uint8_t *arr = tb.asize && tb.asize < (1u << 24)
                             ? bytes_at(c, tb.array, (size_t)tb.asize * lo->tv_size, &own) : NULL;
    for (uint32_t i = 0; arr && i < tb.asize && r; i++) {
      uint8_t g;
      if (tv_obj(lo, ld(arr, (size_t)i * lo->tv_size, 8), &g) == to) {
        fmt(buf, cap, "[%u]", i);
        r = 0;
      }
    }
    free(own);
    own = NULL;
    const uint8_t *nodes = r && tb.hmask && tb.hmask < (1u << 24)
        ? bytes_at(c, tb.node, (size_t)(tb.hmask + 1) * lo->node.size, &own) : NULL;
    for (uint32_t i = 0; nodes && i <= tb.hmask && r; i++) {
      const uint8_t *nd = nodes + (size_t)i * lo->node.size;
      uint8_t g;
      if (tv_obj(lo, ld(nd, lo->node.val, 8), &g) == to) {
        key_label(c, ld(nd, lo->node.key, 8), buf, cap);
        r = 0;
      }
    }
    free(own);
  }
  free(c);
  return r;
}
