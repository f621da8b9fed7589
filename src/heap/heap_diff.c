/* Growth between two heap snapshots of a process: the earlier one read back from the JSON
 * report `vmstack heap -f json` wrote (its "stacks", one per line), set against the
 * flame-graph stacks of the current one. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/heap.h"
#include "vmstack/util.h"

#define SEP '\x1f'              /* between the frames of a key (never in a frame name) */
#define LINE_MAX_BYTES (1u << 20)

struct entry {
  char *key;                    /* frames joined by SEP */
  uint64_t before_b, before_o, after_b, after_o;
  int64_t maxchild;             /* prefixes: the largest growth of one child */
};

struct table {
  struct entry *v;
  size_t n, cap;
  uint32_t *tab;                /* index + 1 */
  size_t tcap;
};

struct heap_base {
  struct table stacks;
  int pid;
  char runtime[32];
};

static struct entry *find(struct table *t, const char *key, int add)
{
  if (add && (t->n + 1) * 2 >= t->tcap) {
    size_t nc = t->tcap ? t->tcap * 2 : 1024;
    uint32_t *nt = calloc(nc, 4);
    if (!nt)
      return NULL;
    for (size_t i = 0; i < t->n; i++) {
      size_t j = hash_bytes(t->v[i].key, strlen(t->v[i].key), HASH_SEED) & (nc - 1);
      while (nt[j])
        j = (j + 1) & (nc - 1);
      nt[j] = (uint32_t)i + 1;
    }
    free(t->tab);
    t->tab = nt;
    t->tcap = nc;
  }
  if (!t->tcap)
    return NULL;
  size_t j = hash_bytes(key, strlen(key), HASH_SEED) & (t->tcap - 1);
  while (t->tab[j]) {
    if (!strcmp(t->v[t->tab[j] - 1].key, key))
      return &t->v[t->tab[j] - 1];
    j = (j + 1) & (t->tcap - 1);
  }
  if (!add)
    return NULL;
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 256;
    struct entry *nv = realloc(t->v, nc * sizeof *nv);
    if (!nv)
      return NULL;
    t->v = nv;
    t->cap = nc;
  }
  char *k = strdup(key);
  if (!k)
    return NULL;
  t->v[t->n] = (struct entry){ k, 0, 0, 0, 0, 0 };
  t->tab[j] = (uint32_t)++t->n;
  return &t->v[t->n - 1];
}

static void table_free(struct table *t)
{
  for (size_t i = 0; i < t->n; i++)
    free(t->v[i].key);
  free(t->v);
  free(t->tab);
}

/* -- Reading the baseline ----------------------------------------------------------- */

/* One JSON string at *pp (after its opening quote) into out; *pp past the closing quote. */
static int json_string(const char **pp, char *out, size_t cap)
{
  const char *p = *pp;
  size_t o = 0;
  while (*p && *p != '"') {
    unsigned c = (unsigned char)*p++;
    if (c == '\\') {
      char e = *p++;
      switch (e) {
      case 'n': c = '\n'; break;
      case 't': c = '\t'; break;
      case 'r': c = '\r'; break;
      case 'u': {
        unsigned v = 0;
        for (int i = 0; i < 4; i++) {
          char h = *p++;
          v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                  : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 0);
          if (!h)
            return -1;
        }
        c = v < 0x80 ? v : '?';   /* (our writer escapes controls only) */
        break;
      }
      case 0: return -1;
      default: c = (unsigned char)e;
      }
    }
    if (c == (unsigned char)SEP)
      c = ' ';
    if (o + 1 < cap)
      out[o++] = (char)c;
  }
  if (*p != '"')
    return -1;
  out[o] = 0;
  *pp = p + 1;
  return 0;
}

/* A stacks line: {"stack":["a","b"],"bytes":N,"objects":M} */
static int stack_line(const char *l, char *key, size_t cap, uint64_t *b, uint64_t *o)
{
  const char *p = strstr(l, "{\"stack\":[");
  if (!p)
    return -1;
  p += 10;
  size_t k = 0;
  key[0] = 0;
  while (*p == '"') {
    char frame[1024];
    p++;
    if (json_string(&p, frame, sizeof frame))
      return -1;
    int n = snprintf(key + k, k < cap ? cap - k : 0, "%s%s", k ? "\x1f" : "", frame);
    k += n > 0 ? (size_t)n : 0;
    if (*p == ',')
      p++;
  }
  const char *bb = strstr(p, "\"bytes\":"), *oo = strstr(p, "\"objects\":");
  if (*p != ']' || !bb || !oo || k >= cap)
    return -1;
  *b = strtoull(bb + 8, NULL, 10);
  *o = strtoull(oo + 10, NULL, 10);
  return 0;
}

