/* Perl 5 runtime, private to runtimes/perl/ (pl_probe.c detection, pl_capture.c the
 * context stacks copied at the stop, pl_obj.c names of subs, files and XS subs, pl_walk.c the
 * walk): detection, the interpreter of each thread, and the walk of its context
 * stack, equal to what caller() reports.
 *
 * The walk (pp_ctl.c, Perl_caller_cx):
 *   pending = PL_curcop                       the innermost frame's current statement
 *   for si = PL_curstackinfo, then si->si_prev (sort, signal, DESTROY ... stacks):
 *     for cx = si->si_cxstack[si_cxix] down to [0]:
 *       SUB/FORMAT: frame "Pkg::name" at pending;            pending = cx->blk_oldcop
 *       EVAL:       frame "eval {...}", "(eval)" or "require F" at pending; the same
 *       others (loops, blocks, s///): not frames
 *   the main program at pending
 * A context's blk_oldcop is the statement that was current when it was entered: the call
 * site, which is the line of the frame outside it.
 *
 * Mixed stacks: each run of the op loop (Perl_runops_standard) is one native frame; a new
 * one starts where C calls Perl (call_sv: a context whose retop is NULL) and with each new
 * stackinfo. The Perl frames of each run take the place of its runops frame, innermost
 * first; XS subs and the interpreter's pp_ functions stay as native frames between them.
 */
#ifndef VMSTACK_PL_VM_H
#define VMSTACK_PL_VM_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pl_layout.h"
#include "vmstack/err.h"
#include "vmstack/rtutil.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"
#include "vmstack/tls.h"

struct frame;
struct stack_capture;
struct thread;
struct module;
struct maps;

#define SI_MAX 64            /* stackinfos followed at most */
#define CX_MAX 65536         /* contexts of one stackinfo read at most */
#define CX_BYTES_MAX (8u << 20)
#define NAME_MAX_LEN 128     /* chars of a package or sub name kept */
#define RUNOPS_MAX 4
#define CACHE_SIZE 1024      /* entries of each name cache (direct-mapped) */


/* -- State ------------------------------------------------------------------ */

/* One stackinfo as copied during the stop. */
struct si_copy {
  uint64_t addr, prev;
  int32_t cxix, type;
  uint8_t *cx;               /* (cxix + 1) contexts */
  size_t cap;
};

struct xs_entry {
  uint64_t addr;             /* CvXSUB */
  char name[NAME_MAX_LEN];
};

/* Where a thread's stacks were at its last sample. */
struct pl_where {
  pid_t tid;
  uint64_t interp, interp_at, curcop_at, cursi_at, si, cxstack;
  int32_t cxix, cxmax;
};
#define WHERE_SLOTS 64

struct cop_entry {           /* COP (address, file pointer, line) -> file */
  uint64_t cop, fileptr;
  int line;
  char file[256];            /* as large as a walk's: a hit is never cut shorter */
};

struct cv_entry {            /* CV address (+ its GV and stash, checked) -> name */
  uint64_t cv, gv, stash;
  char name[NAME_MAX_LEN];
};

struct pl_vm {
  struct target *t;
  const struct pl_layout *lo;
  struct module *mod;
  char desc[320];
  int ver[3];
  /* where the interpreter is */
  uint64_t curinterp;        /* &PL_curinterp */
  struct tls_var tls;        /* how PL_current_context is found in a thread */
  uint64_t g_curcop, g_curstackinfo, g_compiling;   /* without MULTIPLICITY: globals */
  uint64_t runops[RUNOPS_MAX][2];
  size_t nrunops;
  /* the copy of the thread sampled last */
  struct {
    int valid;
    pid_t tid;
    uint64_t interp, curcop, compiling;
    struct si_copy si[SI_MAX];
    size_t nsi;
    int err;
  } snap;
  struct cop_entry *cops;
  struct cv_entry *cvs;
  struct pl_where where[WHERE_SLOTS];
  /* XS subs by the address of their C function (from the stashes), sorted */
  struct xs_entry *xs;
  size_t nxs;
  uint64_t xs_built_ms;      /* when the table was last built (0: never) */
  uint64_t xs_miss[16];      /* functions not found after a rebuild: no rebuild for them */
  size_t nxs_miss;
  uint64_t entersub[2];      /* Perl_pp_entersub's range: it calls XS subs */
  uint64_t yyparse[2];       /* Perl_yyparse's range: the parser (0: not found) */
  uint64_t g_defstash;       /* &PL_defstash without MULTIPLICITY */
};


static inline int rptr(struct pl_vm *vm, uint64_t addr, uint64_t *ret)
{
  *ret = 0;
  if (!addr || (addr & 7))
    return -VMS_E_BADDATA;
  return mem_read(vm->t->mem, addr, ret, 8);
}

/* What a Perl frame is, for the locals hook (vm_frame.ctx[3]). */
enum { PL_FRAME_SUB = 1, PL_FRAME_EVAL, PL_FRAME_MAIN };

struct svh {
  uint64_t any;
  uint32_t refcnt, flags;
  uint64_t u;
};

const char *pl_xs_name(struct pl_vm *vm, const struct frame *native, size_t i,
                       size_t nnative, char *module, size_t cap);
int pl_cop_info(struct pl_vm *vm, uint64_t cop, char *file, size_t cap, int *ret_line);
int pl_copy_stacks(struct pl_vm *vm, const struct thread *th);
int pl_cv_name(struct pl_vm *vm, uint64_t cv, char *buf, size_t cap);
int pl_sv_head(struct pl_vm *vm, uint64_t sv, struct svh *h);
int pl_text_ok(char *s);
/* A HEK's key (cut at cap-1 bytes); a stash's name (HvNAME). */
int pl_hek_str(struct pl_vm *vm, uint64_t hek, char *buf, size_t cap);
int pl_hv_name(struct pl_vm *vm, uint64_t hv, char *buf, size_t cap);
/* The thread's interpreter (its thread-local pointer, else PL_curinterp for the main
 * thread); 0 when the thread runs no Perl. */
int pl_thread_interp(struct pl_vm *vm, const struct thread *th, uint64_t *ret, uint64_t *ret_at);
struct vm_frames;
struct vm_locals_opts;
/* The locals hook (pl_locals.c): a Perl frame's variables, from the ctx[] the walk left. */
int pl_locals(void *vmv, struct target *t, struct vm_frames *vf, size_t i,
              const struct vm_locals_opts *opts);
struct heap;
/* The heap hook (pl_heap.c): every SV of the arenas, its references, the roots. */
int pl_heap(void *vmv, struct target *t, struct heap *h);
int pl_heap_label(void *vmv, struct target *t, uint64_t from, uint64_t to, char *buf,
                  size_t cap);
int pl_probe(struct target *t, void **ret_vm);
const char *pl_describe(const void *vmv);
void pl_free(void *vmv);
int pl_capture(void *vmv, struct target *t, struct thread *th, const struct stack_capture *cap);

#endif
