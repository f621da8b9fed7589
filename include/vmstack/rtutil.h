/* Small helpers the runtimes share: fields of copied target bytes, names cut on purpose. */
#ifndef VMSTACK_RTUTIL_H
#define VMSTACK_RTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A little-endian field of w bytes (1..8) at off in copied target bytes. */
static inline uint64_t rd(const uint8_t *b, size_t off, size_t w)
{
  uint64_t v = 0;
  memcpy(&v, b + off, w);
  return v;
}

/* snprintf for names that are cut on purpose when too long. */
__attribute__((format(printf, 3, 4))) static inline void fmt(char *buf, size_t cap,
                                                             const char *f, ...)
{
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, cap, f, ap);
  va_end(ap);
}

#endif
