/* One-shot stacks of every thread: stop each thread briefly, capture, let go, then walk. */
#ifndef VMSTACK_DUMP_H
#define VMSTACK_DUMP_H

#include <stdio.h>
#include <sys/types.h>

#include "vmstack/runtime.h"
#include "vmstack/stack.h"
#include "vmstack/symbolize.h"
#include "vmstack/unwind.h"

struct target;

#define DUMP_VMS_MAX 8      /* runtimes in one process at most */

struct out_frame {
  uint64_t pc;
  uint32_t flags;          /* FRAME_F_* */
  enum frame_kind kind;    /* FK_NATIVE, or vm.kind */
  struct sym_info si;      /* native frames, and a VM frame's C function */
  const char *runtime;     /* VM frames: "luajit" */
  struct vm_frame vm;      /* VM frames (strings owned by the dump_result) */
};

/* A runtime seen on a thread: what it was doing, and why its walk stopped early. */
struct thread_vm {
  const char *runtime;
  int err;
  char state[96];
};

struct thread_stack {
  pid_t tid, nstid;
  char name[17];
  char state;              /* before we stopped it */
  int err;                 /* why the thread could not be read (0 = read) */
  int walk_err;            /* why the walk ended early (0 = natural end) */
  struct out_frame *frames;
  size_t n;
  struct thread_vm vms[DUMP_VMS_MAX];   /* the runtimes with frames (or an error) on this
                                           thread, innermost first; or the process's first
                                           runtime, "not running code" */
  size_t nvms;
  char walk_where[80];     /* where the native walk stopped early (dump_walk_where) */
};

struct dump_opts {
  size_t max_depth;
  size_t stack_bytes;
  int lines;               /* file:line of native frames from DWARF */
  enum stack_view view;
  const char *only_runtime;  /* probe just this runtime (lua-stack, perl-stack) */
  int coroutines;          /* also the stacks of coroutines that are not running */
  const struct vm_locals_opts *locals;   /* the frames' variables too (NULL: not) */
};

struct dump_vm {
  const struct vm_runtime *rt;
  void *vm;
};

struct dump_result {
  struct thread_stack *threads;
  size_t n;
  struct dump_vm vms[DUMP_VMS_MAX];   /* runtimes found in the process */
  size_t nvms;
  char runtime_err[320];   /* a runtime that is present but could not be used */
  struct vm_coroutines coros;
  struct arena strs;       /* the frames' strings */
};

/* What one thread's sample holds: native frames and, per runtime of the process, the VM
 * frames anchored to them. */
struct dump_walk {
  struct frame *fr;        /* room for max_depth frames */
  size_t n;
  int err;
  struct vm_frames vf[DUMP_VMS_MAX];   /* vf[i]: the frames of runtime vms[i] */
  size_t nvms;             /* runtimes in the process */
  const char *vm_name;     /* the first of them */
  uint64_t reloaded_ms;    /* when the maps were last read again for a bad return address */
};

/* VM frames of w over all runtimes; the first VM walk error (0: none). */
size_t dump_walk_vm_frames(const struct dump_walk *w);
int dump_walk_vm_err(const struct dump_walk *w);
void dump_walk_free(struct dump_walk *w);

/* Where the native walk of w stopped, for error reports: " at JIT code" (anonymous
 * executable memory), " in MODULE", " at an unmapped address"; "" when it did not stop
 * early. */
void dump_walk_where(struct target *t, const struct dump_walk *w, char *buf, size_t cap);

/* Stop th, copy registers and stack, walk native and VM frames while it must stand still
 * (when a runtime is there), then resume it (keep) or detach it, and walk the rest. */
int dump_sample_thread(struct target *t, struct thread *th, const struct dump_opts *o,
                       struct unwinder *u, const struct dump_vm *vms, size_t nvms,
                       struct stack_capture *cap, struct dump_walk *w, int keep);

/* Collect every thread's stack. Returns 0 (also when single threads failed: see their
 * err), or a fatal error for the whole process (gone, permission). */
int dump_collect(struct target *t, const struct dump_opts *o, struct dump_result *res);
void dump_result_free(struct dump_result *res);
/* Find the runtimes in the process (called by dump_collect; exposed for tests). Returns
 * -VMS_E_UNSUPPORTED with res->runtime_err set when one is present but unusable. */
int dump_probe(struct target *t, const struct dump_opts *o, struct dump_result *res);
/* 0 when every thread was read to its natural end, 1 when something is partial. */
int dump_partial(const struct dump_result *res);

void dump_write_text(FILE *f, const struct target *t, const struct dump_result *res);
void dump_write_json(FILE *f, const struct target *t, const struct dump_result *res);

#endif
