/* Mixed stacks: native frames with each VM frame replaced by its VM segment. */
#include "vmstack/runtime.h"
#include "vmstack/stack.h"
#include "vmstack/unwind.h"

#define CFUNC_SPAN 0x10000   /* a C function's code: this far from its entry at most */

/* The VM frame first in segment `anchor` when it is a C function the VM names and native
 * frame anchor - 1 (the frame above the VM's) lies in its code: that native frame is
 * the C function itself ("cjson.encode" rather than "[libcjson.so+0x45d0]"). */
static int names_native_above(const struct frame *fr, const struct vm_frames *vf,
                              size_t anchor)
{
  if (!anchor)
    return 0;
  for (size_t j = 0; j < vf->n; j++)
    if (vf->v[j].anchor == anchor) {
      const struct vm_frame *v = &vf->v[j];
      uint64_t pc = fr[anchor - 1].pc;
      return v->kind == VMF_CFUNC && v->func[0] && pc >= v->cfunc &&
             pc - v->cfunc < CFUNC_SPAN;
    }
  return 0;
}

size_t stack_pick(const struct frame *fr, size_t n, const struct vm_frames *vf,
                  enum stack_view view, struct pick *out)
{
  size_t m = 0;
  size_t k = 0;   /* next VM frame; they come grouped by anchor, innermost first */
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
      /* in the mixed view a segment's leaf C function is the native frame above already
       * (unless the VM names it: then it takes that frame's place) */
      if (v->kind == VMF_CFUNC && view == VIEW_MIXED && i > 0 && j == k &&
          !names_native_above(fr, vf, i))
        continue;
      out[m++] = (struct pick){ 1, j };
    }
    while (k < vf->n && vf->v[k].anchor <= i)
      k++;
    if (replaced && view != VIEW_NATIVE)
      continue;
    if (view != VIEW_NATIVE && i + 1 < n && names_native_above(fr, vf, i + 1))
      continue;
    /* VM view: only the native frames above the innermost VM segment (the leaf C) */
    if (view == VIEW_VM && vf->n && (unplaced || i > vf->v[0].anchor))
      continue;
    out[m++] = (struct pick){ 0, i };
  }
  return m;
}
