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
 *   Memory read through t->mem; everything emitted is owned by out.
 * - walk_running(vm, t, th, out): optional; the VM frames of a thread that is NOT stopped
 *   (record --nonblocking), from memory alone, all anchored at 0 (there are no native
 *   frames). th->regs holds registers read at an earlier stop (fs_base for thread-locals).
 *   Returns -VMS_E_TORN when the stack changed while it was read (the sample is dropped).
 * - coroutines(vm, t, out): optional; the stacks of coroutines that are not running (a
 *   thread of the process is held stopped by the caller meanwhile).
 * - describe(vm): one line naming the runtime, version and build (for headers, errors).
 * - free(vm): accepts NULL.
 */
#ifndef VMSTACK_RUNTIME_H
#define VMSTACK_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

struct target;
struct thread;
struct unwinder;
struct stack_capture;
struct frame;
struct vm_frames;

enum vm_frame_kind {
  VMF_LUA,        /* interpreted (or compiled) function of the VM's language */
  VMF_CFUNC,      /* a C function called from the VM (cfunc holds its address) */
  VMF_BUILTIN,    /* a VM builtin (LuaJIT fast function) */
  VMF_TRACE,      /* JIT-compiled code with no finer attribution */
  VMF_PARTIAL,    /* something the walk could not decode, labelled */
  VMF_NATIVE_SUB, /* a native frame the VM knows by name (a Perl XS sub): it takes the
                     place of native frame `anchor` (cfunc: its pc; file: its module) */
};

/* One VM frame, anchored to the native frame (index) it replaces in the mixed stack. An
 * anchor at or past the last native frame means "not placed": such frames are shown
 * innermost, above the native stack. */
struct vm_frame {
  size_t anchor;
  enum vm_frame_kind kind;
  char func[128];          /* "gcd", "method 'push'", "function <@a.lua:12>" */
  char file[256];          /* chunk / file name as the VM shows it ("@a.lua", "=stdin") */
  int line;                /* 0 when unknown */
  uint64_t cfunc;          /* VMF_CFUNC: address of the C function */
  int trace;               /* JIT trace number, 0 when interpreted */
};

struct vm_frames {
  const char *runtime;     /* "luajit" */
  struct vm_frame *v;
  size_t n, cap;
  int err;                 /* why the walk stopped early (0 = complete) */
  char state[96];          /* what the VM was doing: "interpreted", "JIT trace 3", "GC step in trace 3" ... */
  size_t state_sym;        /* nonzero: "{}" in state stands for the name of native frame
                              state_sym - 1, put in by whoever shows the state (after the
                              thread runs again; a profile never needs it) */
};

/* A coroutine (green thread) that is not running, with its own stack. */
struct vm_coroutine {
  uint64_t id;             /* the VM's handle (LuaJIT: the lua_State address) */
  char state[24];          /* "suspended" */
  struct vm_frames vf;
};

struct vm_coroutines {
  struct vm_coroutine *v;
  size_t n, cap;
  int err;                 /* why the enumeration stopped early */
};

struct vm_coroutine *vm_coroutines_push(struct vm_coroutines *c);
void vm_coroutines_free(struct vm_coroutines *c);

/* Append a frame (zeroed) and return it, or NULL when out of memory. */
struct vm_frame *vm_frames_push(struct vm_frames *vf, size_t anchor, enum vm_frame_kind kind);
void vm_frames_free(struct vm_frames *vf);

struct vm_runtime {
  const char *name;
  int (*probe)(struct target *t, void **ret_vm);
  int (*install)(void *vm, struct unwinder *u);
  int (*capture)(void *vm, struct target *t, struct thread *th, const struct stack_capture *cap);
  int (*walk)(void *vm, struct target *t, struct thread *th, const struct stack_capture *cap,
              const struct frame *native, size_t nnative, struct vm_frames *out);
  int (*walk_running)(void *vm, struct target *t, struct thread *th, struct vm_frames *out);
  int (*coroutines)(void *vm, struct target *t, struct vm_coroutines *out);
  const char *(*describe)(const void *vm);
  void (*free)(void *vm);
};

/* NULL-terminated list of every runtime built in. */
extern const struct vm_runtime *const vm_runtimes[];

#endif
