/* Perl heap enumeration: every live SV of each interpreter's arenas (PL_sv_arenaroot's
 * chain; their number is PL_sv_count) with its shallow size (head, body as sv.c allocates
 * it, string buffer, array and bucket storage, hash entries and unshared keys, magic, pad
 * lists), its references labelled as Perl spells them ({key}, [3], ->, my %cache) and the
 * roots: package variables by name (the stashes from PL_defstash), the file-scoped
 * lexicals (PL_main_cv's pad), the argument stacks and the shared keys (PL_strtab). Weak
 * references are not given. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pl_vm.h"
#include "vmstack/elf.h"
#include "vmstack/heap.h"
#include "vmstack/maps.h"

#define ARENAS_MAX 50000000u     /* arenas followed at most */
#define ARENA_SLOTS_MAX 65536u
#define BUCKETS_MAX (1u << 28)
#define CHAIN_MAX 100000u        /* entries of one bucket's chain */
#define STASH_DEPTH_MAX 24
#define STASHES_MAX 100000u
#define NAME_CACHE 4096
#define LABEL 160

struct pctx {
  struct pl_vm *vm;
  const struct pl_layout *lo;
  struct mem *mem;
  struct heap *h;
  uint64_t strtab;               /* PL_strtab of the interpreter being read */
  uint32_t shared_key;           /* its type */
  uint32_t cow_buffer;           /* a copy-on-write string buffer's type */
  struct {                       /* stash -> class name, cached */
    uint64_t stash;
    char name[NAME_MAX_LEN];
  } names[NAME_CACHE];
  uint64_t *stashes;             /* the stashes walked (a visited set, open addressing) */
  size_t nstashes;
  uint64_t sv_count;
  struct {                       /* type_name's names -> heap type ids, as they are first met */
    const char *name;
    uint32_t id;
  } types[16];
  int err;
};

static int r64(struct pctx *c, uint64_t addr, uint64_t *v)
{
  *v = 0;
  return addr ? mem_read(c->mem, addr, v, 8) : -EFAULT;
}

/* The i-th pointer of an array in the copy (which need not be aligned: garbage). */
static inline uint64_t ld64(const void *p, uint64_t i)
{
  uint64_t v;
  memcpy(&v, (const uint8_t *)p + i * 8, 8);
  return v;
}

static const char *type_name(const struct pl_layout *lo, uint32_t flags)
{
  uint32_t t = flags & lo->svt.mask;
  const struct pl_layout *l = lo;
  if (t == l->heap.t_pvav) return "ARRAY";
  if (t == l->svt.pvhv) return "HASH";
  if (t == l->svt.pvcv) return "CODE";
  if (t == l->svt.pvgv) return "GLOB";
  if (t == l->svt.pvfm) return "FORMAT";
  if (t == l->heap.t_pvio) return "IO";
  if (t == l->heap.t_regexp) return "REGEXP";
  if (t == l->heap.t_pvlv) return "LVALUE";
  if (t == l->heap.t_invlist) return "INVLIST";
  if (l->heap.t_pvobj && t == l->heap.t_pvobj) return "OBJECT";
  return flags & l->svf_rok ? "REF" : "SCALAR";
}

/* The heap type of an SV (one interning per name, not per SV). */
static uint32_t sv_type(struct pctx *c, uint32_t flags)
{
  const char *name = type_name(c->lo, flags);
  size_t i = 0;
  for (; i < sizeof c->types / sizeof *c->types && c->types[i].name; i++)
    if (c->types[i].name == name)
      return c->types[i].id;
  uint32_t id = heap_type(c->h, name);
  if (i < sizeof c->types / sizeof *c->types) {
    c->types[i].name = name;
    c->types[i].id = id;
  }
  return id;
}

/* The class of a blessed SV: its stash's name. */
static const char *class_of(struct pctx *c, uint64_t any, uint32_t flags)
{
  const struct pl_layout *lo = c->lo;
  uint32_t t = flags & lo->svt.mask;
  if (!(flags & lo->heap.svs_obj) || t < lo->heap.t_pvmg || !any)
    return NULL;
  uint64_t stash;
  if (r64(c, any + lo->heap.xmg_stash, &stash) || !stash)
    return NULL;
  size_t slot = (size_t)(stash >> 4) % NAME_CACHE;
  if (c->names[slot].stash != stash) {
    if (pl_hv_name(c->vm, stash, c->names[slot].name, sizeof c->names[slot].name))
      snprintf(c->names[slot].name, sizeof c->names[slot].name, "?");
    c->names[slot].stash = stash;
  }
  return c->names[slot].name;
}

/* A hash key as a label: {name}, {"a b"} (a hash of many keys has "{*}" for all). */
static void key_label(struct pctx *c, uint64_t hek, char *buf, size_t cap)
{
  char k[64];
  if (pl_hek_str(c->vm, hek, k, sizeof k)) {
    snprintf(buf, cap, "{?}");
    return;
  }
  int plain = *k != 0;
  for (const char *p = k; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == ':'))
      plain = 0;
  snprintf(buf, cap, plain ? "{%s}" : "{\"%s\"}", k);
}

