/* pprof: a gzipped perftools.profiles.Profile, from a small protobuf encoder of our own.
 * Field numbers from google/pprof's profile.proto: Profile{sample_type 1, sample 2,
 * location 4, function 5, string_table 6, time_nanos 9, duration_nanos 10, period_type 11,
 * period 12}; ValueType{type 1, unit 2}; Sample{location_id 1, value 2, label 3};
 * Label{key 1, str 2, num 3}; Location{id 1, line 4}; Line{function_id 1, line 2};
 * Function{id 1, name 2, system_name 3, filename 4}. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "vmstack/profile.h"

/* -- Protobuf writing ------------------------------------------------------ */

struct buf {
  uint8_t *b;
  size_t n, cap;
  int err;
};

static void put(struct buf *b, const void *p, size_t n)
{
  if (b->err)
    return;
  if (b->n + n > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 4096;
    while (nc < b->n + n)
      nc *= 2;
    uint8_t *nb = realloc(b->b, nc);
    if (!nb) {
      b->err = -ENOMEM;
      return;
    }
    b->b = nb;
    b->cap = nc;
  }
  memcpy(b->b + b->n, p, n);
  b->n += n;
}

static void varint(struct buf *b, uint64_t v)
{
  uint8_t t[10];
  size_t n = 0;
  do {
    t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  put(b, t, n);
}

static void field_varint(struct buf *b, unsigned field, uint64_t v)
{
  varint(b, (uint64_t)field << 3);
  varint(b, v);
}

static void field_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
  varint(b, (uint64_t)field << 3 | 2);
  varint(b, n);
  put(b, p, n);
}

static void field_msg(struct buf *b, unsigned field, struct buf *m)
{
  field_bytes(b, field, m->b, m->n);
  if (m->err)
    b->err = m->err;
  m->n = 0;
}

/* -- Tables ------------------------------------------------------------------ */

struct strtab {
  char **s;
  size_t n, cap;
};

static int64_t str_id(struct strtab *t, const char *s)
{
  for (size_t i = 0; i < t->n; i++)
    if (!strcmp(t->s[i], s))
      return (int64_t)i;
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 256;
    char **ns = realloc(t->s, nc * sizeof *ns);
    if (!ns)
      return -ENOMEM;
    t->s = ns;
    t->cap = nc;
  }
  if (!(t->s[t->n] = strdup(s)))
    return -ENOMEM;
  return (int64_t)t->n++;
}

struct pp {
  struct strtab strs;
  struct strtab funcs;     /* "kind\\x1fname": one function (and one location) per frame */
  struct buf samples;      /* encoded Sample messages */
  struct buf tmp, tmp2;
  uint64_t period_ns;
  int pid;
  int bytes;               /* a heap profile: objects and bytes; else samples and CPU time */
};

static int add(void *arg, const char *const *names, const uint8_t *kinds, size_t n,
               uint64_t count, uint64_t count2)
{
  struct pp *pp = arg;
  /* the process (when following children) and the thread become labels */
  int pid = pp->pid;
  if (n && kinds[0] == FK_PROCESS) {
    const char *s = strstr(names[0], "(pid ");
    if (s)
      pid = (int)strtol(s + 5, NULL, 10);
    names++;
    kinds++;
    n--;
  }
  size_t first = n && kinds[0] == FK_THREAD ? 1 : 0;
  /* location ids, leaf first */
  for (size_t i = n; i-- > first;) {
    char key[600];
    snprintf(key, sizeof key, "%u\x1f%s", kinds[i], names[i]);
    int64_t id = str_id(&pp->funcs, key);
    if (id < 0)
      return (int)id;
    field_varint(&pp->tmp, 1, (uint64_t)id + 1);
  }
  if (pp->bytes) {
    field_varint(&pp->tmp, 2, count2);
    field_varint(&pp->tmp, 2, count);
  } else {
    field_varint(&pp->tmp, 2, count);
    field_varint(&pp->tmp, 2, count * pp->period_ns);
  }
  if (first) {
    /* labels: thread name and tid ("name-tid"), pid */
    const char *dash = strrchr(names[0], '-');
    int64_t kt = str_id(&pp->strs, "thread"), kv = str_id(&pp->strs, names[0]);
    int64_t ktid = str_id(&pp->strs, "tid"), kpid = str_id(&pp->strs, "pid");
    if (kt < 0 || kv < 0 || ktid < 0 || kpid < 0)
      return -ENOMEM;
    field_varint(&pp->tmp2, 1, (uint64_t)kt);
    field_varint(&pp->tmp2, 2, (uint64_t)kv);
    field_msg(&pp->tmp, 3, &pp->tmp2);
    if (dash) {
      field_varint(&pp->tmp2, 1, (uint64_t)ktid);
      field_varint(&pp->tmp2, 3, (uint64_t)strtoll(dash + 1, NULL, 10));
      field_msg(&pp->tmp, 3, &pp->tmp2);
    }
    field_varint(&pp->tmp2, 1, (uint64_t)kpid);
    field_varint(&pp->tmp2, 3, (uint64_t)pid);
    field_msg(&pp->tmp, 3, &pp->tmp2);
  }
  field_msg(&pp->samples, 2, &pp->tmp);
  return pp->samples.err;
}