int heap_base_load(const char *path, struct heap_base **ret)
{
  FILE *f = fopen(path, "re");
  if (!f)
    return errno ? -errno : -EIO;
  struct heap_base *b = calloc(1, sizeof *b);
  char *line = malloc(LINE_MAX_BYTES), *key = malloc(LINE_MAX_BYTES);
  int r = b && line && key ? -EINVAL : -ENOMEM, in_stacks = 0, seen = 0;
  while (b && line && key && fgets(line, LINE_MAX_BYTES, f)) {
    if (!seen) {
      const char *p = strstr(line, "\"pid\":");
      if (!p || strncmp(line, "{\"pid\":", 7))
        break;   /* not a heap report */
      b->pid = atoi(p + 6);
      const char *rt = strstr(line, "\"runtime\":\"");
      if (rt) {
        rt += 11;
        size_t k = 0;
        while (rt[k] && rt[k] != '"' && k + 1 < sizeof b->runtime) {
          b->runtime[k] = rt[k];
          k++;
        }
        b->runtime[k] = 0;
      }
      seen = 1;
    }
    if (strstr(line, "\"stacks\":["))
      in_stacks = 1;
    uint64_t by, ob;
    if (in_stacks && !stack_line(line, key, LINE_MAX_BYTES, &by, &ob)) {
      struct entry *e = find(&b->stacks, key, 1);
      if (!e) {
        r = -ENOMEM;
        break;
      }
      e->before_b += by;
      e->before_o += ob;
      r = 0;
    }
  }
  fclose(f);
  free(line);
  free(key);
  if (r) {
    heap_base_free(b);
    return r;
  }
  *ret = b;
  return 0;
}

void heap_base_free(struct heap_base *b)
{
  if (!b)
    return;
  table_free(&b->stacks);
  free(b);
}

int heap_base_pid(const struct heap_base *b)
{
  return b->pid;
}

const char *heap_base_runtime(const struct heap_base *b)
{
  return b->runtime;
}

/* -- Setting them side by side ------------------------------------------------------ */

struct both {
  struct table t;
  int err;
};

static int add_now(void *arg, const char *const *names, size_t n, uint64_t bytes,
                   uint64_t objects)
{
  struct both *bo = arg;
  char key[8192];
  size_t k = 0;
  for (size_t i = 0; i < n && k < sizeof key; i++) {
    int w = snprintf(key + k, sizeof key - k, "%s%s", i ? "\x1f" : "", names[i]);
    k += w > 0 ? (size_t)w : 0;
  }
  struct entry *e = find(&bo->t, key, 1);
  if (!e)
    return -ENOMEM;
  e->after_b += bytes;
  e->after_o += objects;
  return 0;
}

/* Does frame f (up to its end, a SEP or NUL) stand for all of a container's children? */
static int collapsed(const char *f)
{
  return !strncmp(f, "{*}", 3) || !strncmp(f, "[*]", 3);
}

/* The end of the first step of frame f when it is one key of a container (".name",
 * "[3]", "[\"a b\"]", "{name}", "{\"a b\"}"): NULL when it is not. */
static const char *key_step_end(const char *f, int *numeric)
{
  *numeric = 0;
  if (f[0] == '.') {
    size_t n = 1 + strcspn(f + 1, ".[{ \x1f-");
    return n > 1 ? f + n : NULL;
  }
  if (f[0] != '[' && f[0] != '{')
    return NULL;
  char close = f[0] == '[' ? ']' : '}';
  const char *p = f + 1;
  int digits = 1;
  if (*p == '"') {
    digits = 0;
    for (p++; *p && *p != '"' && *p != SEP; p++)
      if (*p == '\\' && p[1])
        p++;
    if (*p != '"')
      return NULL;
    p++;
  } else {
    for (; *p && *p != close && *p != SEP && *p != ' '; p++)
      digits &= *p >= '0' && *p <= '9';
  }
  if (*p != close)
    return NULL;
  *numeric = f[0] == '[' && digits && p > f + 1;
  return p + 1;
}