/* An entry's next, key and value: one read of the HE (the fields one by one when that
 * fails: a HE at the end of a region, say). */
static int he_read(struct pctx *c, uint64_t he, uint64_t *next, uint64_t *hek, uint64_t *val)
{
  const struct pl_layout *lo = c->lo;
  uint16_t a = lo->he.next, z = lo->he.next;
  if (lo->he.hek < a) a = lo->he.hek;
  if (lo->he.val < a) a = lo->he.val;
  if (lo->he.hek > z) z = lo->he.hek;
  if (lo->he.val > z) z = lo->he.val;
  uint8_t b[64];
  if (he && (size_t)z + 8 - a <= sizeof b && !mem_read(c->mem, he + a, b, (size_t)z + 8 - a)) {
    memcpy(next, b + lo->he.next - a, 8);
    memcpy(hek, b + lo->he.hek - a, 8);
    memcpy(val, b + lo->he.val - a, 8);
    return 0;
  }
  return r64(c, he + lo->he.next, next) || r64(c, he + lo->he.hek, hek) ||
         r64(c, he + lo->he.val, val) ? -EFAULT : 0;
}

/* What one read of a hash entry gave (he_read and its key's length). */
struct hent {
  uint64_t hek, val;
  int32_t len;
  uint32_t link : 24;            /* the entry after it in its chain (gathered ones) */
  uint32_t ok : 1;               /* read */
  uint32_t end : 2;              /* its next is 0 (1) or itself (2) */
};

#define GATHER_BUCKETS (1u << 18) /* buckets of a large hash gathered at once (entries */
                                  /* fewer than NO_LINK) */
#define GATHER_MIN 4096u          /* smaller hashes are read in order */
#define NO_LINK 0xffffffu
_Static_assert(4ull * GATHER_BUCKETS + 1024 < NO_LINK, "a slice's entries are linked in 24 bits");

/* Working memory of a large hash's reads: tens of MB read at random, in huge pages where
 * the kernel has them (in 4 KiB pages nearly every read would be a TLB miss). */
static void *big_alloc(size_t len)
{
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, len, MADV_HUGEPAGE);
#endif
  return p;
}

static void big_free(void *p, size_t len)
{
  if (p)
    munmap(p, len);
}

static void hent_read(struct pctx *c, uint64_t he, int keylen, struct hent *e, uint64_t *next)
{
  const struct pl_layout *lo = c->lo;
  e->len = 0;
  e->link = NO_LINK;
  e->ok = !he_read(c, he, next, &e->hek, &e->val);
  e->end = !e->ok ? 0 : !*next ? 1 : *next == he ? 2 : 0;
  if (e->ok && e->hek && keylen)
    mem_read(c->mem, e->hek + lo->hek.len, &e->len, 4);
  if (e->len < 0 || e->len > (1 << 30))
    e->len = 0;
}

#define BLOCKS (1u << 16)

/* One counting pass of v[0..n) into out, by ((address - lo) >> shift) % BLOCKS. */
static void count_pass(uint64_t (*v)[2], uint64_t (*out)[2], size_t n, uint32_t *count,
                       uint64_t lo, int shift)
{
  memset(count, 0, BLOCKS * sizeof *count);
  for (size_t i = 0; i < n; i++)
    count[((v[i][0] - lo) >> shift) & (BLOCKS - 1)]++;
  uint32_t sum = 0;
  for (size_t k = 0; k < BLOCKS; k++) {
    uint32_t x = count[k];
    count[k] = sum;
    sum += x;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t k = count[((v[i][0] - lo) >> shift) & (BLOCKS - 1)]++;
    out[k][0] = v[i][0];
    out[k][1] = v[i][1];
  }
}

/* Orders v[0..n) (address, index pairs) by address, only for the order of reading (near
 * addresses one after the other, not one random page after another): in blocks of
 * 1/65536th of their span when it is under 4 GB (one pass into out), else by page number
 * (addresses up to 16 TB apart: two passes, into out and back). Returns the ordered one. */
static uint64_t (*by_block(uint64_t (*v)[2], uint64_t (*out)[2], size_t n,
                           uint32_t *count))[2]
{
  uint64_t lo = UINT64_MAX, hi = 0;
  for (size_t i = 0; i < n; i++) {
    lo = v[i][0] < lo ? v[i][0] : lo;
    hi = v[i][0] > hi ? v[i][0] : hi;
  }
  if (!n || hi - lo >= (1ull << 32)) {
    count_pass(v, out, n, count, 0, 12);
    count_pass(out, v, n, count, 0, 28);
    return v;
  }
  int shift = 0;
  while (((hi - lo) >> shift) >= BLOCKS)
    shift++;
  count_pass(v, out, n, count, lo, shift);
  return out;
}

