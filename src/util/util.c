/* The one clock and the one hash function (util.h). */
#include <time.h>

#include "vmstack/util.h"

uint64_t clock_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double clock_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
  const unsigned char *b = p;
  uint64_t h = seed;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}
