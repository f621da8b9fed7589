/* A bulk copy of a live process's memory (heap snapshots): ranges read with large
 * process_vm_readv calls while the process is stopped, then read from here while it runs
 * again. Never writes to the process. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "vmstack/err.h"
#include "vmstack/seams.h"
#include "mem_impl.h"

#define CHUNK (64u << 20)     /* bytes per process_vm_readv call */

int mem_copy_read(struct mem *m, uint64_t addr, void *buf, size_t len)
{
  /* (reads come in runs close together: the region of the last one first) */
  const struct region *r = m->last;
  if (!r || addr < r->addr || addr - r->addr >= r->len)
    r = m->last = region_find(m->copy, m->ncopy, addr);
  if (!r || addr - r->addr + len > r->len)
    return -ENOENT;
  memcpy(buf, r->bytes + (addr - r->addr), len);
  return 0;
}

const void *mem_copy_ptr(const struct mem *m, uint64_t addr, size_t len)
{
  const struct region *r = m->ncopy ? region_find(m->copy, m->ncopy, addr) : NULL;
  if (!r || addr - r->addr + len > r->len || addr + len < addr)
    return NULL;
  return r->bytes + (addr - r->addr);
}

static void prep_free(struct mem *m);

void mem_copy_free(struct mem *m)
{
  for (size_t i = 0; i < m->ncopy; i++)
    munmap(m->copy[i].bytes, m->copy[i].len ? m->copy[i].len : 1);
  free(m->copy);
  m->copy = NULL;
  m->ncopy = 0;
  m->last = NULL;
  prep_free(m);
}

/* Test seam (VMSTACK_TEST_CORRUPT="SEED:PERMILLE", as for live reads): that share of the
 * copy's pages get one byte changed, so that tests can check every heap walk against
 * garbage. Our copy only: the target is never touched. */
static void corrupt(struct mem *m)
{
  uint64_t state = seams.corrupt_seed * 2654435761u + 7;
  for (size_t i = 0; i < m->ncopy; i++)
    for (size_t pg = 0; pg < m->copy[i].len; pg += PAGE) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      if ((state >> 33) % 1000 >= seams.corrupt_permille)
        continue;
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      size_t len = m->copy[i].len - pg < PAGE ? m->copy[i].len - pg : PAGE;
      m->copy[i].bytes[pg + (state >> 33) % len] ^= (uint8_t)(1u + (state >> 56) % 255);
    }
}

static int by_addr(const void *a, const void *b)
{
  const struct mem_range *x = a, *y = b;
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}

#define HUGE (2u << 20)

/* A buffer of the copy. A large one is placed on a 2 MiB boundary and asks for transparent
 * huge pages: process_vm_readv pins and fills the destination a page at a time, and the
 * enumeration then reads the copy at random, each read on 4 KiB pages a TLB miss (with
 * the system's "madvise" setting, the default, only asked-for memory gets them). Prepared
 * ones are faulted in here, before the process is stopped. */
static uint8_t *cbuf(size_t len, int populate)
{
  size_t n = len ? len : 1, extra = n >= HUGE ? HUGE : 0;
  uint8_t *p = mmap(NULL, n + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                    0);
  if (p == MAP_FAILED)
    return NULL;
  if (extra) {
    /* (what lies before the boundary and after the buffer goes back) */
    size_t head = (size_t)(-(uintptr_t)p & (HUGE - 1));
    if (head)
      munmap(p, head);
    size_t tail = extra - head;
    p += head;
    if (tail)
      munmap(p + (n + PAGE - 1) / PAGE * PAGE, tail);
    madvise(p, n, MADV_HUGEPAGE);   /* (a hint: without it, small pages) */
  }
  if (populate && madvise(p, n, MADV_POPULATE_WRITE))
    for (size_t o = 0; o < n; o += PAGE)   /* (kernels before 5.14) */
      ((volatile uint8_t *)p)[o] = 0;
  return p;
}

/* A region of the copy, bytes its own (munmap'd with it). */
static int add_region(struct mem *m, uint64_t addr, uint8_t *bytes, size_t len)
{
  struct region *nr = realloc(m->copy, (m->ncopy + 1) * sizeof *nr);
  if (!nr)
    return -ENOMEM;
  m->copy = nr;
  m->copy[m->ncopy++] = (struct region){ addr, len, bytes };
  return 0;
}