/* Reads every entry of buckets [i0, i1) (their chains up to CHAIN_MAX, at most cap entries)
 * in address order: a large hash's entries lie all over the heap, and read in bucket order
 * each one is a cache and TLB miss. e[k] for k < i1 - i0 is bucket i0 + k's first entry;
 * the others are linked. Returns 0, or -1 when the chains hold more than cap entries. */
static int gather(struct pctx *c, const void *b, uint64_t i0, uint64_t i1, int keylen,
                  struct hent *e, size_t cap, uint64_t (*v)[2], uint64_t (*tmp)[2])
{
  size_t nb = (size_t)(i1 - i0), ne = nb, n = 0;
  for (size_t k = 0; k < nb; k++) {
    uint64_t he = ld64(b, i0 + k);
    e[k].link = NO_LINK;
    if (he) {
      v[n][0] = he;
      v[n++][1] = k;
    }
  }
  for (size_t depth = 0; n && depth < CHAIN_MAX; depth++) {
    uint64_t (*o)[2] = by_block(v, tmp, n, (uint32_t *)(tmp + cap));
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
      if (j + 8 < n) {
        const void *p = mem_copy_ptr(c->mem, o[j + 8][0], 8);
        if (p)
          __builtin_prefetch(p);
      }
      uint64_t next;
      struct hent *x = &e[o[j][1]];
      hent_read(c, o[j][0], keylen, x, &next);
      if (!x->ok || x->end || depth + 1 == CHAIN_MAX)
        continue;
      if (ne == cap)
        return -1;
      x->link = (uint32_t)ne;
      v[m][0] = next;     /* (when o is v: m <= j, this round's pairs are behind) */
      v[m++][1] = ne++;
    }
    n = m;
  }
  return 0;
}

/* Every entry of a hash: its bytes (entries, unshared keys) and, unless it is PL_strtab
 * (whose values are counts), an edge to each value. */
static uint64_t hash_entries(struct pctx *c, uint64_t hv, uint64_t any, uint64_t array,
                             uint32_t flags, int edges)
{
  const struct pl_layout *lo = c->lo;
  uint64_t max, keys, bytes = 0;
  if (r64(c, any + lo->xhv.max, &max) || max >= BUCKETS_MAX || !array)
    return 0;
  r64(c, any + lo->xhv.keys, &keys);
  int many = keys > HEAP_NAMED_MAX;
  int shared = hv != c->strtab && (flags & lo->heap.svphv_sharekeys);
  int keylen = hv == c->strtab || !shared;   /* (a shared key's length is not counted here) */
  /* the buckets straight from the copy (a large hash's array is tens of MB: no copy of it) */
  uint64_t *own = NULL;
  const void *b = mem_copy_ptr(c->mem, array, (max + 1) * 8);
  if (!b) {
    if (!(own = malloc((max + 1) * 8)) || mem_read(c->mem, array, own, (max + 1) * 8)) {
      free(own);
      return 0;
    }
    b = own;
  }
  /* a large hash's entries are read ahead, a slice of buckets at a time, in address order
   * (a slice whose chains are longer than a real hash's is read in order as a small hash's) */
  size_t slice = max + 1 >= GATHER_MIN ? (max + 1 < GATHER_BUCKETS ? max + 1 : GATHER_BUCKETS) : 0;
  size_t cap = 4 * slice + 1024;
  size_t elen = cap * sizeof(struct hent), vlen = cap * sizeof(uint64_t[2]);
  struct hent *e = slice ? big_alloc(elen) : NULL;
  /* (v, then tmp, then by_block's counts) */
  vlen = 2 * vlen + BLOCKS * sizeof(uint32_t);
  uint64_t (*v)[2] = e ? big_alloc(vlen) : NULL, (*tmp)[2] = v ? v + cap : NULL;
  if (!v) {
    big_free(e, elen);
    e = NULL;
  }
  char label[LABEL];
  /* a real hash has about as many entries as buckets: a garbage one (a VM mid-update, a
   * corrupt copy) is not followed much further than that, nor past a few bad reads */
  uint64_t budget = 4 * (max + 1) + 1024, i0 = 0, i1 = 0;
  int bad = 0, gathered = 0;
  for (uint64_t i = 0; i <= max && budget && bad < 16; i++) {
    if (e && i == i1) {
      i0 = i;
      i1 = max + 1 - i > slice ? i + slice : max + 1;
      gathered = !gather(c, b, i, i1, keylen, e, cap, v, tmp);
    }
    uint64_t he = ld64(b, i);
    /* (the entries are scattered: each one a cache miss; a few buckets on fetched ahead) */
    if (!gathered && i + 8 <= max && ld64(b, i + 8)) {
      const void *p = mem_copy_ptr(c->mem, ld64(b, i + 8), 8);
      if (p)
        __builtin_prefetch(p);
    }
    uint32_t k = (uint32_t)(i - i0);
    /* (a chain's second entry was read later than the buckets around it: fetched ahead) */
    if (gathered && i + 16 < i1 && e[k + 16].ok && e[k + 16].link != NO_LINK)
      __builtin_prefetch(&e[e[k + 16].link]);
    for (size_t n = 0; he && n < CHAIN_MAX && budget; n++, budget--) {
      struct hent one, *x = &one;
      uint64_t next = 0;
      if (gathered)
        x = &e[k];
      else
        hent_read(c, he, keylen, x, &next);
      if (!x->ok) {
        bad++;
        break;
      }
      if (hv == c->strtab) {
        /* a shared key (HE and HEK in one allocation): its hashes' (a key is freed with the
         * last hash that uses it), the table's only when none does */
        heap_object(c->h, x->hek, c->shared_key, lo->heap.shared_he_key + (uint64_t)x->len + 2,
                    NULL);
        heap_root_weak(c->h, x->hek, "(shared hash keys)");
      } else {
        bytes += lo->heap.he_size + (shared ? 0 : lo->heap.hek_size + (uint64_t)x->len + 2);
        if (shared && x->hek)
          heap_edge(c->h, hv, x->hek, "(key)");
      }
      if (edges && x->val && many) {
        heap_edge(c->h, hv, x->val, "{*}");
      } else if (edges && x->val) {
        key_label(c, x->hek, label, sizeof label);
        heap_edge(c->h, hv, x->val, label);
      }
      /* (as the chain is followed: an entry that is its own next ends it, one whose next is
       * 0 is counted against the budget as the step to 0) */
      if (x->end == 2)
        break;
      if (x->end == 1)
        he = 0;
      else if (gathered)
        k = x->link;   /* (NO_LINK only at CHAIN_MAX, which ends the loop first) */
      else
        he = next;
    }
  }
  big_free(e, elen);
  big_free(v, vlen);
  free(own);
  return bytes;
}

