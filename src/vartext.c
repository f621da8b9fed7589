/* Values of variables as text: the bounded builder and string literals. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmstack/json.h"
#include "vmstack/vartext.h"

#define ELLIPSIS "\xe2\x80\xa6"

void vt_put(struct vtext *o, const char *s, size_t n)
{
  if (!o->cap || o->n + 1 >= o->cap)
    return;
  if (n > o->cap - 1 - o->n)
    n = o->cap - 1 - o->n;
  memcpy(o->b + o->n, s, n);
  o->n += n;
  o->b[o->n] = 0;
}

void vt_puts(struct vtext *o, const char *s)
{
  vt_put(o, s, strlen(s));
}

void vt_putf(struct vtext *o, const char *fmt, ...)
{
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    vt_put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void vt_string(struct vtext *o, const uint8_t *s, size_t n, size_t len, size_t max,
               enum vt_style style, int utf8)
{
  static const char esc[] = "\a\b\f\n\r\t\v\\\"", lett[] = "abfnrtv\\\"";
  vt_put(o, "\"", 1);
  size_t i = 0;
  while (i < n && i < max) {
    uint8_t c = s[i];
    size_t u = c >= 0x80 && (style == VT_LUA || utf8) ? utf8_len(s + i) : 0;
    if (u > 1 && i + u <= n && !(c == 0xc2 && s[i + 1] < 0xa0)) {
      vt_put(o, (const char *)s + i, u);
      i += u;
      continue;
    }
    const char *e = c ? strchr(esc, c) : NULL;
    if (e) {
      char t[2] = { '\\', lett[e - esc] };
      vt_put(o, t, 2);
    } else if (style == VT_PERL && (c == '$' || c == '@')) {
      char t[2] = { '\\', (char)c };
      vt_put(o, t, 2);
    } else if (style == VT_PERL && c == 0x1b) {
      vt_put(o, "\\e", 2);
    } else if (c < 0x20 || c >= 0x7f) {
      if (style == VT_PERL) {
        vt_putf(o, "\\x{%x}", c);
      } else {
        /* three digits when a digit follows, as Lua reads them */
        int digit = i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9';
        vt_putf(o, digit ? "\\%03u" : "\\%u", c);
      }
    } else {
      vt_put(o, (const char *)&c, 1);
    }
    i++;
  }
  if (i < len)
    vt_puts(o, ELLIPSIS);
  vt_put(o, "\"", 1);
  if (i < len)
    vt_putf(o, " (%zu bytes)", len);
}

void vt_copy_cut(char *buf, size_t cap, const char *text, size_t len)
{
  if (!cap)
    return;
  if (len < cap) {
    memcpy(buf, text, len);
    buf[len] = 0;
    return;
  }
  size_t cut = cap > sizeof ELLIPSIS ? cap - sizeof ELLIPSIS : 0;
  while (cut && ((unsigned char)text[cut] & 0xc0) == 0x80)
    cut--;
  memcpy(buf, text, cut);
  memcpy(buf + cut, ELLIPSIS, sizeof ELLIPSIS);
}
