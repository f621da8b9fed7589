/* Folded stacks (Brendan Gregg's collapsed format): "a;b;c 12" per distinct stack. */
#include <inttypes.h>
#include <stdio.h>

#include "vmstack/json.h"
#include "vmstack/profile.h"
#include "vmstack/sink.h"

/* A frame for folded text: ';' (the separator), controls, C1 and invalid UTF-8 as \xNN
 * (names come from the target: a key "a;b" must not split its frame). */
void folded_put(FILE *f, const char *s)
{
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    size_t n = utf8_len(p);
    if (n == 1 && *p >= 0x20 && *p < 0x7f && *p != ';') {
      putc(*p, f);
    } else if (n > 1 && !(p[0] == 0xc2 && p[1] < 0xa0)) {
      fwrite(p, 1, n, f);
    } else {
      fprintf(f, "\\x%02x", *p);
      n = 1;
    }
    p += n;
  }
}

struct fo {
  FILE *f;
  int diff;                /* two counts per line: "stack BEFORE AFTER" (difffolded) */
};

static int line(void *arg, const char *const *names, const uint8_t *kinds, size_t n,
                uint64_t count, uint64_t count2)
{
  struct fo *o = arg;
  FILE *f = o->f;
  (void)kinds;
  for (size_t i = 0; i < n; i++) {
    if (i)
      putc(';', f);
    folded_put(f, names[i]);
  }
  if (o->diff)
    fprintf(f, " %" PRIu64 " %" PRIu64 "\n", count2, count);
  else
    fprintf(f, " %" PRIu64 "\n", count);
  return ferror(f) ? -1 : 0;
}

int output_folded(FILE *f, struct profile *p, const struct profile_meta *m)
{
  struct fo o = { f, m->second == PROFILE_SECOND_BEFORE };
  return profile_each(p, m->with_threads, line, &o);
}
