/* Names of LuaJIT builtins (fast functions) and C functions, from package.loaded.
 *
 * Builtins are numbered per build (lj_ffdef.h) and their handlers are unnamed in a
 * stripped binary, but every one of them is a unique GCfunc reachable as
 * registry._LOADED[module][key]: walking those tables once gives "table.sort" for the
 * function object, whatever the build. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lj_vm.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"
#include "vmstack/util.h"

#define NODES_MAX 4096     /* hash nodes of one table read at most */
#define NAMES_MAX 4096

/* The GC object a TValue holds, if it is of type gct (else 0). */
static uint64_t tv_gc(const struct lj_layout *lo, uint64_t tv, uint8_t gct)
{
  if (lo->gc64)
    return (uint32_t)((int64_t)tv >> 47) == ~(uint32_t)gct ? tv & lo->gcvmask : 0;
  return (uint32_t)(tv >> 32) == ~(uint32_t)gct ? (uint32_t)tv : 0;
}

static int str_eq_read(struct lj_vm *vm, uint64_t s, char *buf, size_t cap)
{
  const struct lj_layout *lo = vm->lo;
  uint8_t h[32];
  if (lo->str.size > sizeof h || mem_read(vm->t->mem, s, h, lo->str.size) ||
      h[lo->L.gct] != lo->gct.str)
    return -1;
  uint32_t len = (uint32_t)rd(h, lo->str.len, 4);
  if (len >= cap || mem_read(vm->t->mem, s + lo->str.size, buf, len))
    return -1;
  buf[len] = 0;
  return (int)len;
}

/* Call fn(key, value) for every string key of a table's hash part. */
static void tab_each(struct lj_vm *vm, uint64_t t,
                     void (*fn)(struct lj_vm *vm, const char *key, uint64_t val, void *arg),
                     void *arg)
{
  const struct lj_layout *lo = vm->lo;
  uint8_t th[128];
  if (lo->tab.size > sizeof th || mem_read(vm->t->mem, t, th, lo->tab.size) ||
      th[lo->L.gct] != lo->gct.tab)
    return;
  uint64_t node = rd(th, lo->tab.node, lo->mref_size);
  uint32_t n = (uint32_t)rd(th, lo->tab.hmask, 4) + 1;
  if (!node || n > NODES_MAX)
    return;
  uint8_t *nodes = malloc((size_t)n * lo->node.size);
  if (!nodes)
    return;
  if (!mem_read(vm->t->mem, node, nodes, (size_t)n * lo->node.size)) {
    for (uint32_t i = 0; i < n; i++) {
      const uint8_t *nd = nodes + (size_t)i * lo->node.size;
      uint64_t ks = tv_gc(lo, rd(nd, lo->node.key, 8), lo->gct.str);
      char key[64];
      if (ks && str_eq_read(vm, ks, key, sizeof key) > 0)
        fn(vm, key, rd(nd, lo->node.val, 8), arg);
    }
  }
  free(nodes);
}

struct modctx {
  const char *mod;
};

static void add_fn(struct lj_vm *vm, const char *key, uint64_t val, void *arg)
{
  const struct modctx *mc = arg;
  uint64_t fn = tv_gc(vm->lo, val, vm->lo->gct.func);
  if (!fn || vm->nnames >= NAMES_MAX)
    return;
  if (vm->nnames == vm->capnames) {
    size_t nc = vm->capnames ? vm->capnames * 2 : 256;
    struct lj_name *nn = realloc(vm->names, nc * sizeof *nn);
    if (!nn)
      return;
    vm->names = nn;
    vm->capnames = nc;
  }
  struct lj_name *n = &vm->names[vm->nnames++];
  n->fn = fn;
  if (!strcmp(mc->mod, "_G"))
    snprintf(n->name, sizeof n->name, "%.63s", key);
  else
    snprintf(n->name, sizeof n->name, "%.30s.%.32s", mc->mod, key);
  /* target bytes: printable ASCII only (names reach terminals and profiles) */
  for (char *q = n->name; *q; q++)
    if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
      *q = '?';
}

static void add_mod(struct lj_vm *vm, const char *key, uint64_t val, void *arg)
{
  (void)arg;
  uint64_t t = tv_gc(vm->lo, val, vm->lo->gct.tab);
  struct modctx mc = { key };
  if (t)
    tab_each(vm, t, add_fn, &mc);
}

static void find_loaded(struct lj_vm *vm, const char *key, uint64_t val, void *arg)
{
  if (!strcmp(key, "_LOADED"))
    *(uint64_t *)arg = tv_gc(vm->lo, val, vm->lo->gct.tab);
}

static int name_cmp(const void *a, const void *b)
{
  const struct lj_name *x = a, *y = b;
  if (x->fn != y->fn)
    return x->fn < y->fn ? -1 : 1;
  /* the shorter name first: "print" before "_G.print"-like duplicates */
  return (int)strlen(x->name) - (int)strlen(y->name);
}

static void build(struct lj_vm *vm)
{
  const struct lj_layout *lo = vm->lo;
  vm->names_built = 1;
  vm->names_ms = clock_ms();
  vm->nnames = 0;
  uint64_t reg = 0, loaded = 0;
  if (!vm->G || mem_read(vm->t->mem, vm->G + lo->g.registrytv, &reg, 8))
    return;
  reg = tv_gc(lo, reg, lo->gct.tab);
  if (!reg)
    return;
  tab_each(vm, reg, find_loaded, &loaded);
  if (!loaded)
    return;
  tab_each(vm, loaded, add_mod, NULL);
  if (vm->nnames)
    qsort(vm->names, vm->nnames, sizeof *vm->names, name_cmp);
}

static const char *lookup(const struct lj_vm *vm, uint64_t fn);

const char *lj_func_name(struct lj_vm *vm, uint64_t fn)
{
  if (!vm->names_built)
    build(vm);
  const char *n = lookup(vm, fn);
  if (!n) {
    /* modules are required as the program goes (an nginx worker's, per request): read
     * package.loaded again, at most once a second */
    if (clock_ms() - vm->names_ms >= 1000) {
      build(vm);
      n = lookup(vm, fn);
    }
  }
  return n;
}

static const char *lookup(const struct lj_vm *vm, uint64_t fn)
{
  size_t lo = 0, hi = vm->nnames;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (vm->names[mid].fn < fn)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < vm->nnames && vm->names[lo].fn == fn ? vm->names[lo].name : NULL;
}
