/* Mixed stacks: which native and VM frames a view shows, in order, innermost first. */
#ifndef VMSTACK_STACK_H
#define VMSTACK_STACK_H

#include <stddef.h>

struct frame;
struct vm_frames;

enum stack_view {
  VIEW_MIXED,     /* native frames, each VM interpreter frame replaced by its VM frames */
  VIEW_VM,        /* VM frames, and the native frames above the innermost (the leaf C) */
  VIEW_NATIVE,    /* native frames only */
};

struct pick {
  int vm;         /* 1: vf[list].v[idx]; 0: native frame idx */
  unsigned list;
  size_t idx;
  /* native frames: 1 + the index in vf[list] of the C function the VM names that this
   * frame is in (0: none); a consumer shows that name when the frame has no symbol */
  size_t named_by;
};

/* Fill out (room for n + the VM frames of every list) with the frames the view shows, from
 * the native frames and the VM frame lists of nvf runtimes; returns how many. */
size_t stack_pick(const struct frame *fr, size_t n, const struct vm_frames *vf, size_t nvf,
                  enum stack_view view, struct pick *out);

#endif
