/* Values of variables as text: the bounded builder and string literals. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/frames.h"
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
    if (u > 1 && i + u <= n) {
      unsigned cp = utf8_cp(s + i, u);
      if (!text_unsafe_cp(cp)) {
        vt_put(o, (const char *)s + i, u);
        i += u;
        continue;
      }
      if (style == VT_PERL) {
        /* (a character string: the character, as Perl writes it) */
        vt_putf(o, "\\x{%x}", cp);
        i += u;
        continue;
      }
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

void vt_mark_cut(struct vtext *o)
{
  if (o->cap < 8 || o->n + 1 < o->cap)
    return;
  size_t cut = o->cap - sizeof ELLIPSIS;
  while (cut && ((unsigned char)o->b[cut] & 0xc0) == 0x80)
    cut--;
  memcpy(o->b + cut, ELLIPSIS, sizeof ELLIPSIS);
  o->n = cut + sizeof ELLIPSIS - 1;
}

size_t vt_value_room(size_t max_string)
{
  return 4096 + 6 * max_string;
}

static void var_free(struct vm_var *v)
{
  free((char *)v->name);
  free((char *)v->type);
  free((char *)v->value);
}

int vt_vars_put(struct vt_vars *vs, size_t i, const struct vm_var *var)
{
  if (i > vs->n)
    return -EINVAL;
  if (i == vs->n && vs->n == vs->cap) {
    size_t nc = vs->cap ? vs->cap * 2 : 16;
    struct vm_var *nv = realloc(vs->v, nc * sizeof *nv);
    if (!nv)
      return -ENOMEM;
    vs->v = nv;
    vs->cap = nc;
  }
  struct vm_var c = *var;
  c.name = strdup(var->name ? var->name : "");
  c.type = strdup(var->type ? var->type : "");
  c.value = strdup(var->value ? var->value : "");
  if (!c.name || !c.type || !c.value) {
    var_free(&c);
    return -ENOMEM;
  }
  if (i == vs->n)
    vs->n++;
  else
    var_free(&vs->v[i]);
  vs->v[i] = c;
  return 0;
}

void vt_vars_free(struct vt_vars *vs)
{
  for (size_t i = 0; i < vs->n; i++)
    var_free(&vs->v[i]);
  free(vs->v);
  vs->v = NULL;
  vs->n = vs->cap = 0;
}
