/* The sampling profiler's parts, private to src/verb/: the profile (profile.c: stacks as
 * keys, interned names, naming after release), the set of processes sampled and followed
 * (follow.c), and the sampling loop (record.c). */
#ifndef VMSTACK_RECORD_IMPL_H
#define VMSTACK_RECORD_IMPL_H

#include <stdint.h>
#include <sys/types.h>

#include "vmstack/dump.h"
#include "vmstack/profile.h"

struct maps;
struct target;
struct thread;

/* -- Keys: one 64-bit word per frame ---------------------------------------
 * native (FK_NATIVE, 0): pc | exact << 56; the others: their frame kind << 60 | interned
 * string id (FK_FUNCTION, FK_JIT, FK_THREAD, FK_PROCESS) */

#define KEY_TAG(k) ((enum frame_kind)((k) >> 60))
#define KEY_EXACT (1ull << 56)
#define PICK_VM_MAX 8192         /* VM frames of one sample at most */
#define PROC_SHIFT 47            /* native keys: process index in bits 47..55 */
#define PROC_MAX 512
#define PC_MASK ((1ull << PROC_SHIFT) - 1)   /* x86_64 user addresses are below 2^47 */
#define KEY_PROC_OF(k) ((size_t)(((k) >> PROC_SHIFT) & (PROC_MAX - 1)))

struct pstack {
  uint64_t hash, count;
  uint64_t count2;         /* a second weight (a memory profile's objects, or its baseline) */
  uint32_t n;
  uint64_t *keys;          /* leaf first */
};

struct profile {
  struct pstack *tab;
  size_t cap, used;
  char **strs;
  size_t nstrs, capstrs;
  uint32_t *strtab;        /* open addressing over strs (index + 1) */
  size_t strcap;
  uint64_t total;
  struct maps *maps[PROC_MAX];   /* per process index: for naming native frames */
  struct target *owned[PROC_MAX];  /* processes found while following children (the
                                      first, given by the caller, is not owned) */
  size_t nprocs;
  /* native keys of processes let go while recording -> interned names */
  struct { uint64_t key; uint32_t id; } *named;
  size_t named_cap, named_n;
};

/* One process being sampled: the target given, or a child found while following them. */
struct rproc {
  struct target *t;
  uint32_t idx;            /* process index in the keys of native frames */
  struct dump_result res;  /* runtimes found in it */
  struct unwinder *u;
  int perr;                /* why the probe failed (0: ok or no runtime yet) */
  const struct maps *probed;  /* the maps the last probe looked at */
  int gone;                /* exited (or exec'd: a new entry took over) */
  int retired;             /* named and let go (retire()) */
  double added;            /* when sampling it began */
  /* VM view: an unnamed C function at the root of the VM frames (a host's entry such as
   * luajit's pmain) and the key it is shown by (see vm_root_key) */
  uint64_t root_cf[8], root_key[8];
  size_t nroot;
  /* C functions the VM names: whether a symbol covers them (direct-mapped by address) */
  struct { uint64_t cf; int sym; } named[64];
};

struct rec {
  const struct record_opts *o;
  struct dump_opts dopts;
  struct profile *p;
  struct profile_stats *st;
  struct rproc procs[PROC_MAX];
  size_t n;
  pid_t failed[64];        /* children that could not be attached (tried again after 1 s) */
  double failed_at[64];
  size_t nfailed;
  int warned_max;
  int warned_children;
  pid_t reopen[16];        /* exec'd processes whose new program could not be read yet */
  double reopen_since[16];
  size_t nreopen;
};

/* profile.c */
int64_t profile_intern(struct profile *p, const char *s);
/* One more stack, weighing weight (1 for a sample; bytes, for a memory profile). */
int profile_add_stack(struct profile *p, const uint64_t *keys, uint32_t n, uint64_t weight,
                      uint64_t weight2);
void profile_vm_name(const struct vm_frame *v, char *buf, size_t cap);
int profile_named_put(struct profile *p, uint64_t key, uint32_t id);
const char *profile_named_get(const struct profile *p, uint64_t key);
void profile_native_name(struct maps *mp, uint64_t k, char *buf, size_t cap);
void profile_name_natives(struct profile *p, uint32_t idx);

/* follow.c */
struct thread *rec_find_thread(struct rec *rc, pid_t tid, struct rproc **ret_pr);
void rec_reap_hook(void *arg, pid_t tid, int status);
void rec_reap(struct rec *rc);
void rec_reap_one(struct rec *rc, pid_t tid, int status);
void rec_proc_probe(struct rec *rc, struct rproc *pr);
void rec_proc_release(struct rproc *pr);
int rec_proc_add(struct rec *rc, struct target *t);
void rec_retire(struct rec *rc, struct rproc *pr);
void rec_reopen(struct rec *rc, pid_t pid);
void rec_reopen_pending(struct rec *rc);
int rec_known(const struct rec *rc, pid_t pid);
void rec_follow_children(struct rec *rc, struct rproc *pr);
void rec_refresh(struct rec *rc);

#endif
