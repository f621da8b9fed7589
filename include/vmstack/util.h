/* Small shared helpers: the one clock and the one hash function. */
#ifndef VMSTACK_UTIL_H
#define VMSTACK_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time in milliseconds and in seconds. */
uint64_t clock_ms(void);
double clock_s(void);

/* FNV-1a over n bytes, from seed (HASH_SEED to start). */
#define HASH_SEED 14695981039346656037ull
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);
/* A 64-bit word (an address) to `bits` well-mixed bits (Fibonacci hashing). */
static inline size_t hash_word(uint64_t a, unsigned bits)
{
  return (size_t)((a >> 3) * 0x9e3779b97f4a7c15ull >> (64 - bits));
}

#endif
