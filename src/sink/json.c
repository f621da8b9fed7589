/* JSON string escaping; bytes that are not valid UTF-8 (names read from a target can be
 * anything) become U+FFFD, so the output always parses. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "vmstack/json.h"

/* Length of the valid UTF-8 sequence at p, or 0. */
size_t utf8_len(const unsigned char *p)
{
  size_t n;
  unsigned min;
  unsigned c = p[0];
  if (c < 0x80)
    return 1;
  if (c < 0xc2 || c > 0xf4)
    return 0;
  if (c < 0xe0) {
    n = 2;
    min = 0x80;
  } else if (c < 0xf0) {
    n = 3;
    min = 0x800;
  } else {
    n = 4;
    min = 0x10000;
  }
  unsigned cp = c & (0x3f >> (n - 1));
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

void json_str(FILE *f, const char *s)
{
  if (!s) {
    fputs("null", f);
    return;
  }
  putc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\t': fputs("\\t", f); break;
    case '\r': fputs("\\r", f); break;
    default:
      if (*p < 0x20) {
        fprintf(f, "\\u%04x", *p);
      } else if (*p < 0x80) {
        putc(*p, f);
      } else {
        size_t n = utf8_len(p);
        if (n) {
          fwrite(p, 1, n, f);
          p += n - 1;
        } else {
          fputs("\\ufffd", f);
        }
      }
    }
  }
  putc('"', f);
}

unsigned utf8_cp(const unsigned char *p, size_t n)
{
  unsigned cp = p[0] & (0x3f >> (n - 1));
  for (size_t i = 1; i < n; i++)
    cp = (cp << 6) | (p[i] & 0x3f);
  return cp;
}

int text_unsafe_cp(unsigned cp)
{
  return (cp >= 0x80 && cp < 0xa0) || (cp >= 0x200b && cp <= 0x200f) ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff;
}

/* The next piece of a name for a terminal: its bytes kept (*keep) or escaped; returns
 * how many bytes of p it covers. */
static size_t text_piece(const unsigned char *p, int *keep)
{
  size_t n = utf8_len(p);
  if (n == 1 && *p >= 0x20 && *p < 0x7f) {
    *keep = 1;
    return 1;
  }
  if (n > 1 && !text_unsafe_cp(utf8_cp(p, n))) {
    *keep = 1;
    return n;
  }
  *keep = 0;
  return 1;
}

/* A name read from the target: printable ASCII and valid UTF-8 (but the characters that
 * move or hide text) as they are, any other byte as \xNN, so nothing the target wrote
 * acts on a terminal. */
void text_put(FILE *f, const char *s)
{
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    int keep;
    size_t n = text_piece(p, &keep);
    if (keep)
      fwrite(p, 1, n, f);
    else
      fprintf(f, "\\x%02x", *p);
    p += n;
  }
}

void text_escape(char *buf, size_t cap, const char *s)
{
  size_t o = 0;
  if (!cap)
    return;
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    int keep;
    size_t n = text_piece(p, &keep);
    if (o + (keep ? n : 4) >= cap)
      break;
    if (keep)
      memcpy(buf + o, p, n);
    else
      snprintf(buf + o, 5, "\\x%02x", *p);
    o += keep ? n : 4;
    p += n;
  }
  buf[o] = 0;
}

