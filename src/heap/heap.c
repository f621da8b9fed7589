/* The heap graph: objects and labelled references from a runtime's enumeration, resolved
 * into a graph below one virtual root; shortest paths (BFS), dominators (Lengauer and
 * Tarjan), retained sizes, the census, the top retainers and the stacks of the memory flame
 * graph. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/heap.h"
#include "vmstack/util.h"

#define NONE UINT32_MAX
#define DEPTH_MAX 64             /* frames of a flame-graph stack (deeper ones merge) */
#define PATH_STEPS_MAX 24

struct strtab {
  char **s;
  size_t n, cap;
  uint32_t *tab;               /* open addressing: id + 1, 0 empty */
  size_t tcap;
};

struct trie {                  /* the flame graph's stacks: (parent, name) → id */
  uint32_t *parent, *name;
  uint64_t *bytes, *objects;
  size_t n, cap;
  uint32_t *tab;
  size_t tcap;
};

/* What the runtime enumerates, recorded compactly while the process's copy is still held
 * (the largest part of the memory at that time) and decoded once it is gone: varints,
 * addresses as the difference from the one before (objects come in runs through memory,
 * an object's references together, a container's children mostly in order). About 5
 * bytes an object and 4 a reference, where the arrays took 24 and 20. */
struct rec {
  uint8_t *p;
  size_t n, cap;
  uint64_t a, b;               /* the last addresses written (objects: a; edges: from, to) */
};

struct heap {
  struct heap_opts o;
  struct strtab st;
  /* objects as enumerated (orec), then sorted by address (node i + 1) */
  struct rec orec;
  uint64_t *addr, *size;
  uint32_t *type, *cls;
  size_t n;
  /* references (erec) and roots as enumerated (addresses), resolved by heap_analyse */
  struct rec erec;
  size_t ne;
  uint64_t *rto;
  uint32_t *rlab;
  size_t nr, rcap;
  uint64_t *wto;                     /* fallback roots (heap_root_weak) */
  uint32_t *wlab;
  size_t nw, wcap;
  int full;
  uint64_t vm_bytes, vm_objects;
  uint32_t vm_what;
  /* the graph: node 0 the virtual root, node i + 1 object i */
  size_t nn;
  uint32_t *soff, *sdst, *slab;      /* successors (CSR) */
  uint32_t *bparent, *blab;          /* BFS tree: the shortest path's last step */
  uint32_t *idom;                    /* dominator tree */
  uint32_t *dfsparent;               /* depth-first tree (renumber, for the dominators) */
  size_t nrpo;                       /* the reachable: nodes 0 .. nrpo - 1, numbered in
                                        depth-first preorder, each after its idom */
  uint64_t *retained;
  uint32_t *rcount, *maxchild;       /* objects retained; the largest dominated child */
  int analysed;
  heap_label_fn labeler;             /* the very key of a collapsed step (heap_set_labeler) */
  void *labeler_arg;
  uint32_t *nid;                     /* node in address order -> node (renumber) */
  uint32_t *idx;                     /* address index (index_build) */
  size_t idxmask;
  unsigned idxbits;
};

/* -- Strings ---------------------------------------------------------------- */

static int64_t intern(struct strtab *t, const char *s)
{
  if ((t->n + 1) * 2 >= t->tcap) {
    size_t nc = t->tcap ? t->tcap * 2 : 1024;
    uint32_t *nt = calloc(nc, sizeof *nt);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
      size_t j = hash_bytes(t->s[i], strlen(t->s[i]), HASH_SEED) & (nc - 1);
      while (nt[j])
        j = (j + 1) & (nc - 1);
      nt[j] = (uint32_t)i + 1;
    }
    free(t->tab);
    t->tab = nt;
    t->tcap = nc;
  }
  size_t j = hash_bytes(s, strlen(s), HASH_SEED) & (t->tcap - 1);
  while (t->tab[j]) {
    if (!strcmp(t->s[t->tab[j] - 1], s))
      return t->tab[j] - 1;
    j = (j + 1) & (t->tcap - 1);
  }
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 256;
    char **ns = realloc(t->s, nc * sizeof *ns);
    if (!ns)
      return -ENOMEM;
    t->s = ns;
    t->cap = nc;
  }
  char *d = strndup(s, HEAP_LABEL_MAX);
  if (!d)
    return -ENOMEM;
  if (strlen(s) > HEAP_LABEL_MAX) {
    /* (a cut name is looked up by its full text next time: intern what is stored) */
    free(d);
    char cut[HEAP_LABEL_MAX + 4];
    snprintf(cut, sizeof cut, "%.*s...", HEAP_LABEL_MAX - 3, s);
    return intern(t, cut);
  }
  t->s[t->n] = d;
  t->tab[j] = (uint32_t)++t->n;
  return (int64_t)t->n - 1;
}

static void strtab_free(struct strtab *t)
{
  for (size_t i = 0; i < t->n; i++)
    free(t->s[i]);
  free(t->s);
  free(t->tab);
}

static int grow(void **p, size_t size, size_t *cap, size_t need)
{
  if (need <= *cap)
    return 0;
  size_t nc = *cap ? *cap * 2 : 4096;
  while (nc < need)
    nc *= 2;
  void *np = realloc(*p, nc * size);
  if (!np)
    return -ENOMEM;
  *p = np;
  *cap = nc;
  return 0;
}

/* -- The enumeration's record --------------------------------------------------- */

#define REC_ITEM_MAX 40          /* bytes of one record item at most (4 varints) */

static int rec_reserve(struct rec *r)
{
  if (r->n + REC_ITEM_MAX <= r->cap)
    return 0;
  size_t nc = r->cap ? r->cap * 2 : 65536;
  uint8_t *np = realloc(r->p, nc);
  if (!np)
    return -ENOMEM;
  r->p = np;
  r->cap = nc;
  return 0;
}

