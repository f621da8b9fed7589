/* VM frame lists filled by runtimes. */
#include <stdlib.h>
#include <string.h>

#include "vmstack/runtime.h"

struct vm_frame *vm_frames_push(struct vm_frames *vf, size_t anchor, enum vm_frame_kind kind)
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
  return f;
}

void vm_frames_free(struct vm_frames *vf)
{
  free(vf->v);
  vf->v = NULL;
  vf->n = vf->cap = 0;
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
