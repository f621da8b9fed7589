/* VM frame lists filled by runtimes. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/frames.h"

struct vm_frame *vm_frames_push(struct vm_frames *vf, size_t anchor, enum frame_kind kind)
{
  if (vf->n == vf->cap) {
    size_t nc = vf->cap ? vf->cap * 2 : 32;
    struct vm_frame *nv = realloc(vf->v, nc * sizeof *nv);
    if (!nv)
      return NULL;
    vf->v = nv;
    vf->cap = nc;
  }
  struct vm_frame *f = &vf->v[vf->n++];
  memset(f, 0, sizeof *f);
  f->anchor = anchor;
  f->kind = kind;
  f->func = f->file = "";
  return f;
}

int vm_frames_setf(struct vm_frames *vf, const char **field, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = arena_vprintf(&vf->strs, fmt, ap);
  va_end(ap);
  *field = s ? s : "";
  return s ? 0 : -ENOMEM;
}

void vm_frames_reset(struct vm_frames *vf)
{
  vf->n = 0;
  vf->err = 0;
  vf->native_err = 0;
  vf->state[0] = 0;
  vf->state_sym = 0;
  arena_reset(&vf->strs);
}

void vm_frames_free(struct vm_frames *vf)
{
  free(vf->v);
  arena_free(&vf->strs);
  vf->v = NULL;
  vf->n = vf->cap = 0;
}

static const char *copy_str(struct arena *a, const char *s)
{
  const char *c = s && s[0] ? arena_strdup(a, s) : "";
  return c ? c : "";
}

int vm_frame_copy(struct arena *a, const struct vm_frame *src, struct vm_frame *dst)
{
  *dst = *src;
  dst->func = copy_str(a, src->func);
  dst->file = copy_str(a, src->file);
  dst->vars = NULL;
  dst->nvars = 0;
  if (src->nvars) {
    dst->vars = arena_alloc(a, src->nvars * sizeof *dst->vars);
    if (!dst->vars)
      return -ENOMEM;
    for (size_t i = 0; i < src->nvars; i++) {
      dst->vars[i].name = copy_str(a, src->vars[i].name);
      dst->vars[i].type = copy_str(a, src->vars[i].type);
      dst->vars[i].value = copy_str(a, src->vars[i].value);
    }
    dst->nvars = src->nvars;
  }
  return 0;
}

struct vm_coroutine *vm_coroutines_push(struct vm_coroutines *c)
{
  if (c->n == c->cap) {
    size_t nc = c->cap ? c->cap * 2 : 16;
    struct vm_coroutine *nv = realloc(c->v, nc * sizeof *nv);
    if (!nv)
      return NULL;
    c->v = nv;
    c->cap = nc;
  }
  struct vm_coroutine *co = &c->v[c->n++];
  memset(co, 0, sizeof *co);
  return co;
}

void vm_coroutines_free(struct vm_coroutines *c)
{
  for (size_t i = 0; i < c->n; i++)
    vm_frames_free(&c->v[i].vf);
  free(c->v);
  memset(c, 0, sizeof *c);
}
