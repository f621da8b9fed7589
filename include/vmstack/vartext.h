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
 * (for Perl only when utf8 says the string is characters), C0 and C1 controls, DEL,
 * invalid bytes and the characters that move or hide text (text_unsafe_cp) are escaped:
 * the text holds printable characters only. s must have 3 readable bytes past n. */
void vt_string(struct vtext *o, const uint8_t *s, size_t n, size_t len, size_t max,
               enum vt_style style, int utf8);

/* A text that filled its room ends in "…" (on a character boundary): it was cut. */
void vt_mark_cut(struct vtext *o);

/* Room for one value's text when strings are cut at max_string bytes (each byte may take
 * six characters escaped, and a preview holds several). */
size_t vt_value_room(size_t max_string);

struct vm_var;
/* A frame's variables as they are collected (their strings owned), then handed to the frame
 * with vm_frames_set_vars(v, n). */
struct vt_vars {
  struct vm_var *v;
  size_t n, cap;
};
/* Put a copy of var at i (n: append); 0, or -ENOMEM. */
int vt_vars_put(struct vt_vars *vs, size_t i, const struct vm_var *var);
void vt_vars_free(struct vt_vars *vs);

#endif
