/* The profile: every distinct stack as keys with its count, names interned, native frames
 * named after the target is released (or when a process is let go early). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/profile.h"
#include "vmstack/runtime.h"
#include "vmstack/symbolize.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"
#include "record_impl.h"

int64_t profile_intern(struct profile *p, const char *s)
{
  if (p->nstrs * 2 >= p->strcap) {
    size_t nc = p->strcap ? p->strcap * 2 : 1024;
    uint32_t *nt = calloc(nc, sizeof *nt);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < p->nstrs; i++) {
      size_t j = hash_bytes(p->strs[i], strlen(p->strs[i]), HASH_SEED) & (nc - 1);
      while (nt[j])
        j = (j + 1) & (nc - 1);
      nt[j] = (uint32_t)i + 1;
    }
    free(p->strtab);
    p->strtab = nt;
    p->strcap = nc;
  }
  size_t j = hash_bytes(s, strlen(s), HASH_SEED) & (p->strcap - 1);
  while (p->strtab[j]) {
    if (!strcmp(p->strs[p->strtab[j] - 1], s))
      return p->strtab[j] - 1;
    j = (j + 1) & (p->strcap - 1);
  }
  if (p->nstrs == p->capstrs) {
    size_t nc = p->capstrs ? p->capstrs * 2 : 256;
    char **ns = realloc(p->strs, nc * sizeof *ns);
    if (!ns)
      return -ENOMEM;
    p->strs = ns;
    p->capstrs = nc;
  }
  char *d = strdup(s);
  if (!d)
    return -ENOMEM;
  p->strs[p->nstrs] = d;
  p->strtab[j] = (uint32_t)++p->nstrs;
  return (int64_t)p->nstrs - 1;
}

int profile_add_stack(struct profile *p, const uint64_t *keys, uint32_t n, uint64_t weight,
                      uint64_t weight2)
{
  if (p->used * 2 >= p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 1024;
    struct pstack *nt = calloc(nc, sizeof *nt);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < p->cap; i++) {
      if (!p->tab[i].keys)
        continue;
      size_t j = p->tab[i].hash & (nc - 1);
      while (nt[j].keys)
        j = (j + 1) & (nc - 1);
      nt[j] = p->tab[i];
    }
    free(p->tab);
    p->tab = nt;
    p->cap = nc;
  }
  uint64_t h = hash_bytes(keys, n * sizeof *keys, HASH_SEED ^ n);
  size_t j = h & (p->cap - 1);
  while (p->tab[j].keys) {
    struct pstack *s = &p->tab[j];
    if (s->hash == h && s->n == n && !memcmp(s->keys, keys, n * sizeof *keys)) {
      s->count += weight;
      s->count2 += weight2;
      p->total += weight;
      return 0;
    }
    j = (j + 1) & (p->cap - 1);
  }
  uint64_t *k = malloc((n ? n : 1) * sizeof *k);
  if (!k)
    return -ENOMEM;
  memcpy(k, keys, n * sizeof *k);
  p->tab[j] = (struct pstack){ h, weight, weight2, n, k };
  p->used++;
  p->total += weight;
  return 0;
}

struct profile *profile_new(void)
{
  return calloc(1, sizeof(struct profile));
}

int profile_add_names(struct profile *p, const char *const *names, size_t n, uint8_t kind,
                      uint64_t weight, uint64_t weight2)
{
  uint64_t keys[256];
  if (n > sizeof keys / sizeof *keys)
    return -E2BIG;
  for (size_t i = 0; i < n; i++) {
    int64_t id = profile_intern(p, names[i]);
    if (id < 0)
      return (int)id;
    keys[n - 1 - i] = ((uint64_t)kind << 60) | (uint64_t)id;   /* (keys are leaf first) */
  }
  return profile_add_stack(p, keys, (uint32_t)n, weight, weight2);
}

void profile_free(struct profile *p)
{
  if (!p)
    return;
  for (size_t i = 0; i < p->cap; i++)
    free(p->tab[i].keys);
  for (size_t i = 0; i < p->nstrs; i++)
    free(p->strs[i]);
  for (size_t i = 0; i < p->nprocs; i++)
    if (p->owned[i])
      target_close(p->owned[i]);
  free(p->named);
  free(p->tab);
  free(p->strs);
  free(p->strtab);
  free(p);
}

/* "func@file:line" for a VM frame; chunk names lose their '@' or '=' */
void profile_vm_name(const struct vm_frame *v, char *buf, size_t cap)
{
  const char *file = v->file[0] == '@' || v->file[0] == '=' ? v->file + 1 : v->file;
  if (!file[0])
    snprintf(buf, cap, "%s", v->func);
  else if (v->line > 0)
    snprintf(buf, cap, "%s@%s:%d", v->func, file, v->line);
  else
    snprintf(buf, cap, "%s@%s", v->func, file);
}

