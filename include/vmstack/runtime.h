/* The runtime interface: one ops table per VM (LuaJIT, Perl, ...), listed in the registry.
 *
 * Contract of the hooks:
 * - probe(t, ret_vm): called once per target, threads not stopped. Recognise the runtime
 *   from the target's modules, symbols and memory; choose the layout. Returns 0 with a
 *   runtime-owned handle in *ret_vm, -ENOENT when the runtime is not in the process, or
 *   another error (-VMS_E_UNSUPPORTED for a known runtime in an unknown build, with a
 *   human-readable reason from describe()).
 * - install(vm, u): optional; register unwind steps for frames CFI cannot walk.
 * - walk(vm, t, th, cap, native, n, out): the thread is stopped (or the caller accepts torn
 *   reads); emit the VM frames anchored to the native frames they replace. Memory read
 *   through t->mem; everything emitted is owned by out.
 * - describe(vm): one line naming the runtime, version and build (for headers, errors).
 * - free(vm): accepts NULL.
 */
#ifndef VMSTACK_RUNTIME_H
#define VMSTACK_RUNTIME_H

#include <stddef.h>

struct target;
struct thread;
struct unwinder;
struct stack_capture;
struct frame;
struct vm_frames;

struct vm_runtime {
  const char *name;
  int (*probe)(struct target *t, void **ret_vm);
  int (*install)(void *vm, struct unwinder *u);
  int (*walk)(void *vm, struct target *t, struct thread *th, const struct stack_capture *cap,
              const struct frame *native, size_t nnative, struct vm_frames *out);
  const char *(*describe)(const void *vm);
  void (*free)(void *vm);
};

/* NULL-terminated list of every runtime built in. */
extern const struct vm_runtime *const vm_runtimes[];

#endif