/* A container crosses the number of children past which they are shown as one {*} frame
 * (64) between the snapshots: its children are named one by one on one side and {*} on the
 * other. Named on one side where the other has {*} under the same frames, they are taken
 * as {*} (or [*] for array indexes) on both, so that the growth is what was added and not
 * the whole container. */
static int collapse_alike(struct table *t)
{
  struct table pre = { 0 };
  char *key = malloc(8192);
  int r = key ? 0 : -ENOMEM;
  /* the frames under which some frame is {*}/[*] */
  for (size_t i = 0; !r && i < t->n; i++) {
    const char *k = t->v[i].key;
    for (const char *f = k; f; ) {
      if (collapsed(f) && f > k) {
        snprintf(key, 8192, "%.*s", (int)(f - k - 1), k);
        if (!find(&pre, key, 1))
          r = -ENOMEM;
      }
      f = strchr(f, SEP);
      f = f ? f + 1 : NULL;
    }
  }
  for (int pass = 0; !r && pre.n && pass < 64; pass++) {
    int moved = 0;
    for (size_t i = 0, n = t->n; !r && i < n; i++) {
      const char *k = t->v[i].key;
      for (const char *f = k; f; ) {
        int num;
        const char *e = f > k && !collapsed(f) ? key_step_end(f, &num) : NULL;
        if (e) {
          snprintf(key, 8192, "%.*s", (int)(f - k - 1), k);
          if (find(&pre, key, 0)) {
            /* this key's counts go to the same stack with {*} in place of the key */
            int w = snprintf(key, 8192, "%.*s%s%s", (int)(f - k), k, num ? "[*]" : "{*}", e);
            if (w <= 0 || w >= 8192)
              break;
            struct entry *to = find(t, key, 1);
            if (!to) {
              r = -ENOMEM;
              break;
            }
            struct entry *from = &t->v[i];   /* (find may have moved the entries) */
            to->before_b += from->before_b;
            to->before_o += from->before_o;
            to->after_b += from->after_b;
            to->after_o += from->after_o;
            from->before_b = from->before_o = from->after_b = from->after_o = 0;
            moved = 1;
            break;
          }
        }
        f = strchr(f, SEP);
        f = f ? f + 1 : NULL;
      }
    }
    if (!moved)
      break;
  }
  free(key);
  table_free(&pre);
  return r;
}

/* Every stack of either snapshot, with its bytes and objects in both. */
static int merge(struct heap *h, const struct heap_base *base, struct table *out)
{
  struct both bo = { 0 };
  int r = heap_each_stack(h, add_now, &bo);
  for (size_t i = 0; !r && i < base->stacks.n; i++) {
    const struct entry *be = &base->stacks.v[i];
    struct entry *e = find(&bo.t, be->key, 1);
    if (!e) {
      r = -ENOMEM;
      break;
    }
    e->before_b += be->before_b;
    e->before_o += be->before_o;
  }
  if (!r)
    r = collapse_alike(&bo.t);
  if (r) {
    table_free(&bo.t);
    return r;
  }
  *out = bo.t;
  return 0;
}

int heap_diff_each(struct heap *h, const struct heap_base *base, heap_diff_fn fn, void *arg)
{
  struct table t;
  int r = merge(h, base, &t);
  if (r)
    return r;
  const char *names[256];
  char *buf = NULL;
  for (size_t i = 0; !r && i < t.n; i++) {
    free(buf);
    if (!(buf = strdup(t.v[i].key))) {
      r = -ENOMEM;
      break;
    }
    size_t n = 0;
    if (!t.v[i].before_b && !t.v[i].after_b)
      continue;   /* (its counts moved to a {*} stack) */
    for (char *p = buf, *s; p && n < 256; p = s) {
      s = strchr(p, SEP);
      if (s)
        *s++ = 0;
      names[n++] = p;
    }
    r = fn(arg, names, n, t.v[i].before_b, t.v[i].after_b);
  }
  free(buf);
  table_free(&t);
  return r;
}

/* "label <type>" frames as a path: labels joined as the language spells them, the last
 * frame's type at the end. */