/* The pad entries of a sub at depth d (1: the first call), named by its pad names. */
static uint64_t pads(struct pctx *c, uint64_t cv, uint64_t padlist, int root, const char *where)
{
  const struct pl_layout *lo = c->lo;
  uint64_t max, arr;
  if (r64(c, padlist + lo->heap.padl_max, &max) || r64(c, padlist + lo->heap.padl_arr, &arr) ||
      max > (1u << 24) || !arr)
    return 0;
  uint64_t bytes = 24 + (max + 1) * 8;   /* the PADLIST and its array */
  /* (the pads of the first 4096 depths of a deeper recursion: those past them stay
   * unreached) */
  uint64_t v[4097];
  if (max > 4096)
    max = 4096;
  if (mem_read(c->mem, arr, v, (max + 1) * 8))
    return bytes;
  /* names: PadlistARRAY[0] is the PADNAMELIST */
  uint64_t fill = 0, names = 0;
  if (v[0]) {
    r64(c, v[0] + lo->heap.padnl_fill, &fill);
    r64(c, v[0] + lo->heap.padnl_alloc, &names);
  }
  if ((int64_t)fill < 0 || fill > 65535)
    fill = 0;
  for (uint64_t d = 1; d <= max; d++) {
    uint64_t pad = v[d];
    if (!pad)
      continue;
    struct svh ph;
    if (pl_sv_head(c->vm, pad, &ph) || (ph.flags & lo->svt.mask) != lo->heap.t_pvav || !ph.u)
      continue;
    uint64_t pfill;
    if (r64(c, ph.any + lo->heap.xav_fill, &pfill) || (int64_t)pfill < 0 || pfill > 65535)
      continue;
    if (!root)
      heap_edge(c->h, cv, pad, "(pad)");
    for (uint64_t i = 1; i <= pfill; i++) {
      uint64_t pn = 0, pv = 0, sv;
      char nm[NAME_MAX_LEN] = "", label[LABEL];
      if (r64(c, ph.u + i * 8, &sv) || !sv)
        continue;
      if (i <= fill && names && !r64(c, names + i * 8, &pn) && pn &&
          !r64(c, pn + lo->heap.padn_pv, &pv) && pv)
        mem_read_cstr(c->mem, pv, nm, sizeof nm);
      if (!nm[0] || !strchr("$@%&", nm[0])) {
        /* no name: a constant or a temporary of the sub (held by its pad) */
        heap_edge(c->h, cv, sv, "(pad)");
        continue;
      }
      pl_text_ok(nm);
      if (root)
        snprintf(label, sizeof label, "my %s (%s)", nm, where);
      else if (d > 1)
        snprintf(label, sizeof label, "my %s (depth %llu)", nm, (unsigned long long)d);
      else
        snprintf(label, sizeof label, "my %s", nm);
      if (root)
        heap_root(c->h, sv, label);
      else
        heap_edge(c->h, cv, sv, label);
    }
  }
  return bytes;
}

