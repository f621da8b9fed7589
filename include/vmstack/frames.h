/* Frames: one taxonomy for every layer (walk, dump, profile), and the VM frame lists
 * runtimes fill, one list per runtime, strings owned by the list. */
#ifndef VMSTACK_FRAMES_H
#define VMSTACK_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "vmstack/arena.h"

enum frame_kind {
  FK_NATIVE,      /* machine code: a symbol, or module+offset */
  FK_FUNCTION,    /* a function of the VM's language (trace: nonzero in JIT-compiled code) */
  FK_CFUNC,       /* a C function called by the VM (pc: its address) */
  FK_BUILTIN,     /* a VM builtin (LuaJIT fast function) */
  FK_NATIVE_SUB,  /* native code the VM knows by name (a Perl XS sub), in place of native
                     frame `anchor` (pc: its pc; file: its module) */
  /* profiles only */
  FK_JIT,         /* FK_FUNCTION running JIT-compiled code */
  FK_THREAD,      /* the thread at the root of a stack */
  FK_PROCESS,     /* the process above it (following children) */
};

/* VM frames of one thread walked at most, unless --max-depth asks for more. */
#define VM_FRAMES_DEFAULT 4096

/* A variable of a frame (filled when locals are asked for). */
enum vm_var_kind {
  VAR_LOCAL,      /* a local variable ("(for index)" and the like for the VM's own) */
  VAR_TEMPORARY,  /* a slot no variable names (--all-slots) */
  VAR_VARARG,     /* one of the frame's extra arguments ("..."), in order */
  VAR_UPVALUE,    /* a variable of an enclosing function the frame's function uses */
  VAR_ARGUMENT,   /* an argument of the call (Perl's @_) */
  VAR_NOTE,       /* no variable: why there are none, or why they are not shown ("value") */
};

struct vm_var {
  enum vm_var_kind kind;
  const char *name;        /* "weight", "(for index)", "$n", "@_" */
  const char *type;        /* as the language names it: "string", "table", "HASH" */
  const char *value;       /* as the language would write it, quoted and escaped: only
                              printable ASCII and valid UTF-8 */
  uint64_t addr;           /* the object's address; 0 for a value without one */
  int64_t len;             /* strings: bytes; tables, arrays, hashes: entries; -1 unknown */
};

/* How variables are shown (dump -l). */
struct vm_locals_opts {
  size_t max_string;       /* characters of a string shown (the length is said past them) */
  size_t preview;          /* entries of a table, array or hash shown */
  int all_slots;           /* also the slots no variable names */
};

/* One VM frame, anchored to the native frame (index) it replaces in the mixed stack. An
 * anchor at or past the last native frame means "not placed": such frames are shown
 * innermost, above the native stack. Strings belong to the frame list (never NULL; ""
 * when there is none). */
struct vm_frame {
  size_t anchor;
  enum frame_kind kind;
  const char *func;        /* "gcd", "method 'push'", "function <@a.lua:12>" */
  const char *file;        /* chunk / file name as the VM shows it ("@a.lua", "=stdin") */
  int line;                /* 0 when unknown */
  uint64_t pc;             /* FK_CFUNC: the C function; FK_NATIVE_SUB: the native pc */
  int trace;               /* JIT trace number, 0 when interpreted */
  struct vm_var *vars;     /* locals, when asked for */
  size_t nvars;
  uint64_t ctx[5];         /* the walk's own record of where the frame's variables are,
                              for its locals hook */
};

/* The frames one runtime found on one thread. */
struct vm_frames {
  const char *runtime;     /* set by the core: the runtime's name */
  struct vm_frame *v;
  size_t n, cap;
  struct arena strs;       /* the frames' strings */
  int err;                 /* why the walk stopped early (0 = complete) */
  int native_err;          /* set by the core before the walk: why the native walk given
                              to it ended early (0: it reached the thread's entry) */
  size_t max;              /* set by the core before the walk: frames to emit at most;
                              past them the walk ends with -VMS_E_TRUNCATED */
  char state[96];          /* what the VM was doing: "interpreted", "JIT trace 3", ... */
  size_t state_sym;        /* nonzero: "{}" in state stands for the name of native frame
                              state_sym - 1, put in by whoever shows the state (after the
                              thread runs again; a profile never needs it) */
};

/* Append a frame (zeroed, strings "") and return it, or NULL when out of memory. */
struct vm_frame *vm_frames_push(struct vm_frames *vf, size_t anchor, enum frame_kind kind);
/* *field = a formatted string owned by vf ("" when out of memory: returns -ENOMEM). */
int vm_frames_setf(struct vm_frames *vf, const char **field, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
/* Empty the list for the next walk (keeps its memory). */
void vm_frames_reset(struct vm_frames *vf);
void vm_frames_free(struct vm_frames *vf);
/* Set the variables of frame i to a copy of vars (strings included) owned by vf. */
int vm_frames_set_vars(struct vm_frames *vf, size_t i, const struct vm_var *vars, size_t n);
/* Copy frame src into dst with its strings (and variables) in arena a. */
int vm_frame_copy(struct arena *a, const struct vm_frame *src, struct vm_frame *dst);

/* A coroutine (green thread) that is not running, with its own stack. */
struct vm_coroutine {
  uint64_t id;             /* the VM's handle (LuaJIT: the lua_State address) */
  char state[24];          /* "suspended" */
  struct vm_frames vf;
};

struct vm_coroutines {
  const char *runtime;
  struct vm_coroutine *v;
  size_t n, cap;
  int err;                 /* why the enumeration stopped early */
};

struct vm_coroutine *vm_coroutines_push(struct vm_coroutines *c);
void vm_coroutines_free(struct vm_coroutines *c);

#endif