static void path_text(const char *key, char *out, size_t cap)
{
  size_t o = 0;
  const char *last_type = NULL;
  out[0] = 0;
  for (const char *p = key; *p;) {
    const char *e = strchr(p, SEP);
    size_t len = e ? (size_t)(e - p) : strlen(p);
    const char *lt = NULL;
    for (const char *q = p; q + 1 < p + len; q++)
      if (q[0] == '<' && (q == p || q[-1] == ' '))
        lt = q;
    size_t ll = lt ? (size_t)(lt - p) : len;
    while (ll && p[ll - 1] == ' ')
      ll--;
    if (ll) {
      int glued = p[0] == '.' || p[0] == '[' || p[0] == '{' || (p[0] == '-' && p[1] == '>');
      int w = snprintf(out + o, o < cap ? cap - o : 0, "%s%.*s", o && !glued ? " → " : "",
                       (int)ll, p);
      o += w > 0 ? (size_t)w : 0;
    }
    last_type = lt;
    p = e ? e + 1 : p + len;
    if (last_type && (!e || !*p)) {
      const char *te = memchr(last_type, SEP, (size_t)(p - last_type));
      size_t tl = te ? (size_t)(te - last_type) : strcspn(last_type, "\x1f");
      int w = snprintf(out + o, o < cap ? cap - o : 0, " %.*s", (int)tl, last_type);
      o += w > 0 ? (size_t)w : 0;
    }
  }
  if (o >= cap && cap > 4)
    memcpy(out + cap - 4, "...", 4);
}

static int by_growth(const void *a, const void *b)
{
  const struct heap_growth *x = a, *y = b;
  if (x->bytes != y->bytes)
    return x->bytes > y->bytes ? -1 : 1;
  return strcmp(x->path, y->path);
}

int heap_growth(struct heap *h, const struct heap_base *base, size_t want,
                struct heap_growth **ret, size_t *ret_n)
{
  *ret = NULL;
  *ret_n = 0;
  struct table t, pre = { 0 };
  int r = merge(h, base, &t);
  if (r)
    return r;
  /* every prefix with the growth of everything below it */
  char *key = malloc(8192);
  if (!key)
    r = -ENOMEM;
  for (size_t i = 0; !r && i < t.n; i++) {
    const struct entry *e = &t.v[i];
    snprintf(key, 8192, "%s", e->key);
    for (char *p = key;;) {
      char *s = strchr(p, SEP);
      if (s)
        *s = 0;
      struct entry *pe = find(&pre, key, 1);
      if (!pe) {
        r = -ENOMEM;
        break;
      }
      pe->before_b += e->before_b;
      pe->after_b += e->after_b;
      pe->before_o += e->before_o;
      pe->after_o += e->after_o;
      if (!s)
        break;
      *s = SEP;
      p = s + 1;
    }
  }
  /* each prefix's largest child growth */
  for (size_t i = 0; !r && i < pre.n; i++) {
    char *cut = strrchr(pre.v[i].key, SEP);
    if (!cut)
      continue;
    *cut = 0;
    struct entry *parent = find(&pre, pre.v[i].key, 0);
    *cut = SEP;
    int64_t d = (int64_t)pre.v[i].after_b - (int64_t)pre.v[i].before_b;
    if (parent && d > parent->maxchild)
      parent->maxchild = d;
  }
  /* where growth accumulates: a prefix none of whose children holds 90% of its growth */
  struct heap_growth *out = r ? NULL : calloc(pre.n ? pre.n : 1, sizeof *out);
  size_t n = 0;
  if (!r && !out)
    r = -ENOMEM;
  for (size_t i = 0; !r && i < pre.n; i++) {
    const struct entry *e = &pre.v[i];
    int64_t d = (int64_t)e->after_b - (int64_t)e->before_b;
    if (d <= 0)
      continue;
    if (e->maxchild * 10 >= d * 9)
      continue;   /* one child holds nearly all of it: that child is listed */
    struct heap_growth *g = &out[n++];
    g->bytes = d;
    g->objects = (int64_t)e->after_o - (int64_t)e->before_o;
    g->before = e->before_b;
    g->after = e->after_b;
    path_text(e->key, g->path, sizeof g->path);
  }
  free(key);
  table_free(&pre);
  table_free(&t);
  if (r) {
    free(out);
    return r;
  }
  qsort(out, n, sizeof *out, by_growth);
  /* (what grew by under 1% of the most is not where the memory went) */
  while (n && out[n - 1].bytes * 100 < out[0].bytes)
    n--;
  *ret = out;
  *ret_n = n < want ? n : want;
  return 0;
}