/* "[i]" in buf (by hand: most arrays are small, and there are millions of them) */
static const char *index_label(char *buf, size_t cap, uint64_t i)
{
  if (i >= 100 || cap < 5) {
    snprintf(buf, cap, "[%llu]", (unsigned long long)i);
    return buf;
  }
  char *p = buf;
  *p++ = '[';
  if (i >= 10)
    *p++ = (char)('0' + i / 10);
  *p++ = (char)('0' + i % 10);
  *p++ = ']';
  *p = 0;
  return buf;
}

/* One live SV: its object and its edges. */
static void sv(struct pctx *c, uint64_t addr, const uint8_t *head)
{
  const struct pl_layout *lo = c->lo;
  uint64_t any = rd(head, lo->sv.any, 8), u = rd(head, lo->sv.u, 8);
  uint32_t flags = (uint32_t)rd(head, lo->sv.flags, 4);
  uint32_t t = flags & lo->svt.mask;
  uint64_t size = lo->sv.size;
  if (t < 20)
    size += t == lo->svt.pvhv && (flags & lo->svf_ook) && lo->heap.hv_aux_body
                ? lo->heap.hv_aux_body : lo->heap.body[t];
  char label[LABEL];
  /* string buffers, in use or not (a scalar set to a number or to undef keeps its buffer);
   * a reference's sv_u is its referent, not a buffer. A copy-on-write buffer is shared by
   * the scalars that copied it: an object of its own, theirs (its dominator gets it); one
   * of length 0 is a shared hash key's */
  if (any && !(flags & lo->svf_rok) && u && t >= lo->heap.t_pv &&
      t != lo->heap.t_pvav && t != lo->svt.pvhv && t != lo->svt.pvcv && t != lo->svt.pvgv &&
      t != lo->svt.pvfm && t != lo->heap.t_pvio) {
    uint64_t len;
    if (!r64(c, any + lo->heap.xpv_len, &len) && len < (1ull << 40)) {
      if (!(flags & lo->heap.svf_iscow)) {
        size += len;
      } else if (len) {
        heap_object(c->h, u, c->cow_buffer, len, NULL);
        heap_edge(c->h, addr, u, "");
      } else if (u > lo->hek.key) {
        heap_edge(c->h, addr, u - lo->hek.key, "");
      }
    }
  }
  if (flags & lo->svf_rok) {
    if (u && !(flags & lo->heap.svp_weakref))
      heap_edge(c->h, addr, u, "->");
  } else if (t == lo->heap.t_pvav && any) {
    uint64_t fill, max, alloc;
    if (!r64(c, any + lo->heap.xav_fill, &fill) && !r64(c, any + lo->heap.xav_max, &max) &&
        !r64(c, any + lo->heap.xav_alloc, &alloc) && max < (1ull << 27) && alloc) {
      size += (max + 1) * 8 + (u > alloc ? u - alloc : 0);
      if ((int64_t)fill >= 0 && fill <= max && u && (flags & lo->heap.svpav_real)) {
        uint64_t *own = NULL;
        const void *el = mem_copy_ptr(c->mem, u, (fill + 1) * 8);
        if (!el && (own = malloc((fill + 1) * 8)) && !mem_read(c->mem, u, own, (fill + 1) * 8))
          el = own;
        for (uint64_t i = 0; el && i <= fill; i++) {
          uint64_t e = ld64(el, i);
          if (!e)
            continue;
          heap_edge(c->h, addr, e, fill + 1 > HEAP_NAMED_MAX ? "[*]" : index_label(label, sizeof label, i));
        }
        free(own);
      }
    }
  } else if (t == lo->svt.pvhv && any) {
    uint64_t max;
    if (u && !r64(c, any + lo->xhv.max, &max) && max < BUCKETS_MAX) {
      size += (max + 1) * 8;
      if ((flags & lo->svf_ook) && !lo->heap.hv_aux_body)
        size += lo->heap.hv_aux;   /* (the aux struct follows the buckets) */
    }
    size += hash_entries(c, addr, any, u, flags, 1);
  } else if ((t == lo->svt.pvcv || t == lo->svt.pvfm) && any) {
    uint32_t cvf = 0;
    uint64_t padlist = 0;
    mem_read(c->mem, any + lo->xcv.flags, &cvf, 4);
    if (!(cvf & lo->cvf.isxsub) && !r64(c, any + lo->xcv.padlist, &padlist) && padlist)
      size += pads(c, addr, padlist, 0, NULL);
  } else if (t == lo->svt.pvgv && (flags & lo->svpgv_gp) && u) {
    size += lo->heap.gp_size;
    static const struct { int which; const char *sigil; } slots[] = {
      { 0, "$" }, { 1, "@" }, { 2, "%" }, { 3, "&" }, { 4, "*{IO}" }, { 5, "*{FORMAT}" } };
    uint64_t hek = 0;
    char nm[NAME_MAX_LEN] = "";
    if (!r64(c, any + lo->xgv.namehek, &hek) && hek)
      pl_hek_str(c->vm, hek, nm, sizeof nm);
    for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
      uint16_t o = slots[i].which == 0 ? lo->gp.sv : slots[i].which == 1 ? lo->heap.gp_av
                   : slots[i].which == 2 ? lo->gp.hv : slots[i].which == 3 ? lo->gp.cv
                   : slots[i].which == 4 ? lo->heap.gp_io : lo->heap.gp_form;
      uint64_t s;
      if (!r64(c, u + o, &s) && s) {
        snprintf(label, sizeof label, "%s%s", slots[i].sigil, nm);
        heap_edge(c->h, addr, s, label);
      }
    }
  }
  /* magic: the MAGIC structs, their objects and buffers */
  if (t >= lo->heap.t_pvmg && t < 20 && any && t != lo->svt.pvgv) {
    uint64_t mg;
    r64(c, any + lo->heap.xmg_magic, &mg);
    for (int n = 0; mg && n < 64; n++) {
      uint64_t next, obj, ptr;
      int64_t len = 0;
      size += lo->heap.mg_size;
      if (r64(c, mg + lo->heap.mg_next, &next) || r64(c, mg + lo->heap.mg_obj, &obj) ||
          r64(c, mg + lo->heap.mg_ptr, &ptr) || mem_read(c->mem, mg + lo->heap.mg_len, &len, 8))
        break;
      uint8_t mgf = 0;
      mem_read(c->mem, mg + lo->heap.mg_flags, &mgf, 1);
      if (obj && (mgf & 0x02))   /* MGf_REFCOUNTED: the magic holds its object */
        heap_edge(c->h, addr, obj, "(magic)");
      if (ptr && (int32_t)len == -2)   /* HEf_SVKEY: mg_ptr is an SV */
        heap_edge(c->h, addr, ptr, "(magic)");
      else if (ptr && (int32_t)len > 0)
        size += (uint64_t)(int32_t)len;
      if (next == mg)
        break;
      mg = next;
    }
  }
  heap_object(c->h, addr, sv_type(c, flags), size, class_of(c, any, flags));
}

