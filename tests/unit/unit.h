/* Tiny helpers for the unit tests: exit 0 pass, 77 skip, 1 with one line on stderr. */
#ifndef VMSTACK_UNIT_H
#define VMSTACK_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#define NOIPA __attribute__((noinline, used))
#else
#define NOIPA __attribute__((noipa, used))
#endif

#define FAIL(...)                                                                           \
  do {                                                                                      \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                         \
    fprintf(stderr, __VA_ARGS__);                                                           \
    fputc('\n', stderr);                                                                    \
    exit(1);                                                                                \
  } while (0)

#define SKIP(...)                                                                           \
  do {                                                                                      \
    fprintf(stderr, "skip: ");                                                              \
    fprintf(stderr, __VA_ARGS__);                                                           \
    fputc('\n', stderr);                                                                    \
    exit(77);                                                                               \
  } while (0)

#define CHECK(cond, ...)                                                                    \
  do {                                                                                      \
    if (!(cond))                                                                            \
      FAIL(__VA_ARGS__);                                                                    \
  } while (0)

/* Integer equality (as int64_t / uint64_t) with both values in the message. */
#define CHECK_INT(got, want, what)                                                          \
  do {                                                                                      \
    int64_t g_ = (int64_t)(got), w_ = (int64_t)(want);                                     \
    if (g_ != w_)                                                                           \
      FAIL("%s: got %" PRId64 ", want %" PRId64, (what), g_, w_);                           \
  } while (0)

#define CHECK_HEX(got, want, what)                                                          \
  do {                                                                                      \
    uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want);                                  \
    if (g_ != w_)                                                                           \
      FAIL("%s: got 0x%" PRIx64 ", want 0x%" PRIx64, (what), g_, w_);                       \
  } while (0)

#define CHECK_STR(got, want, what)                                                          \
  do {                                                                                      \
    const char *g_ = (got), *w_ = (want);                                                   \
    if (!g_ || strcmp(g_, w_))                                                              \
      FAIL("%s: got \"%s\", want \"%s\"", (what), g_ ? g_ : "(null)", w_);                  \
  } while (0)

#endif
