/* A bulk copy of a live process's memory (heap snapshots): ranges read with large
 * process_vm_readv calls while the process is stopped, then read from here while it runs
 * again. Never writes to the process. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "vmstack/err.h"
#include "vmstack/seams.h"
#include "mem_impl.h"

#define CHUNK (64u << 20)     /* bytes per process_vm_readv call */

static const struct region *copy_find(const struct mem *m, uint64_t addr)
{
  size_t lo = 0, hi = m->ncopy;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (m->copy[mid].addr + m->copy[mid].len <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < m->ncopy && m->copy[lo].addr <= addr ? &m->copy[lo] : NULL;
}

int mem_copy_read(const struct mem *m, uint64_t addr, void *buf, size_t len)
{
  const struct region *r = copy_find(m, addr);
  if (!r || addr - r->addr + len > r->len)
    return -ENOENT;
  memcpy(buf, r->bytes + (addr - r->addr), len);
  return 0;
}

const void *mem_copy_ptr(const struct mem *m, uint64_t addr, size_t len)
{
  const struct region *r = m->ncopy ? copy_find(m, addr) : NULL;
  if (!r || addr - r->addr + len > r->len || addr + len < addr)
    return NULL;
  return r->bytes + (addr - r->addr);
}

void mem_copy_free(struct mem *m)
{
  for (size_t i = 0; i < m->ncopy; i++)
    free(m->copy[i].bytes);
  free(m->copy);
  m->copy = NULL;
  m->ncopy = 0;
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

/* Copy one range; a page that cannot be read ends a region (the copy goes on after it). */
static int copy_range(struct mem *m, uint64_t addr, uint64_t len, uint64_t *copied)
{
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return -ENOMEM;
  uint64_t done = 0, start = 0;
  int r = 0;
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
    /* unreadable here: keep what came before as a region, skip the page */
    if (done > start) {
      struct region *nr = realloc(m->copy, (m->ncopy + 1) * sizeof *nr);
      uint8_t *part = malloc(done - start);
      if (!nr || !part) {
        free(part);
        if (nr)
          m->copy = nr;
        r = -ENOMEM;
        break;
      }
      m->copy = nr;
      memcpy(part, buf + start, done - start);
      m->copy[m->ncopy++] = (struct region){ addr + start, (size_t)(done - start), part };
      *copied += done - start;
    }
    done = ((addr + done) / PAGE + 1) * PAGE - addr;
    start = done;
  }
  if (!r && done > start && start < len) {
    struct region *nr = realloc(m->copy, (m->ncopy + 1) * sizeof *nr);
    if (!nr) {
      r = -ENOMEM;
    } else {
      m->copy = nr;
      if (start) {
        /* (only the tail: move it to a buffer of its own) */
        uint8_t *part = malloc(len - start);
        if (!part) {
          r = -ENOMEM;
        } else {
          memcpy(part, buf + start, len - start);
          m->copy[m->ncopy++] = (struct region){ addr + start, (size_t)(len - start), part };
          *copied += len - start;
        }
      } else {
        m->copy[m->ncopy++] = (struct region){ addr, (size_t)len, buf };
        *copied += len;
        buf = NULL;
      }
    }
  }
  free(buf);
  return r;
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
  for (size_t i = 0; i < n && !r; i++)
    if (v[i].len && (!i || v[i].addr >= v[i - 1].addr + v[i - 1].len))
      r = copy_range(m, v[i].addr, v[i].len, ret_bytes);
  free(v);
  if (r)
    mem_copy_free(m);
  else if (seams.corrupt_permille)
    corrupt(m);
  return r;
}
