/* Remote memory: one read interface over a live process or a saved snapshot. */
#ifndef VMSTACK_MEM_H
#define VMSTACK_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mem;

struct mem_iov {
  uint64_t addr;
  void *buf;
  size_t len;
  int err;        /* out: 0 or -errno for this element */
};

struct mem_stats {
  uint64_t syscalls;    /* process_vm_readv / pread calls */
  uint64_t bytes;       /* bytes transferred from the target */
  uint64_t cache_hits;
  uint64_t cache_misses;
};

/* Live backend: batched process_vm_readv, falling back to pread on /proc/PID/mem when
 * process_vm_readv is refused (seccomp EPERM, ENOSYS). Never writes. */
int mem_open_live(pid_t pid, struct mem **ret_m);
/* Snapshot backend: the regions (and named blobs) saved by mem_snapshot_write(). */
int mem_open_snapshot(const char *path, struct mem **ret_m);
void mem_close(struct mem *m);

/* All-or-nothing read: 0, or -EFAULT/-ESRCH/... with buf unspecified. */
int mem_read(struct mem *m, uint64_t addr, void *buf, size_t len);
/* One batched call for many ranges; every element gets its own err. Returns 0 when all
 * elements were read, else the first element's error. */
int mem_readv(struct mem *m, struct mem_iov *iov, size_t n);
/* NUL-terminated string of at most cap-1 bytes; returns its length, or -errno.
 * A string longer than that is cut (and still terminated). */
int mem_read_cstr(struct mem *m, uint64_t addr, char *buf, size_t cap);

/* Heap snapshots: copy these ranges of a live process now (large reads: call while it is
 * stopped); from then on reads inside them come from the copy (the process may run),
 * reads elsewhere from the process. A page that cannot be read is left out. *ret_bytes:
 * bytes copied. */
struct mem_range {
  uint64_t addr, len;
};
int mem_copy_ranges(struct mem *m, const struct mem_range *r, size_t n, uint64_t *ret_bytes);
/* Before stopping the process: buffers for these ranges, their pages already ours (the
 * page faults are not taken while the process is stopped); mem_copy_ranges uses those
 * whose range is unchanged. */
int mem_copy_prepare(struct mem *m, const struct mem_range *r, size_t n);
/* Drop the copy (after the enumeration: its memory goes back before the analysis). */
void mem_copy_drop(struct mem *m);
/* Straight into the copy: len bytes at addr, or NULL when they are not all in it. */
const void *mem_copy_ptr(const struct mem *m, uint64_t addr, size_t len);

/* Forget cached pages: call whenever the target may have run since the last read. */
void mem_invalidate(struct mem *m);
void mem_get_stats(const struct mem *m, struct mem_stats *ret);

/* Recording: while on, every successful read is kept, to be saved as a snapshot. */
void mem_record(struct mem *m, int on);
/* Named side data carried in a snapshot (maps text, registers, ...). */
int mem_blob_add(struct mem *m, const char *name, const void *data, size_t len);
/* Blobs of a snapshot that carries the module files it used (dump --embed-files): the
 * list of those files (its presence makes a replay use no file of the machine), and per
 * module its file's skeleton (see elf_file_skeleton) and that of its debug file, named by
 * prefix + the module's first mapping address in hex + ":" + its path in the maps (two
 * builds mapped at one path stay apart). */
#define BLOB_FILES "vmstack.files"
#define BLOB_FILE "vmstack.file:"
#define BLOB_DEBUG_FILE "vmstack.debug_file:"
int mem_blob_get(const struct mem *m, const char *name, const void **ret_data, size_t *ret_len);
/* Fails with -E2BIG for what a reader would refuse: a section over SNAP_SECTION_MAX bytes,
 * a name over SNAP_NAME_MAX, or more than SNAP_TOTAL_MAX bytes in all. */
#define SNAP_SECTION_MAX (256ull << 20)
#define SNAP_NAME_MAX 4096
#define SNAP_TOTAL_MAX (1ull << 30)
int mem_snapshot_write(const struct mem *m, const char *path);

#endif
