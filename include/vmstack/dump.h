/* One-shot stacks of every thread: stop each thread briefly, capture, let go, then walk. */
#ifndef VMSTACK_DUMP_H
#define VMSTACK_DUMP_H

#include <stdio.h>
#include <sys/types.h>

#include "vmstack/symbolize.h"
#include "vmstack/unwind.h"

struct target;

enum frame_kind { FRAME_NATIVE, FRAME_VM, FRAME_JIT };

struct out_frame {
  uint64_t pc;
  uint32_t flags;          /* FRAME_F_* */
  enum frame_kind kind;
  struct sym_info si;
};

struct thread_stack {
  pid_t tid, nstid;
  char name[17];
  char state;              /* before we stopped it */
  int err;                 /* why the thread could not be read (0 = read) */
  int walk_err;            /* why the walk ended early (0 = natural end) */
  struct out_frame *frames;
  size_t n;
};

struct dump_opts {
  size_t max_depth;
  size_t stack_bytes;
  int lines;               /* file:line of native frames from DWARF */
};

struct dump_result {
  struct thread_stack *threads;
  size_t n;
};

/* Collect every thread's stack. Returns 0 (also when single threads failed: see their
 * err), or a fatal error for the whole process (gone, permission). */
int dump_collect(struct target *t, const struct dump_opts *o, struct dump_result *res);
void dump_result_free(struct dump_result *res);
/* 0 when every thread was read to its natural end, 1 when something is partial. */
int dump_partial(const struct dump_result *res);

void dump_write_text(FILE *f, const struct target *t, const struct dump_result *res);
void dump_write_json(FILE *f, const struct target *t, const struct dump_result *res);

#endif
