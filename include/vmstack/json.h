/* Minimal JSON writing helpers shared by the JSON outputs. */
#ifndef VMSTACK_JSON_H
#define VMSTACK_JSON_H

#include <stddef.h>
#include <stdio.h>

/* A JSON string literal (quotes included); NULL is written as null. */
void json_str(FILE *f, const char *s);
/* Length of the valid UTF-8 sequence starting at p (1 for ASCII), or 0 when invalid. */
size_t utf8_len(const unsigned char *p);

/* The code point of the valid UTF-8 sequence of n > 1 bytes at p. */
unsigned utf8_cp(const unsigned char *p, size_t n);
/* A character a terminal must not get raw although it is valid: C1 controls, bidi
 * overrides and isolates, zero-width and format characters, line and paragraph
 * separators, the byte order mark. */
int text_unsafe_cp(unsigned cp);

/* A name read from the target, for a terminal: printable ASCII and valid UTF-8 (but the
 * characters text_unsafe_cp names) as they are, any other byte as \xNN. */
void text_put(FILE *f, const char *s);
/* The same into buf (cap bytes, always NUL-terminated; cut when it does not fit). */
void text_escape(char *buf, size_t cap, const char *s);

#endif