/* The arenas: every SV head that is not free. */
static int arenas(struct pctx *c, uint64_t first)
{
  const struct pl_layout *lo = c->lo;
  uint64_t sva = first, mark = first;
  size_t power = 1;
  uint8_t *buf = malloc((size_t)ARENA_SLOTS_MAX * lo->sv.size);
  if (!buf)
    return -ENOMEM;
  int r = 0;
  for (size_t n = 0; sva; n++) {
    if (n > ARENAS_MAX || heap_full(c->h)) {
      r = -VMS_E_TRUNCATED;
      break;
    }
    if (n == power) {
      mark = sva;
      power *= 2;
    } else if (n && sva == mark) {
      r = -VMS_E_CYCLE;
      break;
    }
    uint8_t hd[32];
    if (lo->sv.size > sizeof hd || mem_read(c->mem, sva, hd, lo->sv.size)) {
      r = -VMS_E_BADDATA;
      break;
    }
    uint64_t next = rd(hd, lo->sv.any, 8);
    uint32_t slots = (uint32_t)rd(hd, lo->sv.refcnt, 4);
    if (slots < 2 || slots > ARENA_SLOTS_MAX) {
      r = -VMS_E_BADDATA;
      break;
    }
    const uint8_t *a = mem_copy_ptr(c->mem, sva, (size_t)slots * lo->sv.size);
    if (!a) {
      if (mem_read(c->mem, sva, buf, (size_t)slots * lo->sv.size)) {
        r = -VMS_E_BADDATA;
        break;
      }
      a = buf;
    }
    for (uint32_t i = 1; i < slots; i++) {
      const uint8_t *h = a + (size_t)i * lo->sv.size;
      uint32_t flags = (uint32_t)rd(h, lo->sv.flags, 4), refcnt = (uint32_t)rd(h, lo->sv.refcnt, 4);
      if ((flags & 0xff) == 0xff || !refcnt)
        continue;   /* a free head */
      uint64_t addr = sva + (uint64_t)i * lo->sv.size;
      sv(c, addr, h);
      /* what the op trees of compiled code hold (a non-threaded perl keeps constants and
       * patterns in the ops, which are no SVs): read-only values and patterns that nothing
       * else reaches are theirs, not garbage */
      if (flags & (lo->heap.svf_readonly | lo->heap.svf_protect))
        heap_root_weak(c->h, addr, "(compiled code: constants)");
      else if ((flags & lo->svt.mask) == lo->heap.t_regexp)
        heap_root_weak(c->h, addr, "(compiled code: patterns)");
    }
    if (next == sva)
      break;
    sva = next;
  }
  free(buf);
  return r;
}