static inline uint8_t *put_u(uint8_t *p, uint64_t v)
{
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* a signed difference: zigzag, small either way */
static inline uint8_t *put_d(uint8_t *p, uint64_t now, uint64_t before)
{
  uint64_t d = now - before;
  return put_u(p, d << 1 ^ (uint64_t)((int64_t)d >> 63));
}

/* (the record is ours, written above: it is read without bounds) */
static inline uint64_t get_u(const uint8_t **pp)
{
  const uint8_t *p = *pp;
  uint64_t v = *p & 0x7f;
  for (unsigned sh = 7; *p++ & 0x80; sh += 7)
    v |= (uint64_t)(*p & 0x7f) << sh;
  *pp = p;
  return v;
}

static inline uint64_t get_d(const uint8_t **pp, uint64_t before)
{
  uint64_t z = get_u(pp);
  return before + (z >> 1 ^ -(z & 1));
}

static void rec_free(struct rec *r)
{
  free(r->p);
  memset(r, 0, sizeof *r);
}

/* -- Building ---------------------------------------------------------------- */

struct heap *heap_new(const struct heap_opts *o)
{
  struct heap *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->o = *o;
  if (intern(&h->st, "") < 0) {   /* id 0: no class, no label */
    free(h);
    return NULL;
  }
  return h;
}

uint32_t heap_type(struct heap *h, const char *name)
{
  int64_t id = intern(&h->st, name);
  return id < 0 ? 0 : (uint32_t)id;
}

int heap_full(const struct heap *h)
{
  return h->full;
}

int heap_object(struct heap *h, uint64_t addr, uint32_t type, uint64_t size, const char *cls)
{
  if (h->n >= h->o.max_objects) {
    h->full = 1;
    return -E2BIG;
  }
  struct rec *r = &h->orec;
  if (rec_reserve(r))
    return -ENOMEM;
  int64_t cid = cls && *cls ? intern(&h->st, cls) : 0;
  uint8_t *p = put_d(r->p + r->n, addr, r->a);
  p = put_u(p, size);
  p = put_u(p, type);
  p = put_u(p, cid < 0 ? 0 : (uint64_t)cid);
  r->n = (size_t)(p - r->p);
  r->a = addr;
  h->n++;
  return 0;
}

int heap_edge(struct heap *h, uint64_t from, uint64_t to, const char *label)
{
  if (h->full)
    return -E2BIG;
  struct rec *r = &h->erec;
  if (rec_reserve(r))
    return -ENOMEM;
  int64_t l = intern(&h->st, label ? label : "");
  if (l < 0)
    return (int)l;
  /* the label, and whether the source is another than the last one's (then it follows) */
  int other = !h->ne || from != r->a;
  uint8_t *p = put_u(r->p + r->n, (uint64_t)l << 1 | (uint64_t)other);
  if (other)
    p = put_d(p, from, r->a);
  p = put_d(p, to, r->b);
  r->n = (size_t)(p - r->p);
  r->a = from;
  r->b = to;
  h->ne++;
  return 0;
}

/* One more root of a list (the roots, or the fallback roots). */
static int root_add(struct heap *h, uint64_t **tov, uint32_t **labv, size_t *n, size_t *cap,
                    uint64_t to, const char *label)
{
  size_t c = *cap;
  if (*n == c) {
    size_t c1 = c, c2 = c;
    if (grow((void **)tov, 8, &c1, c + 1) || grow((void **)labv, 4, &c2, c + 1))
      return -ENOMEM;
    *cap = c1;
  }
  int64_t l = intern(&h->st, label ? label : "");
  if (l < 0)
    return (int)l;
  (*tov)[*n] = to;
  (*labv)[(*n)++] = (uint32_t)l;
  return 0;
}

int heap_root(struct heap *h, uint64_t to, const char *label)
{
  return root_add(h, &h->rto, &h->rlab, &h->nr, &h->rcap, to, label);
}

int heap_root_weak(struct heap *h, uint64_t to, const char *label)
{
  return root_add(h, &h->wto, &h->wlab, &h->nw, &h->wcap, to, label);
}

void heap_set_labeler(struct heap *h, heap_label_fn fn, void *arg)
{
  h->labeler = fn;
  h->labeler_arg = arg;
}

void heap_vm_total(struct heap *h, uint64_t bytes, uint64_t objects, const char *what)
{
  h->vm_bytes = bytes;
  h->vm_objects = objects;
  int64_t id = intern(&h->st, what ? what : "");
  h->vm_what = id < 0 ? 0 : (uint32_t)id;
}

void heap_free(struct heap *h)
{
  if (!h)
    return;
  strtab_free(&h->st);
  rec_free(&h->orec);
  rec_free(&h->erec);
  free(h->addr);
  free(h->size);
  free(h->type);
  free(h->cls);
  free(h->rto);
  free(h->rlab);
  free(h->wto);
  free(h->wlab);
  free(h->soff);
  free(h->sdst);
  free(h->slab);
  free(h->bparent);
  free(h->blab);
  free(h->idom);
  free(h->dfsparent);
  free(h->retained);
  free(h->rcount);
  free(h->maxchild);
  free(h->idx);
  free(h->nid);
  free(h);
}

/* -- Analysis ---------------------------------------------------------------- */

/* (key, value) pairs sorted by key, stable: a least-significant-digit radix sort, 16 bits
 * at a time, skipping the digits all keys share. */
struct kv {
  uint64_t key, val;
};

static int kv_sort(struct kv *v, size_t n)
{
  struct kv *tmp = malloc((n ? n : 1) * sizeof *tmp);
  size_t *count = malloc(65536 * sizeof *count);
  if (!tmp || !count) {
    free(tmp), free(count);
    return -ENOMEM;
  }
  for (unsigned shift = 0; shift < 64; shift += 16) {
    memset(count, 0, 65536 * sizeof *count);
    for (size_t i = 0; i < n; i++)
      count[(v[i].key >> shift) & 0xffff]++;
    if (n && count[(v[0].key >> shift) & 0xffff] == n)
      continue;   /* every key has this digit */
    size_t sum = 0;
    for (size_t d = 0; d < 65536; d++) {
      size_t c = count[d];
      count[d] = sum;
      sum += c;
    }
    for (size_t i = 0; i < n; i++)
      tmp[count[(v[i].key >> shift) & 0xffff]++] = v[i];
    memcpy(v, tmp, n * sizeof *v);
  }
  free(tmp), free(count);
  return 0;
}

/* Objects sorted by address, duplicates dropped (the first given wins), from the record:
 * the addresses with their places sorted first, then each object's fields decoded again
 * straight to its sorted place (so that only one set of the objects' arrays is held). */
static int sort_objects(struct heap *h)
{
  size_t n = h->n, no = n ? n : 1, w = 0;
  struct kv *perm = malloc(no * sizeof *perm);
  if (!perm)
    return -ENOMEM;
  const uint8_t *p = h->orec.p;
  uint64_t prev = 0;
  int sorted = 1;
  for (size_t i = 0; i < n; i++) {
    uint64_t a = get_d(&p, prev);
    get_u(&p), get_u(&p), get_u(&p);
    sorted &= !i || a >= prev;
    perm[i] = (struct kv){ a, i };
    prev = a;
  }
  if (!sorted && kv_sort(perm, n)) {   /* (enumerated in address order: nothing to do) */
    free(perm);
    return -ENOMEM;
  }
  /* the place of each object given (NONE: a duplicate), in the order given */
  uint32_t *pos = malloc(no * 4);
  uint64_t *a = malloc(no * 8);
  if (!pos || !a) {
    free(perm), free(pos), free(a);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    size_t k = (size_t)perm[i].val;
    if (w && a[w - 1] == perm[i].key) {
      pos[k] = NONE;
      continue;
    }
    pos[k] = (uint32_t)w;
    a[w++] = perm[i].key;
  }
  free(perm);
  uint64_t *sz = malloc((w ? w : 1) * 8);
  uint32_t *t = malloc((w ? w : 1) * 4), *c = malloc((w ? w : 1) * 4);
  if (!sz || !t || !c) {
    free(pos), free(a), free(sz), free(t), free(c);
    return -ENOMEM;
  }
  p = h->orec.p;
  for (size_t i = 0; i < n; i++) {
    get_u(&p);
    uint64_t size = get_u(&p), ty = get_u(&p), cl = get_u(&p);
    if (pos[i] != NONE) {
      sz[pos[i]] = size;
      t[pos[i]] = (uint32_t)ty;
      c[pos[i]] = (uint32_t)cl;
    }
  }
  free(pos);
  rec_free(&h->orec);
  h->addr = a, h->size = sz, h->type = t, h->cls = c;
  h->n = w;
  return 0;
}

/* Address -> node: an open-addressing index over the sorted objects (built once). */
static int index_build(struct heap *h)
{
  size_t cap = 16;
  while (cap < 2 * (h->n + 1))
    cap *= 2;
  h->idx = malloc(cap * 4);
  if (!h->idx)
    return -ENOMEM;
  memset(h->idx, 0xff, cap * 4);
  h->idxmask = cap - 1;
  unsigned bits = 0;
  while ((1ull << bits) < cap)
    bits++;
  h->idxbits = bits;
  for (size_t i = 0; i < h->n; i++) {
    size_t j = hash_word(h->addr[i], bits);
    while (h->idx[j] != NONE)
      j = (j + 1) & h->idxmask;
    h->idx[j] = (uint32_t)i;
  }
  return 0;
}

static uint32_t node_of(const struct heap *h, uint64_t addr)
{
  if (h->idx) {
    for (size_t j = hash_word(addr, h->idxbits);; j = (j + 1) & h->idxmask) {
      uint32_t i = h->idx[j];
      if (i == NONE)
        return NONE;
      if (h->addr[i] == addr)
        return i + 1;
    }
  }
  size_t lo = 0, hi = h->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (h->addr[mid] < addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < h->n && h->addr[lo] == addr ? (uint32_t)lo + 1 : NONE;
}

/* The CSR arrays from m edges. */
static int csr(struct heap *h, const uint32_t *from, const uint32_t *to, const uint32_t *lab,
               size_t m)
{
  size_t nn = h->nn;
  free(h->soff), free(h->sdst), free(h->slab);
  h->soff = calloc(nn + 1, 4);
  h->sdst = malloc((m ? m : 1) * 4);
  h->slab = malloc((m ? m : 1) * 4);
  uint32_t *fill = malloc(nn * 4);
  if (!h->soff || !h->sdst || !h->slab || !fill) {
    free(fill);
    return -ENOMEM;
  }
  h->ne = m;
  for (size_t i = 0; i < m; i++)
    h->soff[from[i] + 1]++;
  for (size_t i = 0; i < nn; i++)
    h->soff[i + 1] += h->soff[i];
  memcpy(fill, h->soff, nn * 4);
  for (size_t i = 0; i < m; i++) {
    uint32_t k = fill[from[i]]++;
    h->sdst[k] = to[i];
    h->slab[k] = lab[i];
  }
  free(fill);
  return 0;
}

/* What the root reaches (a mark per node). */
static uint8_t *reach(const struct heap *h)
{
  uint8_t *seen = calloc(h->nn, 1);
  uint32_t *stack = malloc(h->nn * 4);
  if (!seen || !stack) {
    free(seen), free(stack);
    return NULL;
  }
  size_t sp = 0;
  stack[sp++] = 0;
  seen[0] = 1;
  while (sp) {
    uint32_t v = stack[--sp];
    for (uint32_t e = h->soff[v]; e < h->soff[v + 1]; e++)
      if (!seen[h->sdst[e]]) {
        seen[h->sdst[e]] = 1;
        stack[sp++] = h->sdst[e];
      }
  }
  free(stack);
  return seen;
}

/* Successors in CSR form: roots as the virtual root's edges, then every resolved edge; then
 * the fallback roots of what none of those reach. */
static int build_graph(struct heap *h)
{
  h->nn = h->n + 1;
  size_t cap = h->ne + h->nr + h->nw + 1;
  uint32_t *from = malloc(cap * 4), *to = malloc(cap * 4), *lab = malloc(cap * 4);
  if (!from || !to || !lab) {
    free(from), free(to), free(lab);
    return -ENOMEM;
  }
  size_t m = 0;
  for (size_t i = 0; i < h->nr; i++) {
    uint32_t d = node_of(h, h->rto[i]);
    if (d != NONE)
      from[m] = 0, to[m] = d, lab[m++] = h->rlab[i];
  }
  /* (an object's references come together: its node is looked up once; the index slots
   * of the targets a few edges on are fetched ahead, as each is a cache miss: the record
   * is decoded a batch at a time for that) */
  enum { BATCH_E = 1024 };
  uint64_t ef[BATCH_E], et[BATCH_E];
  uint32_t el[BATCH_E];
  const uint8_t *p = h->erec.p;
  uint64_t pf = 0, pt = 0, last = 0;
  uint32_t s = NONE;
  for (size_t b = 0; b < h->ne; b += BATCH_E) {
    size_t nb = h->ne - b < BATCH_E ? h->ne - b : BATCH_E;
    for (size_t i = 0; i < nb; i++) {
      uint64_t v = get_u(&p);
      if (v & 1)
        pf = get_d(&p, pf);
      pt = get_d(&p, pt);
      ef[i] = pf, et[i] = pt, el[i] = (uint32_t)(v >> 1);
    }
    for (size_t i = 0; i < nb; i++) {
      if (i + 16 < nb)
        __builtin_prefetch(&h->idx[hash_word(et[i + 16], h->idxbits)]);
      if (i + 8 < nb) {
        uint32_t k = h->idx[hash_word(et[i + 8], h->idxbits)];
        if (k != NONE)
          __builtin_prefetch(&h->addr[k]);
      }
      if ((!b && !i) || ef[i] != last)
        s = node_of(h, last = ef[i]);
      uint32_t d = s == NONE ? NONE : node_of(h, et[i]);
      if (d != NONE && d != s)
        from[m] = s, to[m] = d, lab[m++] = el[i];
    }
  }
  /* the enumeration's edges are no longer needed: give their memory back first */
  rec_free(&h->erec);
  int r = csr(h, from, to, lab, m);
  if (!r && h->nw) {
    uint8_t *seen = reach(h);
    if (!seen) {
      r = -ENOMEM;
    } else {
      size_t m0 = m;
      for (size_t i = 0; i < h->nw; i++) {
        uint32_t d = node_of(h, h->wto[i]);
        if (d != NONE && !seen[d]) {
          seen[d] = 1;
          from[m] = 0, to[m] = d, lab[m++] = h->wlab[i];
        }
      }
      free(seen);
      if (m > m0)
        r = csr(h, from, to, lab, m);
    }
  }
  free(from), free(to), free(lab);
  free(h->idx);   /* (the graph has its nodes: the index is not needed any more) */
  h->idx = NULL;
  return r;
}

/* The nodes numbered again in the depth-first preorder from the root that the dominators
 * take (then what no root reaches, in address order): every later pass walks the graph in
 * about that order, so that its reads go forward through memory instead of jumping (with
 * millions of objects each jump was a cache and TLB miss). The graph is the same:
 * each node keeps its references in their order, so every traversal meets the same
 * objects in the same order as before; h->nid keeps the address order. */
static int renumber(struct heap *h)
{
  size_t nn = h->nn;
  uint32_t *nid = malloc(nn * 4), *next = malloc(nn * 4), *stack = malloc(nn * 4);
  uint32_t *old = malloc(nn * 4);   /* node -> its number before */
  uint32_t *par = malloc(nn * 4);   /* node -> its parent in the depth-first tree */
  if (!nid || !next || !stack || !old || !par) {
    free(nid), free(next), free(stack), free(old), free(par);
    return -ENOMEM;
  }
  memset(nid, 0xff, nn * 4);
  uint32_t n = 0;
  size_t sp = 0;
  old[n] = 0;
  nid[0] = n++;
  next[0] = h->soff[0];
  stack[sp++] = 0;
  while (sp) {
    uint32_t v = stack[sp - 1], e = next[v];
    if (e == h->soff[v + 1]) {
      sp--;
      continue;
    }
    /* (this pass meets the nodes in the order of the old numbers: fetched ahead, along the
     * references of the node on top) */
    if (e + 8 < h->soff[v + 1]) {
      __builtin_prefetch(&nid[h->sdst[e + 8]]);
      __builtin_prefetch(&h->soff[h->sdst[e + 8]]);
    }
    uint32_t d = h->sdst[e];
    next[v] = e + 1;
    if (nid[d] != NONE)
      continue;
    par[n] = v;
    old[n] = d;
    nid[d] = n++;
    next[d] = h->soff[d];
    stack[sp++] = d;
  }
  /* (the dominators take this very depth-first search: its preorder is the new numbering,
   * its tree is par) */
  h->nrpo = n;
  par[0] = NONE;
  for (size_t v = 1; v < n; v++)
    par[v] = nid[par[v]];
  free(h->dfsparent);
  h->dfsparent = par;
  for (size_t v = 1; v < nn; v++)
    if (nid[v] == NONE) {
      old[n] = (uint32_t)v;
      nid[v] = n++;
    }
  free(stack), free(next);
  /* the objects' arrays, one at a time (their memory is the largest part) */
  int r = 0;
  size_t no = h->n ? h->n : 1;
  uint64_t *a = malloc(no * 8);
  if (a) {
    for (size_t v = 1; v < nn; v++)
      a[v - 1] = h->addr[old[v] - 1];
    free(h->addr), h->addr = a;
  }
  uint64_t *sz = a ? malloc(no * 8) : NULL;
  if (sz) {
    for (size_t v = 1; v < nn; v++)
      sz[v - 1] = h->size[old[v] - 1];
    free(h->size), h->size = sz;
  }
  uint32_t *ty = sz ? malloc(no * 4) : NULL;
  if (ty) {
    for (size_t v = 1; v < nn; v++)
      ty[v - 1] = h->type[old[v] - 1];
    free(h->type), h->type = ty;
  }
  uint32_t *cl = ty ? malloc(no * 4) : NULL;
  if (cl) {
    for (size_t v = 1; v < nn; v++)
      cl[v - 1] = h->cls[old[v] - 1];
    free(h->cls), h->cls = cl;
  }
  /* the successors: the same references in the same order, to the new numbers */
  size_t m = h->soff[nn];
  uint32_t *off = cl ? malloc((nn + 1) * 4) : NULL;
  uint32_t *dst = off ? malloc((m ? m : 1) * 4) : NULL;
  if (dst) {
    off[0] = 0;
    for (size_t v = 0; v < nn; v++) {
      uint32_t o = old[v], k = off[v];
      for (uint32_t e = h->soff[o]; e < h->soff[o + 1]; e++)
        dst[k++] = nid[h->sdst[e]];
      off[v + 1] = k;
    }
    free(h->sdst), h->sdst = dst;
  }
  uint32_t *lab = dst ? malloc((m ? m : 1) * 4) : NULL;
  if (lab) {
    for (size_t v = 0; v < nn; v++) {
      uint32_t o = old[v];
      memcpy(lab + off[v], h->slab + h->soff[o], (size_t)(h->soff[o + 1] - h->soff[o]) * 4);
    }
    free(h->slab), h->slab = lab;
    free(h->soff), h->soff = off;
  } else {
    free(off);
    r = -ENOMEM;
  }
  free(old);
  free(h->nid);
  h->nid = nid;
  return r;
}

/* Shortest paths from the virtual root (each object's path names it). */
static int bfs(struct heap *h)
{
  size_t nn = h->nn;
  h->bparent = malloc(nn * 4);
  h->blab = malloc(nn * 4);
  uint32_t *queue = malloc(nn * 4);   /* (the BFS order: not kept) */
  if (!h->bparent || !h->blab || !queue) {
    free(queue);
    return -ENOMEM;
  }
  for (size_t i = 0; i < nn; i++)
    h->bparent[i] = NONE, h->blab[i] = 0;
  size_t qh = 0, qt = 0;
  queue[qt++] = 0;
  h->bparent[0] = 0;
  while (qh < qt) {
    uint32_t v = queue[qh++];
    for (uint32_t e = h->soff[v]; e < h->soff[v + 1]; e++) {
      uint32_t d = h->sdst[e];
      if (h->bparent[d] != NONE)
        continue;
      h->bparent[d] = v;
      h->blab[d] = h->slab[e];
      queue[qt++] = d;
    }
  }
  free(queue);
  return 0;
}

/* The dominator tree (Lengauer and Tarjan, with path compression: O(m log n), whatever the
 * shape: long rings and doubly linked lists included). It takes the depth-first search
 * renumber() made: a node's preorder number is the node itself (the reachable are 0 ..
 * nrpo - 1), its tree parent h->dfsparent; so a node's dominator comes before it. */
struct lt {
  uint32_t *parent, *semi, *anc, *label, *bhead, *bnext, *stack;
};

/* The node of least semidominator on the path from v up its (compressed) ancestors. */
static uint32_t lt_eval(struct lt *t, uint32_t v)
{
  if (t->anc[v] == NONE)
    return v;
  /* compress: the path of ancestors that have ancestors, then down it */
  size_t n = 0;
  for (uint32_t u = v; t->anc[t->anc[u]] != NONE; u = t->anc[u])
    t->stack[n++] = u;
  while (n--) {
    uint32_t u = t->stack[n], a = t->anc[u];
    if (t->semi[t->label[a]] < t->semi[t->label[u]])
      t->label[u] = t->label[a];
    t->anc[u] = t->anc[a];
  }
  return t->label[v];
}

static int dominators(struct heap *h)
{
  size_t nn = h->nn;
  uint32_t n = (uint32_t)h->nrpo;
  struct lt t = { .parent = h->dfsparent };
  uint32_t **arrs[] = { &t.semi, &t.anc, &t.label, &t.bhead, &t.bnext, &t.stack };
  int r = 0;
  for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++)
    if (!(*arrs[i] = malloc((n + 1) * 4)))
      r = -ENOMEM;
  uint32_t *poff = NULL, *pred = NULL;
  h->idom = malloc(nn * 4);
  if (r || !h->idom || !t.parent) {
    r = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < nn; i++)
    h->idom[i] = NONE;
  for (uint32_t i = 0; i < n; i++)
    t.semi[i] = i, t.anc[i] = NONE, t.label[i] = i, t.bhead[i] = NONE;
  /* predecessors among the reachable (CSR; an edge from a reachable node ends at one) */
  poff = calloc((size_t)n + 1, 4);
  if (!poff) {
    r = -ENOMEM;
    goto out;
  }
  for (uint32_t v = 0; v < n; v++)
    for (uint32_t e = h->soff[v]; e < h->soff[v + 1]; e++)
      poff[h->sdst[e] + 1]++;
  for (uint32_t i = 0; i < n; i++)
    poff[i + 1] += poff[i];
  pred = malloc((poff[n] ? poff[n] : 1) * 4);
  if (!pred) {
    r = -ENOMEM;
    goto out;
  }
  /* (fill each node's list from its end: bnext is free until the buckets) */
  uint32_t *fill = t.bnext;
  memcpy(fill, poff + 1, (size_t)n * 4);
  for (uint32_t v = n; v-- > 0;)
    for (uint32_t e = h->soff[v + 1]; e-- > h->soff[v];)
      pred[--fill[h->sdst[e]]] = v;
  /* semidominators, in reverse preorder; implicit dominators from the buckets */
  for (uint32_t w = n ? n - 1 : 0; w >= 1; w--) {
    for (uint32_t e = poff[w]; e < poff[w + 1]; e++) {
      uint32_t u = lt_eval(&t, pred[e]);
      if (t.semi[u] < t.semi[w])
        t.semi[w] = t.semi[u];
    }
    uint32_t s = t.semi[w];
    t.bnext[w] = t.bhead[s];
    t.bhead[s] = w;
    uint32_t p = t.parent[w];
    t.anc[w] = p;
    for (uint32_t v = t.bhead[p]; v != NONE; v = t.bnext[v]) {
      uint32_t u = lt_eval(&t, v);
      h->idom[v] = t.semi[u] < t.semi[v] ? u : p;
    }
    t.bhead[p] = NONE;
  }
  for (uint32_t w = 1; w < n; w++)
    if (h->idom[w] != t.semi[w])
      h->idom[w] = h->idom[h->idom[w]];
  h->idom[0] = 0;
out:
  for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++)
    free(*arrs[i]);
  free(h->dfsparent);
  h->dfsparent = NULL;
  free(poff), free(pred);
  return r;
}

