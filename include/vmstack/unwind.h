/* Native unwinding: libunwind over a stack captured during the stop, CFI from module files. */
#ifndef VMSTACK_UNWIND_H
#define VMSTACK_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/user.h>

struct maps;
struct mem;

#define FRAME_F_EXACT   0x1u  /* pc is exact (leaf, or interrupted by a signal), not a return address */
#define FRAME_F_SIGNAL  0x2u  /* a signal trampoline frame */
#define FRAME_F_NOCFI   0x4u  /* reached by frame-pointer heuristics: no CFI for the callee */
#define FRAME_F_RUNTIME 0x8u  /* reached through a runtime's own step (VM or JIT frame) */

struct frame {
  uint64_t pc;
  uint64_t sp;        /* stack pointer in this frame */
  uint32_t flags;
};

/* Registers a step works with: the ones CFI on x86_64 can recover. */
struct unwind_regs {
  uint64_t ip, sp, bp, bx, r12, r13, r14, r15;
};

/* Stack bytes copied while the thread was stopped, with its registers. */
struct stack_capture {
  struct user_regs_struct regs;
  uint64_t base;       /* target address of bytes[0] */
  size_t len;
  uint8_t *bytes;
  size_t cap;
};

#define UNWIND_CAPTURE_DEFAULT (64u << 10)
#define UNWIND_DEPTH_DEFAULT 256

/* Copy [sp - red zone, min(end of sp's mapping, sp + max_bytes)) in one read. */
int unwind_capture(struct mem *m, const struct maps *mp, const struct user_regs_struct *regs,
                   size_t max_bytes, struct stack_capture *cap);
void unwind_capture_free(struct stack_capture *cap);

struct unwinder;
struct unwind_ctx;

/* A runtime's step: called for every frame before libunwind steps it. Return 1 when it
 * handled the frame (regs then hold the caller's registers), 0 to leave it to CFI, <0 to
 * stop the walk with that error. Reads go through unwind_read(). */
typedef int (*unwind_step_fn)(void *arg, struct unwind_ctx *ctx, struct unwind_regs *regs);

int unwinder_new(struct unwinder **ret_u);
void unwinder_free(struct unwinder *u);
int unwinder_add_step(struct unwinder *u, unwind_step_fn fn, void *arg);
/* fn(arg) runs at the start of every walk (a runtime forgets what its step saw before). */
int unwinder_on_walk(struct unwinder *u, void (*fn)(void *arg), void *arg);
/* Forget cached unwind rules (after modules were unloaded or replaced). */
void unwinder_flush(struct unwinder *u);

/* Walk the captured stack. Fills up to max frames, innermost first. Returns 0 at the
 * natural end of the stack, -VMS_E_TRUNCATED at max, or the error that stopped the walk
 * early (the frames found so far are still valid). */
int unwind_stack(struct unwinder *u, struct maps *mp, struct mem *m,
                 const struct stack_capture *cap, struct frame *frames, size_t max,
                 size_t *ret_n);

/* Is [addr, addr+len) inside the stack bytes captured at the stop (this thread's stack)? */
int unwind_in_capture(const struct unwind_ctx *ctx, uint64_t addr, size_t len);

/* Memory as the walk sees it: the capture, then immutable module bytes, then live. */
int unwind_read(struct unwind_ctx *ctx, uint64_t addr, void *buf, size_t len);

#endif
