/* vmstack heap: stop the process, copy its writable memory, let it go, then have the
 * runtime enumerate its heap from the copy (src/verb/heap.c). */
#ifndef VMSTACK_HEAPRUN_H
#define VMSTACK_HEAPRUN_H

#include <stdint.h>

#include "vmstack/dump.h"
#include "vmstack/heap.h"

struct target;

struct heap_run_opts {
  struct heap_opts heap;
  uint64_t max_copy;         /* bytes; 0 = half of MemAvailable */
  const char *only_runtime;  /* that runtime only (NULL: the first with a heap) */
};

struct heap_run {
  struct heap *h;
  const char *runtime;       /* its name ("luajit") */
  char describe[320];        /* its describe() line, or why there is no heap */
  int copied;                /* 1: analysed from a copy; 0: walked live while stopped */
  uint64_t copy_bytes;       /* bytes copied (or that a copy would have needed) */
  uint64_t max_copy;
  double pause_ms;           /* how long the threads were stopped */
  double copy_ms;            /* of which copying */
  double enum_ms, analyse_ms;
  uint64_t rss;              /* the process's resident set (bytes), from /proc */
  int enum_err;              /* the enumeration ended early with this (still analysed) */
  size_t threads;
  /* (the runtimes found, kept for the keys of report paths: heap_run_free frees them) */
  struct dump_result res;
  const struct dump_vm *vm;
  struct target *t;
};

/* 0, or -VMS_E_NORUNTIME (no runtime with a heap in the process), -VMS_E_UNSUPPORTED
 * (known runtime, unknown build: run->describe says which), a target error. Every thread
 * is released before this returns. */
int heap_run(struct target *t, const struct heap_run_opts *o, struct heap_run *run);
void heap_run_free(struct heap_run *run);

#endif
