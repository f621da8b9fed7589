/* Test seams: behaviour tests switch on through the environment, read once by the program's
 * entry (seams_init) and nowhere else. Off (all zero) unless set. */
#ifndef VMSTACK_SEAMS_H
#define VMSTACK_SEAMS_H

#include <stdint.h>

struct seams {
  long hold_ms;            /* VMSTACK_TEST_HOLD_MS: keep each stopped thread that long */
  int crash;               /* VMSTACK_TEST_CRASH=1: crash while a thread is held */
  uint64_t corrupt_seed;   /* VMSTACK_TEST_CORRUPT=SEED:PERMILLE: change one byte of that */
  unsigned corrupt_permille;  /* share of our copies of live reads (never the target) */
};

extern struct seams seams;
void seams_init(void);

#endif
