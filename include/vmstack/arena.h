/* Arena: many small allocations freed together (a walk's names, a dump's strings).
 * Pointers stay valid until arena_reset() or arena_free(). */
#ifndef VMSTACK_ARENA_H
#define VMSTACK_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_blk;

struct arena {
  struct arena_blk *head;  /* newest block first */
};

void *arena_alloc(struct arena *a, size_t n);
/* A copy of s[0..n) with a NUL after it; NULL when out of memory. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap);
/* Forget everything allocated; the first block is kept for reuse. */
void arena_reset(struct arena *a);
void arena_free(struct arena *a);

#endif
