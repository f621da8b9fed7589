/* Arena allocator: blocks of ARENA_BLK bytes, larger requests in blocks of their own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/arena.h"

#define ARENA_BLK 16384

struct arena_blk {
  struct arena_blk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

void *arena_alloc(struct arena *a, size_t n)
{
  n = (n + 15) & ~(size_t)15;
  struct arena_blk *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > ARENA_BLK ? n : ARENA_BLK;
    b = malloc(sizeof *b + cap);
    if (!b)
      return NULL;
    b->used = 0;
    b->cap = cap;
    if (a->head && n > ARENA_BLK) {
      /* an outsized block goes second: the head keeps its room for small ones */
      b->next = a->head->next;
      a->head->next = b;
    } else {
      b->next = a->head;
      a->head = b;
    }
  }
  void *p = b->data + b->used;
  b->used += n;
  return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
  char *p = arena_alloc(a, n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = 0;
  }
  return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
  return arena_strndup(a, s, strlen(s));
}

char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
  char small[256];
  va_list aq;
  va_copy(aq, ap);
  int n = vsnprintf(small, sizeof small, fmt, aq);
  va_end(aq);
  if (n < 0)
    return NULL;
  if ((size_t)n < sizeof small)
    return arena_strndup(a, small, (size_t)n);
  char *p = arena_alloc(a, (size_t)n + 1);
  if (p)
    vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *p = arena_vprintf(a, fmt, ap);
  va_end(ap);
  return p;
}

void arena_reset(struct arena *a)
{
  struct arena_blk *b = a->head;
  if (!b)
    return;
  /* keep one ordinary block */
  struct arena_blk *keep = NULL;
  while (b) {
    struct arena_blk *next = b->next;
    if (!keep && b->cap == ARENA_BLK) {
      keep = b;
    } else {
      free(b);
    }
    b = next;
  }
  if (keep) {
    keep->used = 0;
    keep->next = NULL;
  }
  a->head = keep;
}

void arena_free(struct arena *a)
{
  for (struct arena_blk *b = a->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  a->head = NULL;
}
