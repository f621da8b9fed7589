/* Remote memory, private to src/mem/: the one struct behind mem.h and what its backends
 * (live: mem_live.c; snapshot: mem_snapshot.c) share. */
#ifndef VMSTACK_MEM_IMPL_H
#define VMSTACK_MEM_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmstack/mem.h"

#define PAGE 4096u
#define CACHE_SLOTS 64u
#define SMALL_READ 512u   /* reads up to this size go through the page cache */
#define BATCH 512         /* iovecs per process_vm_readv call (IOV_MAX is 1024) */
#define SNAP_MAGIC "VMSSNAP1"
#define REC_MAX (256u << 20)   /* recorded bytes kept at most */
#define SNAP_SECTIONS_MAX (1u << 22)   /* sections of a snapshot file at most */

struct region {
  uint64_t addr;
  size_t len;
  uint8_t *bytes;
};

struct blob {
  char *name;
  void *data;
  size_t len;
};

struct cache_slot {
  uint64_t page;     /* page number + 1; 0 = empty */
  uint64_t gen;
  uint8_t bytes[PAGE];
};

struct mem {
  pid_t pid;             /* 0 for a snapshot */
  int memfd;             /* /proc/PID/mem, opened on first fallback */
  int use_procmem;
  uint64_t gen;
  struct cache_slot *cache;
  struct mem_stats st;
  /* snapshot regions (sorted, disjoint) or recorded reads */
  struct region *reg;
  size_t nreg, capreg;
  size_t recbytes;
  int rec_dropped;         /* reads not kept (over REC_MAX, or out of memory) */
  int recording;
  struct blob *blobs;
  size_t nblobs;
  /* a bulk copy of ranges of a live process (mem_copy_ranges): reads inside come from it */
  struct region *copy;
  size_t ncopy;
  const struct region *last;       /* the copy's region of the last read */
  struct region *prep;             /* buffers made ready for a copy (mem_copy_prepare) */
  size_t nprep;
};

int mem_errno_neg(void);
/* Live reads of n elements (batched); each element gets its own err. */
void mem_live_readv(struct mem *m, struct mem_iov *v, size_t n);
/* Reads from the snapshot's regions. */
int mem_snap_read(const struct mem *m, struct mem_iov *v);
/* The region of sorted, disjoint v[0..n) that holds addr, or NULL. */
const struct region *region_find(const struct region *v, size_t n, uint64_t addr);
/* A read wholly inside the bulk copy: 0, else -ENOENT (read it elsewhere). */
int mem_copy_read(struct mem *m, uint64_t addr, void *buf, size_t len);
void mem_copy_free(struct mem *m);
/* Keep a copy of a successful read (recording, or loading a snapshot). */
void mem_keep(struct mem *m, const struct mem_iov *v);

#endif