int profile_named_put(struct profile *p, uint64_t key, uint32_t id)
{
  if (p->named_n * 2 >= p->named_cap) {
    size_t nc = p->named_cap ? p->named_cap * 2 : 1024;
    __typeof__(p->named) nt = calloc(nc, sizeof *nt);
    if (!nt)
      return -ENOMEM;
    for (size_t i = 0; i < p->named_cap; i++) {
      if (!p->named[i].key)
        continue;
      size_t j = hash_bytes(&p->named[i].key, 8, HASH_SEED) & (nc - 1);
      while (nt[j].key)
        j = (j + 1) & (nc - 1);
      nt[j] = p->named[i];
    }
    free(p->named);
    p->named = nt;
    p->named_cap = nc;
  }
  size_t j = hash_bytes(&key, 8, HASH_SEED) & (p->named_cap - 1);
  while (p->named[j].key && p->named[j].key != key)
    j = (j + 1) & (p->named_cap - 1);
  if (!p->named[j].key)
    p->named_n++;
  p->named[j].key = key;
  p->named[j].id = id;
  return 0;
}

const char *profile_named_get(const struct profile *p, uint64_t key)
{
  if (!p->named_cap)
    return NULL;
  size_t j = hash_bytes(&key, 8, HASH_SEED) & (p->named_cap - 1);
  while (p->named[j].key) {
    if (p->named[j].key == key)
      return p->strs[p->named[j].id];
    j = (j + 1) & (p->named_cap - 1);
  }
  return NULL;
}

void profile_native_name(struct maps *mp, uint64_t k, char *buf, size_t cap)
{
  struct sym_info si;
  uint64_t pc = k & PC_MASK;
  symbolize(mp, pc, !!(k & KEY_EXACT), 0, &si);
  symbolize_name(&si, pc, buf, cap);
  for (char *c = buf; *c; c++)
    if (*c == ';' || *c == '\n')
      *c = ':';
}

/* Name every native frame of process idx now, while its maps are there. */
void profile_name_natives(struct profile *p, uint32_t idx)
{
  struct maps *mp = p->maps[idx];
  char buf[512];
  if (!mp)
    return;
  for (size_t i = 0; i < p->cap; i++) {
    const struct pstack *s = &p->tab[i];
    for (uint32_t j = 0; s->keys && j < s->n; j++) {
      uint64_t k = s->keys[j];
      if (KEY_TAG(k) != FK_NATIVE || KEY_PROC_OF(k) != idx || profile_named_get(p, k))
        continue;
      profile_native_name(mp, k, buf, sizeof buf);
      int64_t id = profile_intern(p, buf);
      if (id < 0 || profile_named_put(p, k, (uint32_t)id))
        return;
    }
  }
}

int profile_each(struct profile *p, int with_threads, profile_fn fn, void *arg)
{
  size_t cap = 64;
  const char **names = malloc(cap * sizeof *names);
  uint8_t *kinds = malloc(cap);
  char (*bufs)[512] = malloc(cap * sizeof *bufs);
  int r = names && kinds && bufs ? 0 : -ENOMEM;
  for (size_t i = 0; !r && i < p->cap; i++) {
    const struct pstack *s = &p->tab[i];
    if (!s->keys)
      continue;
    if (s->n > cap) {
      cap = s->n;
      const char **nn = realloc(names, cap * sizeof *names);
      uint8_t *nk = realloc(kinds, cap);
      char (*nb)[512] = realloc(bufs, cap * sizeof *bufs);
      names = nn ? nn : names;
      kinds = nk ? nk : kinds;
      bufs = nb ? nb : bufs;
      if (!nn || !nk || !nb) {
        r = -ENOMEM;
        break;
      }
    }
    /* root first */
    for (uint32_t j = 0; j < s->n; j++) {
      uint64_t k = s->keys[s->n - 1 - j];
      switch (KEY_TAG(k)) {
      case FK_NATIVE: {
        struct maps *mp = p->maps[KEY_PROC_OF(k)];
        const char *nm = mp ? NULL : profile_named_get(p, k);
        if (nm) {
          names[j] = nm;
        } else if (!mp) {
          snprintf(bufs[j], sizeof bufs[j], "[0x%" PRIx64 "]", (uint64_t)(k & PC_MASK));
          names[j] = bufs[j];
        } else {
          profile_native_name(mp, k, bufs[j], sizeof bufs[j]);
          names[j] = bufs[j];
        }
        kinds[j] = FK_NATIVE;
        break;
      }
      default:
        names[j] = p->strs[k & 0xffffffffu];
        kinds[j] = (uint8_t)KEY_TAG(k);
      }
    }
    /* root first: [process,] thread, frames... */
    size_t n = s->n, th = n && kinds[0] == FK_PROCESS ? 1 : 0;
    if (!with_threads && th < n && kinds[th] == FK_THREAD) {
      memmove(names + th, names + th + 1, (n - th - 1) * sizeof *names);
      memmove(kinds + th, kinds + th + 1, n - th - 1);
      n--;
    }
    r = fn(arg, names, kinds, n, s->count, s->count2);
  }
  free(names);
  free(kinds);
  free(bufs);
  return r;
}