static void value_type(struct buf *out, unsigned field, struct pp *pp, const char *type,
                       const char *unit)
{
  field_varint(&pp->tmp, 1, (uint64_t)str_id(&pp->strs, type));
  field_varint(&pp->tmp, 2, (uint64_t)str_id(&pp->strs, unit));
  field_msg(out, field, &pp->tmp);
}

int output_pprof(FILE *f, struct profile *p, const struct profile_meta *m)
{
  struct pp pp = { .period_ns = m->rate > 0 ? (uint64_t)(1e9 / m->rate) : 0, .pid = m->pid,
                   .bytes = m->bytes };
  struct buf out = { 0 };
  int r = str_id(&pp.strs, "") < 0 ? -ENOMEM : 0;
  if (!r)
    r = profile_each(p, 1, add, &pp);
  if (r)
    goto done;
  if (m->bytes) {
    /* the names and order of Go's heap profiles, which pprof's heap views expect */
    value_type(&out, 1, &pp, "inuse_objects", "count");
    value_type(&out, 1, &pp, "inuse_space", "bytes");
  } else {
    value_type(&out, 1, &pp, "samples", "count");
    value_type(&out, 1, &pp, "cpu", "nanoseconds");
  }
  put(&out, pp.samples.b, pp.samples.n);
  for (size_t i = 0; i < pp.funcs.n; i++) {
    const char *sep = strchr(pp.funcs.s[i], '\x1f');
    unsigned kind = (unsigned)atoi(pp.funcs.s[i]);
    char name[600];
    snprintf(name, sizeof name, "%s", sep + 1);
    const char *file = "";
    long line = 0;
    char *at = kind == FK_FUNCTION || kind == FK_JIT ? strrchr(name, '@') : NULL;
    if (at) {
      /* Lua "func@file:line": function func in file, at line */
      *at = 0;
      file = at + 1;
      char *colon = strrchr(at + 1, ':');
      if (colon && (line = strtol(colon + 1, NULL, 10)) > 0)
        *colon = 0;
    }
    int64_t nid = str_id(&pp.strs, name), fid = str_id(&pp.strs, file);
    if (nid < 0 || fid < 0) {
      r = -ENOMEM;
      goto done;
    }
    /* Location{id, line{function_id, line}} */
    field_varint(&pp.tmp, 1, i + 1);
    field_varint(&pp.tmp2, 1, i + 1);
    if (line > 0)
      field_varint(&pp.tmp2, 2, (uint64_t)line);
    field_msg(&pp.tmp, 4, &pp.tmp2);
    field_msg(&out, 4, &pp.tmp);
    /* Function{id, name, system_name, filename} */
    field_varint(&pp.tmp, 1, i + 1);
    field_varint(&pp.tmp, 2, (uint64_t)nid);
    field_varint(&pp.tmp, 3, (uint64_t)nid);
    field_varint(&pp.tmp, 4, (uint64_t)fid);
    field_msg(&out, 5, &pp.tmp);
  }
  if (!m->bytes) {
    value_type(&out, 11, &pp, "cpu", "nanoseconds");
    field_varint(&out, 12, pp.period_ns);
  }
  if (m->bytes) {
    int64_t d = str_id(&pp.strs, "inuse_space");
    if (d < 0) {
      r = -ENOMEM;
      goto done;
    }
    field_varint(&out, 14, (uint64_t)d);   /* default_sample_type */
  }
  field_varint(&out, 10, (uint64_t)(m->seconds * 1e9));
  field_varint(&out, 9, (uint64_t)time(NULL) * 1000000000ull);
  /* the string table last: every string is known by now */
  for (size_t i = 0; i < pp.strs.n; i++)
    field_bytes(&out, 6, pp.strs.s[i], strlen(pp.strs.s[i]));
  if ((r = out.err))
    goto done;
  /* gzip (windowBits 15 + 16) */
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    r = -ENOMEM;
    goto done;
  }
  uint8_t chunk[65536];
  z.next_in = out.b;
  z.avail_in = (uInt)out.n;
  int zr;
  do {
    z.next_out = chunk;
    z.avail_out = sizeof chunk;
    zr = deflate(&z, Z_FINISH);
    fwrite(chunk, 1, sizeof chunk - z.avail_out, f);
  } while (zr == Z_OK);
  deflateEnd(&z);
  r = zr == Z_STREAM_END && !ferror(f) ? 0 : -EIO;
done:
  for (size_t i = 0; i < pp.strs.n; i++)
    free(pp.strs.s[i]);
  for (size_t i = 0; i < pp.funcs.n; i++)
    free(pp.funcs.s[i]);
  free(pp.strs.s);
  free(pp.funcs.s);
  free(pp.samples.b);
  free(pp.tmp.b);
  free(pp.tmp2.b);
  free(out.b);
  return r;
}
