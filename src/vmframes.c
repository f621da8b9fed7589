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

static int copy_vars(struct arena *a, const struct vm_var *src, size_t n, struct vm_var **ret)
{
  struct vm_var *v = n ? arena_alloc(a, n * sizeof *v) : NULL;
  if (n && !v)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    v[i] = src[i];
    v[i].name = copy_str(a, src[i].name);
    v[i].type = copy_str(a, src[i].type);
    v[i].value = copy_str(a, src[i].value);
  }
  *ret = v;
  return 0;
}

int vm_frames_set_vars(struct vm_frames *vf, size_t i, const struct vm_var *vars, size_t n)
{
  struct vm_var *v;
  int r = copy_vars(&vf->strs, vars, n, &v);
  if (r)
    return r;
  vf->v[i].vars = v;
  vf->v[i].nvars = n;
  return 0;
}

int vm_frame_copy(struct arena *a, const struct vm_frame *src, struct vm_frame *dst)
{
  *dst = *src;
  dst->func = copy_str(a, src->func);
  dst->file = copy_str(a, src->file);
  return copy_vars(a, src->vars, src->nvars, &dst->vars);
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