static int retain(struct heap *h)
{
  size_t nn = h->nn;
  h->retained = calloc(nn, 8);
  h->rcount = calloc(nn, 4);
  h->maxchild = calloc(nn, 4);
  if (!h->retained || !h->rcount || !h->maxchild)
    return -ENOMEM;
  for (size_t i = 1; i < nn; i++)
    h->retained[i] = h->size[i - 1], h->rcount[i] = 1;
  /* children before their dominator: the parents-first order backwards */
  for (size_t k = h->nrpo; k-- > 1;) {
    uint32_t v = (uint32_t)k, d = h->idom[v];
    h->retained[d] += h->retained[v];
    h->rcount[d] += h->rcount[v];
    if (!h->maxchild[d] || h->retained[v] > h->retained[h->maxchild[d]])
      h->maxchild[d] = v;
  }
  return 0;
}

int heap_analyse(struct heap *h)
{
  int r;
  if ((r = sort_objects(h)) || (r = index_build(h)) || (r = build_graph(h)) || (r = renumber(h)) ||
      (r = bfs(h)) || (r = dominators(h)) || (r = retain(h)))
    return r;
  /* the reports read the trees, not the references: their memory back */
  free(h->soff), free(h->sdst), free(h->slab);
  h->soff = h->sdst = h->slab = NULL;
  h->analysed = 1;
  return 0;
}