/* Copy one range into buf (len bytes, ours from now on); a page that cannot be read ends a
 * region (the copy goes on after it). */
static int copy_range(struct mem *m, uint64_t addr, uint64_t len, uint8_t *buf,
                      uint64_t *copied)
{
  uint64_t done = 0, start = 0;
  int r = 0, whole = 1;
  while (done < len) {
    size_t want = len - done > CHUNK ? CHUNK : (size_t)(len - done);
    struct iovec lo = { buf + done, want }, re = { (void *)(uintptr_t)(addr + done), want };
    m->st.syscalls++;
    ssize_t n = process_vm_readv(m->pid, &lo, 1, &re, 1, 0);
    if (n < 0 && errno == ESRCH) {
      r = -ESRCH;
      break;
    }
    if (n > 0) {
      done += (uint64_t)n;
      m->st.bytes += (uint64_t)n;
      continue;
    }
    /* unreadable here: what came before is a region of its own; skip the page */
    whole = 0;
    if (done > start) {
      uint8_t *part = cbuf(done - start, 0);
      if (!part || add_region(m, addr + start, part, (size_t)(done - start))) {
        if (part)
          munmap(part, done - start);
        r = -ENOMEM;
        break;
      }
      memcpy(part, buf + start, done - start);
      *copied += done - start;
    }
    done = ((addr + done) / PAGE + 1) * PAGE - addr;
    start = done;
  }
  if (!r && whole) {
    if (add_region(m, addr, buf, (size_t)len))
      r = -ENOMEM;
    else
      *copied += len, buf = NULL;
  } else if (!r && start < len) {
    uint8_t *part = cbuf(len - start, 0);
    if (!part || add_region(m, addr + start, part, (size_t)(len - start))) {
      if (part)
        munmap(part, len - start);
      r = -ENOMEM;
    } else {
      memcpy(part, buf + start, len - start);
      *copied += len - start;
    }
  }
  if (buf)
    munmap(buf, len ? len : 1);
  return r;
}

static void prep_free(struct mem *m)
{
  for (size_t i = 0; i < m->nprep; i++)
    if (m->prep[i].bytes)
      munmap(m->prep[i].bytes, m->prep[i].len ? m->prep[i].len : 1);
  free(m->prep);
  m->prep = NULL;
  m->nprep = 0;
}

int mem_copy_prepare(struct mem *m, const struct mem_range *rs, size_t n)
{
  prep_free(m);
  if (!(m->prep = calloc(n ? n : 1, sizeof *m->prep)))
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    uint8_t *b = rs[i].len ? cbuf(rs[i].len, 1) : NULL;
    if (b)
      m->prep[m->nprep++] = (struct region){ rs[i].addr, rs[i].len, b };
  }
  return 0;
}

/* A buffer for [addr, addr+len): one prepared beforehand, else a new one. */
static uint8_t *take(struct mem *m, uint64_t addr, uint64_t len)
{
  for (size_t i = 0; i < m->nprep; i++)
    if (m->prep[i].bytes && m->prep[i].addr == addr && m->prep[i].len == len) {
      uint8_t *b = m->prep[i].bytes;
      m->prep[i].bytes = NULL;
      return b;
    }
  return cbuf(len, 0);
}

int mem_copy_ranges(struct mem *m, const struct mem_range *rs, size_t n, uint64_t *ret_bytes)
{
  *ret_bytes = 0;
  if (!m->pid)
    return -EINVAL;
  mem_copy_free(m);
  struct mem_range *v = malloc((n ? n : 1) * sizeof *v);
  if (!v)
    return -ENOMEM;
  memcpy(v, rs, n * sizeof *v);
  qsort(v, n, sizeof *v, by_addr);
  int r = 0;
  for (size_t i = 0; i < n && !r; i++) {
    if (!v[i].len || (i && v[i].addr < v[i - 1].addr + v[i - 1].len))
      continue;
    uint8_t *buf = take(m, v[i].addr, v[i].len);
    r = buf ? copy_range(m, v[i].addr, v[i].len, buf, ret_bytes) : -ENOMEM;
  }
  free(v);
  prep_free(m);
  if (r)
    mem_copy_free(m);
  else if (seams.corrupt_permille)
    corrupt(m);
  return r;
}

void mem_copy_drop(struct mem *m)
{
  mem_copy_free(m);
}
