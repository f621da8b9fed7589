/* speedscope's file format: shared frames, one sampled profile per thread. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/json.h"
#include "vmstack/profile.h"

#ifndef VMSTACK_VERSION
#define VMSTACK_VERSION "0"
#endif

struct sframe {
  char *name;
  uint8_t kind;
};

struct sthread {
  char *name;
  size_t first;    /* index of its first stack in the stack list */
};

struct ss {
  struct sframe *fr;
  size_t nfr, capfr;
  /* stacks: frame indices root first, with weights and thread */
  size_t *idx;
  size_t nidx, capidx;
  struct { size_t off, n; uint64_t count; size_t thread; } *st;
  size_t nst, capst;
  char **threads;
  size_t nthreads;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
  if (need <= *cap)
    return 0;
  size_t nc = *cap ? *cap * 2 : 256;
  while (nc < need)
    nc *= 2;
  void *np = realloc(*p, nc * elem);
  if (!np)
    return -ENOMEM;
  *p = np;
  *cap = nc;
  return 0;
}

static int64_t frame_id(struct ss *s, const char *name, uint8_t kind)
{
  for (size_t i = s->nfr; i-- > 0;)   /* profiles have few hundred distinct frames */
    if (s->fr[i].kind == kind && !strcmp(s->fr[i].name, name))
      return (int64_t)i;
  if (grow((void **)&s->fr, &s->capfr, s->nfr + 1, sizeof *s->fr))
    return -ENOMEM;
  char *d = strdup(name);
  if (!d)
    return -ENOMEM;
  s->fr[s->nfr] = (struct sframe){ d, kind };
  return (int64_t)s->nfr++;
}

static int add(void *arg, const char *const *names, const uint8_t *kinds, size_t n,
               uint64_t count, uint64_t count2)
{
  struct ss *s = arg;
  (void)count2;
  /* one profile per thread: thread names carry their id, unique in the system, so the
   * process frame above them (when following children) is left out */
  if (n && kinds[0] == FK_PROCESS) {
    names++;
    kinds++;
    n--;
  }
  if (!n || kinds[0] != FK_THREAD)
    return 0;
  size_t th = 0;
  while (th < s->nthreads && strcmp(s->threads[th], names[0]))
    th++;
  if (th == s->nthreads) {
    char **nt = realloc(s->threads, (s->nthreads + 1) * sizeof *nt);
    if (!nt)
      return -ENOMEM;
    s->threads = nt;
    if (!(nt[s->nthreads] = strdup(names[0])))
      return -ENOMEM;
    s->nthreads++;
  }
  if (grow((void **)&s->idx, &s->capidx, s->nidx + n, sizeof *s->idx) ||
      grow((void **)&s->st, &s->capst, s->nst + 1, sizeof *s->st))
    return -ENOMEM;
  s->st[s->nst].off = s->nidx;
  s->st[s->nst].n = n - 1;
  s->st[s->nst].count = count;
  s->st[s->nst].thread = th;
  s->nst++;
  for (size_t i = 1; i < n; i++) {
    int64_t id = frame_id(s, names[i], kinds[i]);
    if (id < 0)
      return (int)id;
    s->idx[s->nidx++] = (size_t)id;
  }
  return 0;
}

/* A VM frame is "func@file:line": split it for speedscope's name/file/line. */
static void frame_json(FILE *f, const struct sframe *fr)
{
  char *at = fr->kind == FK_FUNCTION || fr->kind == FK_JIT ? strrchr(fr->name, '@') : NULL;
  if (!at) {
    fputs("{\"name\":", f);
    json_str(f, fr->name);
    putc('}', f);
    return;
  }
  *at = 0;
  fputs("{\"name\":", f);
  json_str(f, fr->name);
  char *colon = strrchr(at + 1, ':');
  char *end = NULL;
  long line = colon ? strtol(colon + 1, &end, 10) : 0;
  if (colon && end && !*end && line > 0)
    *colon = 0;
  else
    line = 0;
  fputs(",\"file\":", f);
  json_str(f, at + 1);
  if (line > 0)
    fprintf(f, ",\"line\":%ld", line);
  putc('}', f);
  if (line > 0)
    *colon = ':';
  *at = '@';
}

int output_speedscope(FILE *f, struct profile *p, const struct profile_meta *m)
{
  struct ss s = { 0 };
  int r = profile_each(p, 1, add, &s);
  if (r)
    goto out;
  fputs("{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"name\":", f);
  json_str(f, m->title);
  fputs(",\"exporter\":\"vmstack " VMSTACK_VERSION "\",\"activeProfileIndex\":0,"
        "\"shared\":{\"frames\":[", f);
  for (size_t i = 0; i < s.nfr; i++) {
    if (i)
      putc(',', f);
    frame_json(f, &s.fr[i]);
  }
  fputs("]},\"profiles\":[", f);
  for (size_t t = 0; t < s.nthreads; t++) {
    uint64_t total = 0;
    for (size_t i = 0; i < s.nst; i++)
      if (s.st[i].thread == t)
        total += s.st[i].count;
    fprintf(f, "%s{\"type\":\"sampled\",\"name\":", t ? "," : "");
    json_str(f, s.threads[t]);
    fprintf(f, ",\"unit\":\"%s\",\"startValue\":0,\"endValue\":%" PRIu64 ",\"samples\":[",
            m->bytes ? "bytes" : "none",
            total);
    int first = 1;
    for (size_t i = 0; i < s.nst; i++) {
      if (s.st[i].thread != t)
        continue;
      fputs(first ? "[" : ",[", f);
      first = 0;
      for (size_t j = 0; j < s.st[i].n; j++)
        fprintf(f, "%s%zu", j ? "," : "", s.idx[s.st[i].off + j]);
      putc(']', f);
    }
    fputs("],\"weights\":[", f);
    first = 1;
    for (size_t i = 0; i < s.nst; i++)
      if (s.st[i].thread == t) {
        fprintf(f, "%s%" PRIu64, first ? "" : ",", s.st[i].count);
        first = 0;
      }
    fputs("]}", f);
  }
  fputs("]}\n", f);
  r = ferror(f) ? -EIO : 0;
out:
  for (size_t i = 0; i < s.nfr; i++)
    free(s.fr[i].name);
  for (size_t i = 0; i < s.nthreads; i++)
    free(s.threads[i]);
  free(s.fr);
  free(s.idx);
  free(s.st);
  free(s.threads);
  return r;
}