void heap_get_summary(const struct heap *h, struct heap_summary *s)
{
  memset(s, 0, sizeof *s);
  s->objects = h->n;
  for (size_t i = 0; i < h->n; i++) {
    s->bytes += h->size[i];
    if (h->analysed && h->bparent[i + 1] != NONE) {
      s->reachable++;
      s->reachable_bytes += h->size[i];
    }
  }
  s->edges = h->ne;
  s->roots = h->nr;
  s->vm_bytes = h->vm_bytes;
  s->vm_objects = h->vm_objects;
  s->vm_what = h->st.s[h->vm_what];
  s->truncated = h->full;
}

/* -- Census ------------------------------------------------------------------ */

static int by_bytes(const void *a, const void *b)
{
  const struct heap_census_row *x = a, *y = b;
  if (x->bytes != y->bytes)
    return x->bytes > y->bytes ? -1 : 1;
  return strcmp(x->type, y->type);
}

static size_t mix(uint64_t x)
{
  x *= 0x9e3779b97f4a7c15ull;
  return (size_t)(x ^ x >> 29 ^ x >> 47);
}

static int by_key(const void *a, const void *b)
{
  const struct kv *x = a, *y = b;
  return x->key < y->key ? -1 : x->key > y->key;
}

int heap_census(const struct heap *h, struct heap_census_row **ret_rows, size_t *ret_n)
{
  /* (type and class) -> bytes summed, in a table as large as the pairs there are (a few
   * hundred: not one per object), then taken in the order of the pairs */
  size_t cap = 256, nk = 0;
  struct kv *tab = calloc(cap, sizeof *tab);
  uint64_t *cnt = calloc(cap, 8);
  if (!tab || !cnt) {
    free(tab), free(cnt);
    return -ENOMEM;
  }
  for (size_t i = 0; i < h->n; i++) {
    uint64_t key = ((uint64_t)h->type[i] << 32 | h->cls[i]) + 1;   /* (0: empty) */
    size_t j = mix(key) & (cap - 1);
    while (tab[j].key && tab[j].key != key)
      j = (j + 1) & (cap - 1);
    if (!tab[j].key) {
      if ((nk + 1) * 2 > cap) {   /* grow, then this object again */
        size_t nc = cap * 2;
        struct kv *nt = calloc(nc, sizeof *nt);
        uint64_t *ncnt = calloc(nc, 8);
        if (!nt || !ncnt) {
          free(nt), free(ncnt), free(tab), free(cnt);
          return -ENOMEM;
        }
        for (size_t o = 0; o < cap; o++) {
          if (!tab[o].key)
            continue;
          size_t q = mix(tab[o].key) & (nc - 1);
          while (nt[q].key)
            q = (q + 1) & (nc - 1);
          nt[q] = tab[o];
          ncnt[q] = cnt[o];
        }
        free(tab), free(cnt);
        tab = nt, cnt = ncnt, cap = nc;
        i--;
        continue;
      }
      tab[j].key = key;
      nk++;
    }
    tab[j].val += h->size[i];
    cnt[j]++;
  }
  /* the pairs in their order (type, then class), as the rows were taken before sorting */
  struct kv *keys = malloc((nk ? nk : 1) * sizeof *keys);
  struct heap_census_row *rows = malloc((nk ? nk : 1) * sizeof *rows);
  if (!keys || !rows) {
    free(keys), free(rows), free(tab), free(cnt);
    return -ENOMEM;
  }
  size_t nrows = 0;
  for (size_t j = 0; j < cap; j++)
    if (tab[j].key)
      keys[nrows++] = (struct kv){ tab[j].key - 1, j };
  qsort(keys, nrows, sizeof *keys, by_key);
  /* names: the type and, when there is one, its class: interned as "type class" */
  struct strtab *st = (struct strtab *)&h->st;
  for (size_t i = 0; i < nrows; i++) {
    uint32_t ty = (uint32_t)(keys[i].key >> 32), cl = (uint32_t)keys[i].key;
    size_t j = (size_t)keys[i].val;
    char name[2 * HEAP_LABEL_MAX + 8];
    snprintf(name, sizeof name, "%s%s%s", st->s[ty], cl ? " " : "", st->s[cl]);
    int64_t id = intern(st, name);
    rows[i] = (struct heap_census_row){ id < 0 ? st->s[ty] : st->s[id], cnt[j], tab[j].val };
  }
  free(keys), free(tab), free(cnt);
  qsort(rows, nrows, sizeof *rows, by_bytes);
  *ret_rows = rows;
  *ret_n = nrows;
  return 0;
}

