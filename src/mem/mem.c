/* Remote memory: one read interface (mem.h) over a live process or a saved snapshot, with
 * a page cache for small reads and recording for snapshots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmstack/err.h"
#include "vmstack/seams.h"
#include "mem_impl.h"

int mem_errno_neg(void)
{
  return errno ? -errno : -EIO;
}

/* Test seam, off unless VMSTACK_TEST_CORRUPT="SEED:PERMILLE" is set: that share of the
 * reads from a live target get one byte of our copy changed, so that tests can check every
 * decoder against torn and garbage data. The target itself is never touched. */
static void test_corrupt(struct mem_iov *v, size_t n)
{
  static int init;
  static uint64_t state;
  unsigned permille = seams.corrupt_permille;
  if (!init) {
    state = seams.corrupt_seed * 2654435761u + 1;
    init = 1;
  }
  for (size_t i = 0; permille && i < n; i++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    if (v[i].err || !v[i].len || (state >> 33) % 1000 >= permille)
      continue;
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    ((uint8_t *)v[i].buf)[(state >> 33) % v[i].len] ^= (uint8_t)(1u + (state >> 56) % 255);
  }
}

static void direct_readv(struct mem *m, struct mem_iov *v, size_t n)
{
  if (!m->pid) {
    for (size_t i = 0; i < n; i++)
      mem_snap_read(m, &v[i]);
    return;
  }
  mem_live_readv(m, v, n);
  test_corrupt(v, n);
  if (m->recording)
    for (size_t i = 0; i < n; i++)
      mem_keep(m, &v[i]);
}

/* Inside the bulk copy: from it; the rest (read-only file pages, say) as before. */
static void raw_readv(struct mem *m, struct mem_iov *v, size_t n)
{
  if (!m->ncopy) {
    direct_readv(m, v, n);
    return;
  }
  for (size_t i = 0; i < n; i++)
    if (mem_copy_read(m, v[i].addr, v[i].buf, v[i].len))
      direct_readv(m, &v[i], 1);
    else
      v[i].err = 0;
}

/* -- Page cache ----------------------------------------------------------- */

static int cached_read(struct mem *m, uint64_t addr, void *buf, size_t len)
{
  char *out = buf;
  while (len) {
    uint64_t pg = addr / PAGE;
    struct cache_slot *s = &m->cache[pg % CACHE_SLOTS];
    if (s->page != pg + 1 || s->gen != m->gen) {
      struct mem_iov v = { pg * PAGE, s->bytes, PAGE, 0 };
      m->st.cache_misses++;
      raw_readv(m, &v, 1);
      if (v.err) {
        s->page = 0;
        /* the page may be partly unmapped; read the exact bytes instead */
        struct mem_iov w = { addr, out, len, 0 };
        raw_readv(m, &w, 1);
        return w.err;
      }
      s->page = pg + 1;
      s->gen = m->gen;
    } else {
      m->st.cache_hits++;
    }
    size_t off = (size_t)(addr % PAGE), take = PAGE - off;
    if (take > len)
      take = len;
    memcpy(out, s->bytes + off, take);
    out += take;
    addr += take;
    len -= take;
  }
  return 0;
}

/* -- Public interface ----------------------------------------------------- */

void mem_close(struct mem *m)
{
  if (!m)
    return;
  if (m->memfd >= 0)
    close(m->memfd);
  for (size_t i = 0; i < m->nreg; i++)
    free(m->reg[i].bytes);
  for (size_t i = 0; i < m->nblobs; i++) {
    free(m->blobs[i].name);
    free(m->blobs[i].data);
  }
  free(m->blobs);
  mem_copy_free(m);
  free(m->reg);
  free(m->cache);
  free(m);
}

int mem_read(struct mem *m, uint64_t addr, void *buf, size_t len)
{
  if (!len)
    return 0;
  if (addr + len < addr)
    return -EFAULT;
  if (m->ncopy && !mem_copy_read(m, addr, buf, len))
    return 0;
  if (len <= SMALL_READ && m->pid && !m->recording)
    return cached_read(m, addr, buf, len);
  struct mem_iov v = { addr, buf, len, 0 };
  raw_readv(m, &v, 1);
  return v.err;
}

int mem_readv(struct mem *m, struct mem_iov *iov, size_t n)
{
  for (size_t i = 0; i < n; i++)
    iov[i].err = iov[i].addr + iov[i].len < iov[i].addr ? -EFAULT : 0;
  raw_readv(m, iov, n);
  for (size_t i = 0; i < n; i++)
    if (iov[i].err)
      return iov[i].err;
  return 0;
}

int mem_read_cstr(struct mem *m, uint64_t addr, char *buf, size_t cap)
{
  if (!cap)
    return -EINVAL;
  size_t got = 0;
  while (got + 1 < cap) {
    /* never read across a page boundary in one go: the next page may be unmapped */
    size_t chunk = PAGE - (size_t)((addr + got) % PAGE);
    if (chunk > cap - 1 - got)
      chunk = cap - 1 - got;
    int r = mem_read(m, addr + got, buf + got, chunk);
    if (r) {
      buf[got] = 0;
      return r;
    }
    char *z = memchr(buf + got, 0, chunk);
    if (z)
      return (int)(z - buf);
    got += chunk;
  }
  buf[got] = 0;
  return (int)got;
}

void mem_invalidate(struct mem *m)
{
  m->gen++;
}

void mem_get_stats(const struct mem *m, struct mem_stats *ret)
{
  *ret = m->st;
}

void mem_record(struct mem *m, int on)
{
  m->recording = on && m->pid;
}