/* Package variables by name: the stashes from PL_defstash, depth first. */
static void stash(struct pctx *c, uint64_t hv, const char *pkg, int depth, const char *tag)
{
  const struct pl_layout *lo = c->lo;
  if (depth > STASH_DEPTH_MAX || c->nstashes >= STASHES_MAX / 2 || !c->stashes)
    return;
  size_t j = (size_t)(hv >> 4) * 0x9e3779b97f4a7c15ull % STASHES_MAX;
  while (c->stashes[j] && c->stashes[j] != hv)
    j = (j + 1) % STASHES_MAX;
  if (c->stashes[j])
    return;
  c->stashes[j] = hv;
  c->nstashes++;
  struct svh h;
  uint64_t max;
  if (pl_sv_head(c->vm, hv, &h) || (h.flags & lo->svt.mask) != lo->svt.pvhv || !h.u ||
      r64(c, h.any + lo->xhv.max, &max) || max >= (1u << 20))
    return;
  uint64_t *b = malloc((max + 1) * 8);
  if (!b || mem_read(c->mem, h.u, b, (max + 1) * 8)) {
    free(b);
    return;
  }
  uint64_t budget = 4 * (max + 1) + 1024;   /* (as for any hash: see hash_entries) */
  for (uint64_t i = 0; i <= max && budget; i++)
    for (uint64_t he = b[i], n = 0; he && n < CHAIN_MAX && budget; n++, budget--) {
      uint64_t hek, gv, next;
      char key[NAME_MAX_LEN], label[LABEL];
      if (r64(c, he + lo->he.next, &next) || r64(c, he + lo->he.hek, &hek) ||
          r64(c, he + lo->he.val, &gv) || pl_hek_str(c->vm, hek, key, sizeof key))
        break;
      struct svh g;
      if (gv && !pl_sv_head(c->vm, gv, &g) && (g.flags & lo->svt.mask) == lo->svt.pvgv &&
          (g.flags & lo->svpgv_gp) && g.u) {
        size_t kl = strlen(key);
        uint64_t s;
        if (kl > 2 && !strcmp(key + kl - 2, "::")) {
          /* a nested package: its stash (main::main:: is main:: again) */
          char sub[NAME_MAX_LEN * 2];
          int top = !strcmp(pkg, "main");
          snprintf(sub, sizeof sub, "%s%s%.*s", top ? "" : pkg, top ? "" : "::", (int)(kl - 2),
                   key);
          if (!r64(c, g.u + lo->gp.hv, &s) && s)
            stash(c, s, sub, depth + 1, tag);
        } else {
          static const char sig[4] = { '$', '@', '%', '&' };
          uint16_t o[4] = { lo->gp.sv, lo->heap.gp_av, lo->gp.hv, lo->gp.cv };
          for (int k = 0; k < 4; k++)
            if (!r64(c, g.u + o[k], &s) && s) {
              snprintf(label, sizeof label, "%s%c%s::%s", tag, sig[k], pkg, key);
              heap_root(c->h, s, label);
            }
        }
      }
      if (next == he)
        break;
      he = next;
    }
  free(b);
}

/* An interpreter variable's address: in the interpreter struct, or a global. */
static uint64_t var(struct pctx *c, uint64_t interp, uint16_t ofs, const char *sym)
{
  if (c->lo->multiplicity)
    return interp + ofs;
  uint64_t a;
  struct module *m = c->vm->mod;
  if (!m || !m->elf || elf_file_lookup(m->elf, sym, &a, NULL))
    return 0;
  return a + m->bias;
}

static int one_interp(struct pctx *c, uint64_t interp, const char *tag)
{
  const struct pl_layout *lo = c->lo;
  uint64_t arenaroot = 0, defstash = 0, main_cv = 0, strtab = 0, cursi = 0, count = 0;
  r64(c, var(c, interp, lo->interp.sv_arenaroot, "PL_sv_arenaroot"), &arenaroot);
  r64(c, var(c, interp, lo->interp.defstash, "PL_defstash"), &defstash);
  r64(c, var(c, interp, lo->interp.main_cv, "PL_main_cv"), &main_cv);
  r64(c, var(c, interp, lo->interp.strtab, "PL_strtab"), &strtab);
  r64(c, var(c, interp, lo->interp.curstackinfo, "PL_curstackinfo"), &cursi);
  uint64_t cnt_at = var(c, interp, lo->interp.sv_count, "PL_sv_count");
  if (cnt_at)
    mem_read(c->mem, cnt_at, &count, 8);
  c->sv_count += count;
  c->strtab = strtab;
  char label[LABEL];
  /* roots first: package variables, then the file's lexicals, then the rest */
  c->nstashes = 0;
  free(c->stashes);
  c->stashes = calloc(STASHES_MAX, sizeof *c->stashes);
  stash(c, defstash, "main", 0, tag);
  snprintf(label, sizeof label, "%s%%main::", tag);
  if (defstash)
    heap_root(c->h, defstash, label);
  struct svh mh;
  uint64_t padlist = 0;
  if (main_cv && !pl_sv_head(c->vm, main_cv, &mh) && mh.any &&
      !r64(c, mh.any + lo->xcv.padlist, &padlist) && padlist)
    pads(c, main_cv, padlist, 1, tag[0] ? "file scope, other interpreter" : "file scope");
  snprintf(label, sizeof label, "%s(main program)", tag);
  if (main_cv)
    heap_root(c->h, main_cv, label);
  for (int n = 0; cursi && n < SI_MAX; n++) {
    uint64_t stack, prev;
    if (r64(c, cursi + lo->si.stack, &stack) || r64(c, cursi + lo->si.prev, &prev))
      break;
    snprintf(label, sizeof label, "%s(argument stack)", tag);
    if (stack)
      heap_root(c->h, stack, label);
    cursi = prev;
  }
  snprintf(label, sizeof label, "%s(shared hash keys)", tag);
  if (strtab)
    heap_root(c->h, strtab, label);
  return arenas(c, arenaroot);
}