/* -- Paths and names ------------------------------------------------------------ */

/* A step written right after the one before it: .field [3] {key} ->  (others: " → ") */
static int glued(const char *label)
{
  return label[0] == '.' || label[0] == '[' || label[0] == '{' || label[0] == ':' ||
         (label[0] == '-' && label[1] == '>');
}

/* The shortest path from a root to node v, as the language would spell it; a long one
 * keeps its first steps and its last. Steps without a label (an upvalue's box) are left
 * out. */
/* A step of a path: its label, or, for one of a container's many children ("{*}"), the
 * very key, when the runtime can tell it. */
static const char *step(const struct heap *h, uint32_t u, char *buf, size_t cap)
{
  const char *l = h->st.s[h->blab[u]];
  uint32_t p = h->bparent[u];
  if (h->labeler && p && p != NONE && (!strncmp(l, "{*}", 3) || !strncmp(l, "[*]", 3)) &&
      !h->labeler(h->labeler_arg, h->addr[p - 1], h->addr[u - 1], buf, cap) && *buf)
    return buf;
  return l;
}

static void path_of(const struct heap *h, uint32_t v, char *buf, size_t cap)
{
  char lb[HEAP_LABEL_MAX + 8];
  uint32_t head[4], tail[PATH_STEPS_MAX];
  size_t all = 0;
  for (uint32_t u = v; u && u != NONE && all < h->nn; u = h->bparent[u], all++)
    tail[all % PATH_STEPS_MAX] = u;   /* the last PATH_STEPS_MAX met: the root side */
  /* (tail now holds the root-side steps; walk again for the leaf side when it is long) */
  size_t o = 0, nh = 0;
  buf[0] = 0;
  if (all > PATH_STEPS_MAX) {
    size_t k = 0;
    for (uint32_t u = v; u && k < 4; u = h->bparent[u], k++)
      head[nh++] = u;   /* leaf first */
  }
  size_t nt = all <= PATH_STEPS_MAX ? all : PATH_STEPS_MAX - 6;
  /* root-side steps, root first: positions all-1 .. all-nt (in met order) */
  for (size_t i = 0; i < nt; i++) {
    uint32_t u = tail[(all - 1 - i) % PATH_STEPS_MAX];
    const char *l = step(h, u, lb, sizeof lb);
    if (*l)
      o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s%s", o && !glued(l) ? " → " : "", l);
  }
  if (nh) {
    o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, " → …");
    for (size_t i = nh; i-- > 0;) {
      const char *l = step(h, head[i], lb, sizeof lb);
      if (*l)
        o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, "%s%s", glued(l) ? "" : " → ", l);
    }
  }
  if (o >= cap && cap > 4)
    memcpy(buf + cap - 4, "...", 4);
}

