/* Values of variables as text (dump -l): a bounded text builder and string literals
 * quoted as each language writes them. Shared by the runtimes' locals hooks. */
#ifndef VMSTACK_VARTEXT_H
#define VMSTACK_VARTEXT_H

#include <stddef.h>
#include <stdint.h>

/* A text of at most cap - 1 bytes, always NUL-terminated; what does not fit is dropped. */
struct vtext {
  char *b;
  size_t n, cap;
};

void vt_put(struct vtext *o, const char *s, size_t n);
void vt_puts(struct vtext *o, const char *s);
void vt_putf(struct vtext *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

enum vt_style {
  VT_LUA,    /* "a\nb\27[0m": letters for \a \b \f \n \r \t \v, decimal \ddd for others */
  VT_PERL,   /* "a\nb\e[0m\x{ff}": \$ and \@ too, \e, \x{hh} for others */
};

/* The n bytes at s (of a string of len bytes) as a quoted literal of that language, cut
 * after max bytes with "…" and the length said: "abab…" (6000 bytes). Valid UTF-8 is kept
 * (for Perl only when utf8 says the string is characters), C0 and C1 controls, DEL and
 * invalid bytes are escaped: the text holds printable characters only. */
void vt_string(struct vtext *o, const uint8_t *s, size_t n, size_t len, size_t max,
               enum vt_style style, int utf8);

/* Copy text into buf (cap bytes), cut with "…" on a character boundary when too long. */
void vt_copy_cut(char *buf, size_t cap, const char *text, size_t len);

#endif