int pl_heap(void *vmv, struct target *t, struct heap *h)
{
  struct pl_vm *vm = vmv;
  const struct pl_layout *lo = vm->lo;
  if (!lo->heap.t_last)
    return -VMS_E_UNSUPPORTED;   /* (a layout table without the heap's part) */
  struct pctx *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->vm = vm;
  c->lo = lo;
  c->mem = t->mem;
  c->h = h;
  c->shared_key = heap_type(h, "shared key");
  c->cow_buffer = heap_type(h, "shared string buffer");
  /* the interpreters: each thread's (threaded perl), else the one */
  uint64_t interps[64];
  size_t n = 0;
  if (lo->multiplicity) {
    for (size_t i = 0; i < t->nthreads && n < 64; i++) {
      uint64_t ip = 0, at = 0;
      if (pl_thread_interp(vm, &t->threads[i], &ip, &at) || !ip)
        continue;
      size_t k = 0;
      while (k < n && interps[k] != ip)
        k++;
      if (k == n)
        interps[n++] = ip;
    }
    uint64_t cur = 0;
    if (!n && !rptr(vm, vm->curinterp, &cur) && cur)
      interps[n++] = cur;
  } else {
    interps[n++] = 0;
  }
  int r = n ? 0 : -VMS_E_NORUNTIME;
  for (size_t i = 0; i < n && !r; i++) {
    char tag[32] = "";
    if (n > 1)
      snprintf(tag, sizeof tag, "interpreter %zu: ", i + 1);
    r = one_interp(c, interps[i], tag);
  }
  heap_vm_total(h, 0, c->sv_count, "PL_sv_count");
  free(c->stashes);
  free(c);
  return r;
}

/* The key under which hash or array `from` holds `to`, read from the process as it is. */
int pl_heap_label(void *vmv, struct target *t, uint64_t from, uint64_t to, char *buf,
                  size_t cap)
{
  struct pl_vm *vm = vmv;
  const struct pl_layout *lo = vm->lo;
  struct pctx *c = calloc(1, sizeof *c);
  struct svh h;
  int r = -ENOENT;
  if (!c)
    return -ENOMEM;
  c->vm = vm;
  c->lo = lo;
  c->mem = t->mem;
  if (!pl_sv_head(vm, from, &h) && h.any && h.u) {
    uint32_t ty = h.flags & lo->svt.mask;
    uint64_t max = 0, fill = 0;
    if (ty == lo->heap.t_pvav && !r64(c, h.any + lo->heap.xav_fill, &fill) && fill < (1u << 24)) {
      uint64_t *el = malloc((fill + 1) * 8);
      if (el && !mem_read(c->mem, h.u, el, (fill + 1) * 8))
        for (uint64_t i = 0; i <= fill && r; i++)
          if (el[i] == to) {
            snprintf(buf, cap, "[%llu]", (unsigned long long)i);
            r = 0;
          }
      free(el);
    } else if (ty == lo->svt.pvhv && !r64(c, h.any + lo->xhv.max, &max) && max < (1u << 24)) {
      uint64_t *b = malloc((max + 1) * 8);
      if (b && !mem_read(c->mem, h.u, b, (max + 1) * 8))
        for (uint64_t i = 0, budget = 4 * (max + 1) + 1024; i <= max && r && budget; i++)
          for (uint64_t he = b[i], next, hek, val; he && r && budget; he = next, budget--) {
            if (r64(c, he + lo->he.next, &next) || r64(c, he + lo->he.hek, &hek) ||
                r64(c, he + lo->he.val, &val) || next == he)
              break;
            if (val == to) {
              key_label(c, hek, buf, cap);
              r = 0;
            }
          }
      free(b);
    }
  }
  free(c);
  return r;
}