static void type_of(const struct heap *h, uint32_t v, char *buf, size_t cap)
{
  uint32_t cl = h->cls[v - 1];
  snprintf(buf, cap, "%s%s%s", h->st.s[h->type[v - 1]], cl ? " " : "", h->st.s[cl]);
}

static const uint64_t *sort_retained, *sort_addr;

/* Largest first; of equals, the lower address first. */
static int by_retained(const void *a, const void *b)
{
  uint32_t u = *(const uint32_t *)a, v = *(const uint32_t *)b;
  uint64_t x = sort_retained[u], y = sort_retained[v];
  if (x != y)
    return x > y ? -1 : 1;
  return sort_addr[u - 1] < sort_addr[v - 1] ? -1 : 1;
}

int heap_top(const struct heap *h, size_t want, struct heap_retainer **ret, size_t *ret_n)
{
  *ret = NULL;
  *ret_n = 0;
  if (!h->analysed)
    return -EINVAL;
  uint32_t *idx = malloc((h->nrpo ? h->nrpo : 1) * 4);
  struct heap_retainer *out = calloc(want ? want : 1, sizeof *out);
  if (!idx || !out) {
    free(idx), free(out);
    return -ENOMEM;
  }
  size_t m = 0;
  for (size_t k = 1; k < h->nrpo; k++)
    if (h->retained[k] * 1000 >= h->retained[0])   /* (smaller ones are not listed) */
      idx[m++] = (uint32_t)k;
  sort_retained = h->retained;
  sort_addr = h->addr;
  qsort(idx, m, sizeof *idx, by_retained);
  size_t n = 0;
  for (size_t k = 0; k < m && n < want; k++) {
    uint32_t v = idx[k], c = h->maxchild[v], d = h->idom[v];
    /* a chain of objects each holding nearly all of the next one's memory is shown by its
     * ends: where it is entered (not its dominator's main child) and where the memory
     * accumulates (no main child of its own) */
    int passes_on = c && h->retained[c] * 10 >= h->retained[v] * 9;
    int handed_on = h->maxchild[d] == v && h->retained[v] * 10 >= h->retained[d] * 9;
    if (passes_on && handed_on)
      continue;
    if (h->retained[v] * 1000 < h->retained[0])
      break;   /* under 0.1% of the heap: not where the memory is */
    struct heap_retainer *r = &out[n++];
    r->addr = h->addr[v - 1];
    r->shallow = h->size[v - 1];
    r->retained = h->retained[v];
    r->count = h->rcount[v];
    type_of(h, v, r->type, sizeof r->type);
    path_of(h, v, r->path, sizeof r->path);
  }
  free(idx);
  *ret = out;
  *ret_n = n;
  return 0;
}

