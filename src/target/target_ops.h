/* The target interface behind target.h: one ops table per kind of target (a live process
 * through ptrace; a core file next). Private to src/target/. */
#ifndef VMSTACK_TARGET_OPS_H
#define VMSTACK_TARGET_OPS_H

#include "vmstack/target.h"

struct target_ops {
  const char *name;
  int (*refresh_threads)(struct target *t);
  void (*prune_threads)(struct target *t);
  int (*thread_state)(struct target *t, struct thread *th, char *ret_state);
  int (*alive)(const struct target *t);
  int (*reload_maps)(struct target *t);
  int (*attach)(struct target *t);
  /* stop the thread and read its registers into th->regs */
  int (*stop)(struct target *t, struct thread *th);
  int (*resume)(struct target *t, struct thread *th);
  void (*release)(struct target *t, struct thread *th);
  void (*detach)(struct target *t);
  /* async-signal-safe: let go of every thread held stopped (vmstack is dying) */
  void (*emergency)(struct target *t);
  /* free what the backend holds (the threads are let go already) */
  void (*close)(struct target *t);
};

/* Register an opened target with the exit guard (target_close removes it). */
void target_guard_add(struct target *t);

#endif
