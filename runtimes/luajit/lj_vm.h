/* LuaJIT runtime: the VM handle shared by probe, unwind step and frame walk. */
#ifndef VMSTACK_LJ_VM_H
#define VMSTACK_LJ_VM_H

#include <stddef.h>
#include <stdint.h>

#include "lj_layout.h"
#include "vmstack/err.h"
#include "vmstack/rtutil.h"

struct target;
struct module;
struct unwind_ctx;
struct unwind_regs;

#define LJ_MAX_CFRAMES 64

/* How the unwinder found a VM native frame. */
enum lj_cf_kind {
  LJ_CF_INTERP,           /* the interpreter (or C it called): its cframe at rsp or rsp+8 */
  LJ_CF_TRACE,            /* JIT-compiled code: cframe = rsp + CFRAME_SIZE_JIT + spadjust */
  LJ_CF_GUESS,            /* code with no frame to read (exit handler, exit stubs, a VM
                             helper, a foreign JIT): the running lua_State's innermost
                             cframe above rsp; the frames in between are not known */
};

/* A VM native frame met by the unwinder (the interpreter's C frame). */
struct lj_cframe {
  uint64_t ip, sp;        /* the native frame as the walk reported it */
  uint64_t cframe;        /* its rsp: SAVE_L, SAVE_PC, ... sit above it */
  uint64_t L;
  uint64_t save_pc;
  uint64_t bx;            /* rbx in that frame: the VM's PC register */
  enum lj_cf_kind kind;
  int trace;              /* > 0: the frame is JIT-compiled code of this trace (or, for a
                             guess, the trace g->vmstate names) */
  uint64_t startpc;       /* on a trace: where the trace starts (a bytecode address) */
  int nolua;              /* lua_cpcall's entry (NRES < 0): no Lua frame of its own */
};

/* A trace's machine code, for finding traces by address. */
struct lj_trace_ent {
  uint64_t mcode, end;    /* [mcode, mcode + szmcode) */
  uint64_t T;             /* the GCtrace */
  uint64_t startpc;
  uint32_t traceno;
  uint16_t spadjust;
};

/* A copy of one lua_State's stack. */
struct lstack {
  uint64_t L, base, top, stack, lo, len;
  uint64_t cframe;        /* L->cframe, flags masked off: the innermost VM entry of L */
  uint8_t *bytes;         /* [lo, lo+len) of the Lua stack */
  size_t cap;             /* allocated bytes (the buffer is reused) */
};

/* What changes as soon as a thread runs again, copied while it is stopped (capture), so
 * that the walk can run after it is released. */
struct lj_snap {
  int valid;
  uint64_t G;
  int32_t vmstate;
  uint64_t jit_base;
  struct lstack s;        /* G->cur_L's stack */
};

struct lj_name {
  uint64_t fn;            /* GCfunc address */
  char name[64];          /* "table.sort", "print", "cjson.encode" */
};

struct lj_vm {
  const struct lj_layout *lo;
  struct target *t;
  struct module *mod;      /* the module with the VM (luajit binary or libluajit) */
  uint64_t vm_start, vm_end;   /* the interpreter's code (its one big FDE) */
  uint64_t G;              /* global_State of the last L seen (cached, re-validated) */
  uint64_t G_checked;      /* a G whose dispatch table matched the layout */
  int layout_bad;
  uint64_t maps_reloaded_ms;   /* when trace_step last read the maps again */
  uint64_t scanned[16];    /* global_States found by scanning (for traces without GC64) */
  uint64_t scanned_ms;      /* when the last scan found none */
  size_t nscanned;         /* 0: not scanned yet; (size_t)-1: scanned, none */          /* a G was found whose dispatch table is not where the layout
                              says: the layout does not fit this build */
  char desc[256];
  /* names of builtins and C functions, from package.loaded (built once) */
  struct lj_name *names;
  size_t nnames, capnames;
  int names_built;
  uint64_t names_ms;       /* when they were last read (CLOCK_MONOTONIC) */
  /* which global_State each thread ran last, 0 for none (learned by walks, used by
   * capture), indexed by tid % 64 */
  struct {
    int tid;
    uint64_t G;
  } tidG[64];
  struct lj_snap snap;
  uint64_t snap_L;         /* after a walk: the lua_State whose stack snap.s still holds, as
                              copied at the stop (the locals hook reads the slots there) */
  /* traces of one global_State by machine-code address (sorted by mcode), read again
   * when an address is in none of them or one changed (at most once per walk) */
  struct {
    uint64_t G;
    struct lj_trace_ent *v;
    size_t n, cap;
    int rebuilt;          /* in this walk already */
    uint64_t built_ms;    /* when (not more often than every 50 ms) */
  } tc;
  /* filled by the unwind step during one thread's walk */
  struct lj_cframe cf[LJ_MAX_CFRAMES];
  size_t ncf;
  int start_alt;          /* the innermost frame was not where the registers said */
};