/* -- Flame graph stacks ------------------------------------------------------------ */

/* A (parent, name) pair's slot: every bit of both mixed in (hash_word() keeps the high
 * bits of a product and drops an address's low ones: with a mask, the parent was left out,
 * and a name's every child under many parents fell in one chain). */
static size_t trie_hash(uint32_t parent, uint32_t name, size_t mask)
{
  uint64_t x = ((uint64_t)parent << 32 | name) * 0x9e3779b97f4a7c15ull;
  return (size_t)(x ^ x >> 29 ^ x >> 47) & mask;
}

static int64_t trie_get(struct trie *t, uint32_t parent, uint32_t name)
{
  if ((t->n + 1) * 2 >= t->tcap) {
    size_t nc = t->tcap ? t->tcap * 2 : 1024;
    uint32_t *nt = calloc(nc, 4);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
      size_t j = trie_hash(t->parent[i], t->name[i], nc - 1);
      while (nt[j])
        j = (j + 1) & (nc - 1);
      nt[j] = (uint32_t)i + 1;
    }
    free(t->tab);
    t->tab = nt;
    t->tcap = nc;
  }
  size_t j = trie_hash(parent, name, t->tcap - 1);
  while (t->tab[j]) {
    uint32_t i = t->tab[j] - 1;
    if (t->parent[i] == parent && t->name[i] == name)
      return i;
    j = (j + 1) & (t->tcap - 1);
  }
  if (t->n == t->cap) {
    size_t c = t->cap, c1 = c, c2 = c, c3 = c, c4 = c;
    if (grow((void **)&t->parent, 4, &c1, c + 1) || grow((void **)&t->name, 4, &c2, c + 1) ||
        grow((void **)&t->bytes, 8, &c3, c + 1) || grow((void **)&t->objects, 8, &c4, c + 1))
      return -ENOMEM;
    t->cap = c1;
  }
  t->parent[t->n] = parent;
  t->name[t->n] = name;
  t->bytes[t->n] = t->objects[t->n] = 0;
  t->tab[j] = (uint32_t)++t->n;
  return (int64_t)t->n - 1;
}

