/* Folded stacks (Brendan Gregg's collapsed format): "a;b;c 12" per distinct stack. */
#include <inttypes.h>
#include <stdio.h>

#include "vmstack/profile.h"

static int line(void *arg, const char *const *names, const uint8_t *kinds, size_t n,
                uint64_t count)
{
  FILE *f = arg;
  (void)kinds;
  for (size_t i = 0; i < n; i++) {
    if (i)
      putc(';', f);
    fputs(names[i], f);
  }
  fprintf(f, " %" PRIu64 "\n", count);
  return ferror(f) ? -1 : 0;
}

int output_folded(FILE *f, struct profile *p, const struct profile_meta *m)
{
  return profile_each(p, m->with_threads, line, f);
}
