/* Mixed stacks: native frames with each VM frame replaced by its VM segment. */
#include "vmstack/runtime.h"
#include "vmstack/stack.h"
#include "vmstack/unwind.h"

size_t stack_pick(const struct frame *fr, size_t n, const struct vm_frames *vf,
                  enum stack_view view, struct pick *out)
{
  size_t m = 0;
  size_t k = 0;   /* next VM frame; they come grouped by anchor, innermost first */
  (void)fr;
  /* VM frames no native frame was found for (anchor n or more): innermost, above the
   * native stack (they are the VM's state; where they sit in it is not known) */
  int unplaced = 0;
  if (view != VIEW_NATIVE)
    for (size_t j = 0; j < vf->n; j++)
      if (vf->v[j].anchor >= n) {
        out[m++] = (struct pick){ 1, j };
        unplaced = 1;
      }
  for (size_t i = 0; i < n; i++) {
    int replaced = 0;
    for (size_t j = 0; j < vf->n; j++) {
      const struct vm_frame *v = &vf->v[j];
      if (v->anchor != i)
        continue;
      replaced = 1;
      if (view == VIEW_NATIVE)
        break;
      /* in the mixed view a segment's leaf C function is the native frame above already */
      if (v->kind == VMF_CFUNC && view == VIEW_MIXED && i > 0 && j == k)
        continue;
      out[m++] = (struct pick){ 1, j };
    }
    while (k < vf->n && vf->v[k].anchor <= i)
      k++;
    if (replaced && view != VIEW_NATIVE)
      continue;
    /* VM view: only the native frames above the innermost VM segment (the leaf C) */
    if (view == VIEW_VM && vf->n && (unplaced || i > vf->v[0].anchor))
      continue;
    out[m++] = (struct pick){ 0, i };
  }
  return m;
}