static void trie_free(struct trie *t)
{
  free(t->parent), free(t->name), free(t->bytes), free(t->objects), free(t->tab);
}

/* A frame's name: the steps that reach the object from its dominator (its parent in the
 * flame graph) along its shortest path, and its type: "registry._LOADED <table>". Every
 * path to it passes through its dominator, so the shortest one does. */
#define NAME_CACHE 65536

struct name_cache {            /* (label, type, class) -> frame name, for one-step frames */
  uint32_t lab, type, cls, name;
};

static int64_t frame_name(struct heap *h, uint32_t v);

static int64_t frame_name_cached(struct heap *h, struct name_cache *nc, uint32_t v)
{
  if (!nc || h->bparent[v] != h->idom[v])
    return frame_name(h, v);
  uint32_t l = h->blab[v], t = h->type[v - 1], c = h->cls[v - 1];
  struct name_cache *e = &nc[hash_word((uint64_t)l << 40 ^ (uint64_t)t << 20 ^ c, 16)];
  if (e->name && e->lab == l && e->type == t && e->cls == c)
    return e->name;
  int64_t id = frame_name(h, v);
  if (id > 0)
    *e = (struct name_cache){ l, t, c, (uint32_t)id };
  return id;
}

static int64_t frame_name(struct heap *h, uint32_t v)
{
  char ty[2 * HEAP_LABEL_MAX + 8], nm[4 * HEAP_LABEL_MAX + 16];
  type_of(h, v, ty, sizeof ty);
  uint32_t steps[8];
  size_t n = 0, more = 0;
  /* (at most 8 steps named; a longer way is cut short, not walked to its end) */
  for (uint32_t u = v; u && u != NONE && u != h->idom[v]; u = h->bparent[u]) {
    if (n == 8) {
      more = 1;
      break;
    }
    steps[n++] = u;
  }
  size_t o = 0;
  nm[0] = 0;
  if (more)
    o += (size_t)snprintf(nm, sizeof nm, "…");
  for (size_t i = n; i-- > 0;) {
    const char *l = h->st.s[h->blab[steps[i]]];
    if (*l && o < sizeof nm)
      o += (size_t)snprintf(nm + o, sizeof nm - o, "%s%s", o && !glued(l) ? " → " : "", l);
  }
  if (o < sizeof nm)
    snprintf(nm + o, sizeof nm - o, "%s<%s>", o ? " " : "", ty);
  return intern(&h->st, nm);
}

int heap_each_stack(struct heap *h, heap_stack_fn fn, void *arg)
{
  if (!h->analysed)
    return -EINVAL;
  struct trie t = { 0 };
  struct name_cache *nc = NULL;
  size_t nn = h->nn;
  uint32_t *node = malloc(nn * 4), *depth = calloc(nn, 4);
  int r = node && depth ? 0 : -ENOMEM;
  int64_t root = r ? -1 : trie_get(&t, NONE, 0);   /* the virtual root: no frame */
  int64_t unreach = r ? -1 : intern(&h->st, "(unreachable)");
  if (root < 0 || unreach < 0)
    r = r ? r : -ENOMEM;
  if (!r && h->o.by_type) {
    for (size_t k = 1; !r && k < nn; k++) {
      size_t v = h->nid ? h->nid[k] : k;   /* (in address order) */
      int64_t a = trie_get(&t, (uint32_t)root, h->type[v - 1]);
      int64_t b = a < 0 ? a : h->cls[v - 1] ? trie_get(&t, (uint32_t)a, h->cls[v - 1]) : a;
      if (b < 0) {
        r = (int)b;
        break;
      }
      t.bytes[b] += h->size[v - 1];
      t.objects[b]++;
    }
  } else if (!r) {
    node[0] = (uint32_t)root;
    nc = calloc(NAME_CACHE, sizeof *nc);   /* (without it: no cache) */
    uint8_t *done = calloc(nn, 1);
    if (!done)
      r = -ENOMEM;
    else
      done[0] = 1;
    /* parents first: each object's stack is its dominator's and one more frame */
    for (size_t k = 1; !r && k < h->nrpo; k++) {
      uint32_t v = (uint32_t)k, u = h->idom[v];
      depth[v] = depth[u] + 1;
      if (depth[v] > DEPTH_MAX) {
        node[v] = node[u];   /* deeper than a stack shows: merged into its ancestor */
      } else {
        int64_t nm = frame_name_cached(h, nc, v);
        int64_t id = nm < 0 ? nm : trie_get(&t, node[u], (uint32_t)nm);
        if (id < 0)
          r = (int)id;
        else
          node[v] = (uint32_t)id;
      }
      done[v] = 1;
      if (!r) {
        t.bytes[node[v]] += h->size[v - 1];
        t.objects[node[v]]++;
      }
    }
    /* what no root reaches: under "(unreachable)", by type */
    int64_t un = r ? -1 : trie_get(&t, (uint32_t)root, (uint32_t)unreach);
    for (size_t v = 1; !r && v < nn; v++) {
      if (done[v])
        continue;
      char ty[2 * HEAP_LABEL_MAX + 8];
      type_of(h, (uint32_t)v, ty, sizeof ty);
      int64_t nm = un < 0 ? un : intern(&h->st, ty);
      int64_t id = nm < 0 ? nm : trie_get(&t, (uint32_t)un, (uint32_t)nm);
      if (id < 0) {
        r = (int)id;
        break;
      }
      t.bytes[id] += h->size[v - 1];
      t.objects[id]++;
    }
    free(done);
  }
  /* every trie node with weight, as its stack of names */
  const char *names[DEPTH_MAX + 4];
  for (size_t i = 0; !r && i < t.n; i++) {
    if (!t.objects[i])
      continue;
    size_t n = 0;
    for (uint32_t u = (uint32_t)i; u != (uint32_t)root && n < DEPTH_MAX + 4; u = t.parent[u])
      names[n++] = h->st.s[t.name[u]];
    for (size_t a = 0, b = n ? n - 1 : 0; a < b; a++, b--) {
      const char *x = names[a];
      names[a] = names[b];
      names[b] = x;
    }
    r = fn(arg, names, n, t.bytes[i], t.objects[i]);
  }
  trie_free(&t);
  free(nc);
  free(node), free(depth);
  return r;
}