struct thread;
struct stack_capture;
struct frame;
struct vm_frames;

/* The walk: Lua frames of every VM frame the step met, anchored to native frames. */
int lj_walk(void *vmv, struct target *t, struct thread *th, const struct stack_capture *cap,
            const struct frame *native, size_t nnative, struct vm_frames *out);

/* Is G a global_State of this build? Its GG_State's dispatch table must sit at
 * G + GG_G2DISP and point into the interpreter. Cached. */
int lj_check_G(struct lj_vm *vm, uint64_t G);
/* Find the global_States without any Lua frame to start from: scan writable memory for
 * dispatch tables (runs of pointers into the interpreter). Returns how many. */
size_t lj_scan_G(struct lj_vm *vm, uint64_t *ret_G, size_t max);

/* Is L the running lua_State (cur_L) of G? */
int lj_is_curL(struct lj_vm *vm, uint64_t G, uint64_t L);

/* Copy the running lua_State's stack and the VM state while the thread is stopped; -EAGAIN
 * when this thread's VM is not known yet. */
int lj_capture(void *vmv, struct target *t, struct thread *th, const struct stack_capture *cap);

/* "module.key" of a function object reachable from package.loaded, or NULL. */
const char *lj_func_name(struct lj_vm *vm, uint64_t fn);

struct vm_coroutines;
/* Stacks of the coroutines that yielded, from gc.root's list of objects. */
int lj_coroutines(void *vmv, struct target *t, struct vm_coroutines *out);

/* The unwind step: claims frames inside the interpreter's code. */
int lj_step(void *arg, struct unwind_ctx *ctx, struct unwind_regs *regs);

/* -- Object readers (lj_obj.c): strings, prototypes, lines, names from bytecode -- */

#define STR_MAX 1024                /* chars of a chunk or identifier name kept */


static inline int slot(const struct lstack *s, uint64_t addr, uint64_t *ret)
{
  if (addr < s->lo || s->len < 8 || addr - s->lo > s->len - 8 || (addr & 7))
    return -VMS_E_BADDATA;
  memcpy(ret, s->bytes + (addr - s->lo), 8);
  return 0;
}

struct proto {   /* a GCproto's fields the walk uses */
  uint64_t addr, bc, k, chunkname, lineinfo, uvinfo, varinfo;
  uint32_t sizebc, numline, sizept;
  int32_t firstline;
  uint8_t sizeuv, numparams, framesize, flags;
};

int lj_call_name(struct lj_vm *vm, const struct proto *p, uint64_t caller_pc, char *buf, size_t cap);
int lj_proto_line(struct lj_vm *vm, const struct proto *p, int64_t pos);
int lj_read_proto(struct lj_vm *vm, uint64_t pt, struct proto *p);
int64_t lj_proto_pos(const struct proto *p, uint64_t pc);
void lj_chunk_name(struct lj_vm *vm, const struct proto *p, char *buf, size_t cap);
/* A GCstr's bytes as a C string (up to a NUL in it), cut at cap-1 bytes; control bytes are
 * kept (the outputs escape them). */
int lj_read_str(struct lj_vm *vm, uint64_t s, char *buf, size_t cap);
/* The name of the local variable in slot at bytecode position pos (varinfo); -1 when none
 * is live there ("(for index)" and the like for the VM's own). */
int lj_local_name(struct lj_vm *vm, const struct proto *p, int64_t pos, uint32_t slot,
                  char *buf, size_t cap);
/* Every frame of thread L's stack, innermost first: its function object, the slots it
 * uses [base, top), and the PC it stands at (0 when unknown: the innermost frame of a
 * running thread keeps its PC in a register). A nonzero return of fn ends the walk with
 * it; a frame chain that does not read ends it with an error. */
typedef int (*lj_frame_fn)(void *arg, uint64_t fn, uint64_t base, uint64_t top, uint64_t pc);
int lj_each_frame(struct lj_vm *vm, uint64_t L, lj_frame_fn fn, void *arg);
/* The name of a prototype's upvalue idx (uvinfo). */
int lj_upvalue_name(struct lj_vm *vm, const struct proto *p, uint32_t idx, char *buf,
                    size_t cap);

struct vm_locals_opts;
/* The locals hook (lj_locals.c): a Lua frame's variables, from the ctx[] the walk left. */
int lj_locals(void *vmv, struct target *t, struct vm_frames *vf, size_t i,
              const struct vm_locals_opts *opts);

struct heap;
/* The heap hook (lj_heap.c): every GC object, reference and root of the process's VMs. */
int lj_heap(void *vmv, struct target *t, struct heap *h);
int lj_heap_label(void *vmv, struct target *t, uint64_t from, uint64_t to, char *buf,
                  size_t cap);

#endif
