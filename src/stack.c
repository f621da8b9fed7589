/* Mixed stacks: native frames with each VM frame replaced by its VM segment. */
#include <stdint.h>

#include "vmstack/runtime.h"
#include "vmstack/stack.h"
#include "vmstack/unwind.h"

#define CFUNC_SPAN 0x10000   /* a C function's code: this far from its entry at most */

/* The VM frame first in segment `anchor` of any list when it is a C function the VM names
 * and native frame anchor - 1 (the frame above the VM's) lies in its code: that native
 * frame is the C function itself. Returns 1 + its index, with its list in *ret_list; 0. */
static size_t named_above(const struct frame *fr, const struct vm_frames *vf, size_t nvf,
                          size_t anchor, unsigned *ret_list)
{
  if (!anchor)
    return 0;
  for (size_t l = 0; l < nvf; l++)
    for (size_t j = 0; j < vf[l].n; j++)
      if (vf[l].v[j].anchor == anchor) {
        const struct vm_frame *v = &vf[l].v[j];
        uint64_t pc = fr[anchor - 1].pc;
        if (v->kind == FK_CFUNC && v->func[0] && pc >= v->pc && pc - v->pc < CFUNC_SPAN) {
          *ret_list = (unsigned)l;
          return j + 1;
        }
        break;
      }
  return 0;
}

size_t stack_pick(const struct frame *fr, size_t n, const struct vm_frames *vf, size_t nvf,
                  enum stack_view view, struct pick *out)
{
  size_t m = 0;
  /* each list's frames come grouped by anchor, innermost first; k[l]: the next of list l */
  size_t k[16] = { 0 };
  if (nvf > sizeof k / sizeof *k)
    nvf = sizeof k / sizeof *k;
  size_t innermost = SIZE_MAX;   /* the innermost VM frame's anchor over all lists */
  for (size_t l = 0; l < nvf; l++)
    if (vf[l].n && vf[l].v[0].anchor < innermost)
      innermost = vf[l].v[0].anchor;
  /* VM frames no native frame was found for (anchor n or more): innermost, above the
   * native stack (they are the VM's state; where they sit in it is not known) */
  int unplaced = 0;
  if (view != VIEW_NATIVE)
    for (size_t l = 0; l < nvf; l++)
      for (size_t j = 0; j < vf[l].n; j++)
        if (vf[l].v[j].anchor >= n) {
          out[m++] = (struct pick){ 1, (unsigned)l, j, 0 };
          unplaced = 1;
        }
  for (size_t i = 0; i < n; i++) {
    int replaced = 0;
    for (size_t l = 0; l < nvf; l++) {
      for (size_t j = 0; j < vf[l].n; j++) {
        const struct vm_frame *v = &vf[l].v[j];
        if (v->anchor != i)
          continue;
        replaced = 1;
        if (view == VIEW_NATIVE)
          break;
        /* in the mixed view a segment's leaf C function is the native frame above already
         * (which is named after it when it has no symbol: named_by) */
        if (v->kind == FK_CFUNC && view == VIEW_MIXED && i > 0 && j == k[l])
          continue;
        out[m++] = (struct pick){ 1, (unsigned)l, j, 0 };
      }
      while (k[l] < vf[l].n && vf[l].v[k[l]].anchor <= i)
        k[l]++;
    }
    if (replaced && view != VIEW_NATIVE)
      continue;
    /* VM view: only the native frames above the innermost VM segment (the leaf C) */
    if (view == VIEW_VM && innermost != SIZE_MAX && (unplaced || i > innermost))
      continue;
    unsigned nl = 0;
    size_t nb = view != VIEW_NATIVE && i + 1 < n ? named_above(fr, vf, nvf, i + 1, &nl) : 0;
    /* VM view: the C function is there as the VM frame already; its own native frame
     * goes when it has nothing more to say (no symbol: the consumer drops it) */
    out[m++] = (struct pick){ 0, nl, i, nb };
  }
  return m;
}
