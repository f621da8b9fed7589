/* The runtime interface: one ops table per VM (LuaJIT, Perl, ...), listed in the registry.
 *
 * Contract of the hooks:
 * - probe(t, ret_vm): called once per target, threads not stopped. Recognise the runtime
 *   from the target's modules, symbols and memory; choose the layout. Returns 0 with a
 *   runtime-owned handle in *ret_vm, -ENOENT when the runtime is not in the process, or
 *   another error (-VMS_E_UNSUPPORTED for a known runtime in an unknown build, with a
 *   human-readable reason from describe()).
 * - install(vm, u): optional; register unwind steps for frames CFI cannot walk.
 * - capture(vm, t, th, cap): optional; the thread is stopped and its stack copied in cap.
 *   Copy the VM state that changes once the thread runs (keep it in vm) and return 0: the
 *   native unwind and walk() then run after the thread is released, keeping the pause
 *   short. Return an error when that is not possible yet (e.g. the VM not located): the
 *   caller then unwinds and walks while the thread is stopped.
 * - walk(vm, t, th, cap, native, n, out): emit the VM frames anchored to the native frames
 *   they replace, from what capture() kept or, without it, with the thread stopped.
 *   Memory read through t->mem; everything emitted is owned by out (strings with
 *   vm_frames_setf), a list of this runtime's own: out->err and out->state are its own.
 * - walk_running(vm, t, th, out): optional; the VM frames of a thread that is NOT stopped
 *   (record --nonblocking), from memory alone, all anchored at 0 (there are no native
 *   frames). th->regs holds registers read at an earlier stop (fs_base for thread-locals).
 *   Returns -VMS_E_TORN when the stack changed while it was read (the sample is dropped).
 * - coroutines(vm, t, out): optional; the stacks of coroutines that are not running (a
 *   thread of the process is held stopped by the caller meanwhile).
 * - locals(vm, t, vf, i, o): optional (VM_CAP_LOCALS); the variables of frame vf->v[i],
 *   which this runtime's walk() emitted just before, for the same thread (what the walk
 *   copied while the thread was stopped is still the runtime's: values of the running
 *   frame come from there, the rest is read from the process, which may run again). The
 *   walk keeps in each frame's ctx[] where its variables are. Fills them with
 *   vm_frames_set_vars(): locals in the order the language's debugger lists them, then
 *   varargs, arguments and upvalues; each value written as the language would write it
 *   (strings quoted and escaped, tables previewed as o says); a VAR_NOTE where they
 *   cannot be known ("in JIT registers"). Returns 0 or an error (the frame keeps what was
 *   set).
 * - heap(vm, t, h): optional (VM_CAP_HEAP); enumerate every object, reference and root of
 *   the runtime's heap into h (include/vmstack/heap.h has the builder's contract). Called
 *   once, with t->mem reading a copy of the process's writable memory taken while every
 *   thread was stopped (or, when that would not fit, with every thread stopped). Every
 *   loop bounded, every pointer checked: the copy may hold a VM mid-update. Returns 0, or
 *   an error; what was enumerated before an error is still used (-VMS_E_TRUNCATED when
 *   the enumeration stopped early).
 * - heap_label(vm, t, from, to, buf, cap): optional; the key under which object `from`
 *   (a table, hash or array) holds `to`, as the heap's labels spell it ("{user42}", "[7]"),
 *   read from the process as it is now (it runs: a missing key is a nonzero return).
 * - describe(vm): one line naming the runtime, version and build (for headers, errors).
 * - free(vm): accepts NULL.
 */
#ifndef VMSTACK_RUNTIME_H
#define VMSTACK_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "vmstack/frames.h"

struct target;
struct thread;
struct unwinder;
struct stack_capture;
struct frame;
struct heap;

/* What a runtime can do besides walking stopped threads. */
enum {
  VM_CAP_NONBLOCKING = 1u << 0,   /* walk_running: stacks read without stopping a thread */
  VM_CAP_COROUTINES = 1u << 1,    /* coroutines: stacks of suspended coroutines */
  VM_CAP_LOCALS = 1u << 2,        /* local variables of frames */
  VM_CAP_HEAP = 1u << 3,          /* heap snapshots */
};

/* A runtime: its folder under runtimes/ and a row in the registry (runtimes/registry.c).
 * The command line takes its names from here: the alias program, the -only option and the
 * words of messages. */
struct vm_runtime {
  const char *name;        /* "luajit": JSON, --runtime values, headers */
  const char *alias;       /* "lua-stack": the program name that is dump limited to it */
  const char *only;        /* "lua-only": the dump option keeping only its frames */
  const char *noun;        /* "Lua VM": "no Lua VM found in process 42" */
  const char *lang;        /* "Lua": "their Lua frames" */
  unsigned caps;           /* VM_CAP_* */
  int (*probe)(struct target *t, void **ret_vm);
  int (*install)(void *vm, struct unwinder *u);
  int (*capture)(void *vm, struct target *t, struct thread *th, const struct stack_capture *cap);
  int (*walk)(void *vm, struct target *t, struct thread *th, const struct stack_capture *cap,
              const struct frame *native, size_t nnative, struct vm_frames *out);
  int (*walk_running)(void *vm, struct target *t, struct thread *th, struct vm_frames *out);
  int (*coroutines)(void *vm, struct target *t, struct vm_coroutines *out);
  int (*locals)(void *vm, struct target *t, struct vm_frames *vf, size_t i,
                const struct vm_locals_opts *o);
  int (*heap)(void *vm, struct target *t, struct heap *h);
  int (*heap_label)(void *vm, struct target *t, uint64_t from, uint64_t to, char *buf,
                    size_t cap);
  const char *(*describe)(const void *vm);
  void (*free)(void *vm);
};

/* NULL-terminated list of every runtime built in, in probe order. */
extern const struct vm_runtime *const vm_runtimes[];
/* The runtime of that name, or of that alias program name; NULL when none. */
const struct vm_runtime *vm_runtime_find(const char *name);
const struct vm_runtime *vm_runtime_by_alias(const char *alias);

#endif
