/* Test seams from the environment (see seams.h). */
#include <stdio.h>
#include <stdlib.h>

#include "vmstack/seams.h"

struct seams seams;

void seams_init(void)
{
  const char *h = getenv("VMSTACK_TEST_HOLD_MS"), *c = getenv("VMSTACK_TEST_CRASH");
  const char *e = getenv("VMSTACK_TEST_CORRUPT");
  seams.hold_ms = h ? atol(h) : 0;
  seams.crash = c && *c == '1';
  unsigned long long seed = 0;
  unsigned permille = 0;
  if (e && sscanf(e, "%llu:%u", &seed, &permille) == 2) {
    seams.corrupt_seed = seed;
    seams.corrupt_permille = permille;
  }
}
