/* Remote memory backends: live process (process_vm_readv, /proc/PID/mem) and snapshots. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vmstack/err.h"
#include "vmstack/mem.h"
#include "vmstack/seams.h"

/* -- Types ---------------------------------------------------------------- */

#define PAGE 4096u
#define CACHE_SLOTS 64u
#define SMALL_READ 512u   /* reads up to this size go through the page cache */
#define BATCH 512         /* iovecs per process_vm_readv call (IOV_MAX is 1024) */
#define SNAP_MAGIC "VMSSNAP1"
#define REC_MAX (256u << 20)   /* recorded bytes kept at most */

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
  int recording;
  struct blob *blobs;
  size_t nblobs;
};

/* -- Raw live reads ------------------------------------------------------- */

static int errno_neg(void)
{
  return errno ? -errno : -EIO;
}

static int procmem_read(struct mem *m, struct mem_iov *v)
{
  if (m->memfd < 0) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/mem", (int)m->pid);
    m->memfd = open(p, O_RDONLY | O_CLOEXEC);
    if (m->memfd < 0)
      return v->err = errno_neg();
  }
  size_t done = 0;
  while (done < v->len) {
    m->st.syscalls++;
    ssize_t r = pread(m->memfd, (char *)v->buf + done, v->len - done, (off_t)(v->addr + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return v->err = r < 0 ? (errno == EIO ? -EFAULT : errno_neg()) : -EFAULT;
    done += (size_t)r;
  }
  m->st.bytes += done;
  return v->err = 0;
}

/* One process_vm_readv for up to BATCH elements. The kernel stops at the first element
 * it cannot read, so after a short count the rest are retried one by one. */
static void live_batch(struct mem *m, struct mem_iov *v, size_t n)
{
  struct iovec lo[BATCH], re[BATCH];
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    lo[i].iov_base = v[i].buf;
    lo[i].iov_len = v[i].len;
    re[i].iov_base = (void *)(uintptr_t)v[i].addr;
    re[i].iov_len = v[i].len;
    total += v[i].len;
    v[i].err = 0;
  }
  m->st.syscalls++;
  ssize_t r = process_vm_readv(m->pid, lo, n, re, n, 0);
  if (r < 0 && (errno == EPERM || errno == ENOSYS) && !m->use_procmem) {
    /* process_vm_readv is filtered (seccomp) or missing: /proc/PID/mem uses the same
     * ptrace access check, so it works wherever we are allowed to read at all. */
    m->use_procmem = 1;
    for (size_t i = 0; i < n; i++)
      procmem_read(m, &v[i]);
    return;
  }
  if (r < 0) {
    int e = errno == ESRCH ? -ESRCH : errno_neg();
    if (e == -ESRCH || n == 1) {
      for (size_t i = 0; i < n; i++)
        v[i].err = e;
      return;
    }
    r = 0;
  }
  m->st.bytes += (size_t)r;
  if ((size_t)r == total)
    return;
  size_t acc = 0, i = 0;
  while (i < n && acc + v[i].len <= (size_t)r)
    acc += v[i++].len;
  for (; i < n; i++) {
    if (n == 1) {
      v[i].err = -EFAULT;
      break;
    }
    live_batch(m, &v[i], 1);
  }
}

static void raw_readv(struct mem *m, struct mem_iov *v, size_t n);

/* -- Snapshot regions ----------------------------------------------------- */

static const struct region *reg_find(const struct mem *m, uint64_t addr)
{
  size_t lo = 0, hi = m->nreg;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (m->reg[mid].addr + m->reg[mid].len <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < m->nreg && m->reg[lo].addr <= addr ? &m->reg[lo] : NULL;
}

static int snap_read(const struct mem *m, struct mem_iov *v)
{
  uint64_t a = v->addr;
  size_t done = 0;
  while (done < v->len) {
    const struct region *r = reg_find(m, a);
    if (!r)
      return v->err = -EFAULT;
    size_t off = (size_t)(a - r->addr), take = r->len - off;
    if (take > v->len - done)
      take = v->len - done;
    memcpy((char *)v->buf + done, r->bytes + off, take);
    done += take;
    a += take;
  }
  return v->err = 0;
}

static int reg_cmp(const void *a, const void *b)
{
  const struct region *x = a, *y = b;
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void record(struct mem *m, const struct mem_iov *v)
{
  if (v->err || !v->len || m->recbytes + v->len > REC_MAX)
    return;
  if (m->nreg == m->capreg) {
    size_t nc = m->capreg ? m->capreg * 2 : 64;
    struct region *nr = realloc(m->reg, nc * sizeof *nr);
    if (!nr)
      return;
    m->reg = nr;
    m->capreg = nc;
  }
  uint8_t *b = malloc(v->len);
  if (!b)
    return;
  memcpy(b, v->buf, v->len);
  m->reg[m->nreg++] = (struct region){ v->addr, v->len, b };
  m->recbytes += v->len;
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

static void raw_readv(struct mem *m, struct mem_iov *v, size_t n)
{
  if (!m->pid) {
    for (size_t i = 0; i < n; i++)
      snap_read(m, &v[i]);
    return;
  }
  if (m->use_procmem) {
    for (size_t i = 0; i < n; i++)
      procmem_read(m, &v[i]);
  } else {
    for (size_t i = 0; i < n; i += BATCH)
      live_batch(m, v + i, n - i < BATCH ? n - i : BATCH);
  }
  test_corrupt(v, n);
  if (m->recording)
    for (size_t i = 0; i < n; i++)
      record(m, &v[i]);
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

int mem_open_live(pid_t pid, struct mem **ret_m)
{
  if (pid <= 0)
    return -EINVAL;
  struct mem *m = calloc(1, sizeof *m);
  if (!m)
    return -ENOMEM;
  m->cache = calloc(CACHE_SLOTS, sizeof *m->cache);
  if (!m->cache) {
    free(m);
    return -ENOMEM;
  }
  m->pid = pid;
  m->memfd = -1;
  m->gen = 1;
  *ret_m = m;
  return 0;
}

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

int mem_blob_add(struct mem *m, const char *name, const void *data, size_t len)
{
  struct blob *nb = realloc(m->blobs, (m->nblobs + 1) * sizeof *nb);
  if (!nb)
    return -ENOMEM;
  m->blobs = nb;
  struct blob *b = &nb[m->nblobs];
  b->name = strdup(name);
  b->data = malloc(len ? len : 1);
  if (!b->name || !b->data) {
    free(b->name);
    free(b->data);
    return -ENOMEM;
  }
  memcpy(b->data, data, len);
  b->len = len;
  m->nblobs++;
  return 0;
}

int mem_blob_get(const struct mem *m, const char *name, const void **ret_data, size_t *ret_len)
{
  for (size_t i = m->nblobs; i-- > 0;)
    if (!strcmp(m->blobs[i].name, name)) {
      *ret_data = m->blobs[i].data;
      *ret_len = m->blobs[i].len;
      return 0;
    }
  return -ENOENT;
}

/* -- Snapshot files --------------------------------------------------------
 * "VMSSNAP1", u32 count, then per section: u32 kind (1 memory, 2 blob), u32 name length,
 * u64 address, u64 length, name bytes, data bytes. Native byte order (x86_64). */

struct sec_hdr {
  uint32_t kind, namelen;
  uint64_t addr, len;
};

int mem_snapshot_write(const struct mem *m, const char *path)
{
  FILE *f = fopen(path, "wbe");
  if (!f)
    return errno_neg();
  uint32_t count = (uint32_t)(m->nreg + m->nblobs);
  fwrite(SNAP_MAGIC, 8, 1, f);
  fwrite(&count, sizeof count, 1, f);
  for (size_t i = 0; i < m->nreg; i++) {
    struct sec_hdr h = { 1, 0, m->reg[i].addr, m->reg[i].len };
    fwrite(&h, sizeof h, 1, f);
    fwrite(m->reg[i].bytes, 1, m->reg[i].len, f);
  }
  for (size_t i = 0; i < m->nblobs; i++) {
    struct sec_hdr h = { 2, (uint32_t)strlen(m->blobs[i].name), 0, m->blobs[i].len };
    fwrite(&h, sizeof h, 1, f);
    fwrite(m->blobs[i].name, 1, h.namelen, f);
    fwrite(m->blobs[i].data, 1, m->blobs[i].len, f);
  }
  int bad = ferror(f);
  if (fclose(f) || bad)
    return -EIO;
  return 0;
}

/* Merge overlapping or touching regions into sorted extents; regions are painted in their
 * recorded (file) order so that later reads win. */
static int reg_normalise(struct mem *m)
{
  size_t n = m->nreg, w = 0;
  if (!n)
    return 0;
  struct region *ord = malloc(n * sizeof *ord), *out = calloc(n, sizeof *out);
  if (!ord || !out) {
    free(ord);
    free(out);
    return -ENOMEM;
  }
  memcpy(ord, m->reg, n * sizeof *ord);
  qsort(ord, n, sizeof *ord, reg_cmp);
  for (size_t i = 0; i < n; i++) {
    if (w && ord[i].addr <= out[w - 1].addr + out[w - 1].len) {
      uint64_t end = ord[i].addr + ord[i].len;
      if (end > out[w - 1].addr + out[w - 1].len)
        out[w - 1].len = (size_t)(end - out[w - 1].addr);
    } else {
      out[w++] = (struct region){ ord[i].addr, ord[i].len, NULL };
    }
  }
  free(ord);
  int r = 0;
  for (size_t i = 0; i < w; i++)
    if (!(out[i].bytes = malloc(out[i].len)))
      r = -ENOMEM;
  struct region *old = m->reg;
  m->reg = out;
  m->nreg = w;
  m->capreg = n;
  for (size_t i = 0; i < n; i++) {
    const struct region *e = r ? NULL : reg_find(m, old[i].addr);
    if (e)
      memcpy(e->bytes + (old[i].addr - e->addr), old[i].bytes, old[i].len);
    free(old[i].bytes);
  }
  free(old);
  return r;
}

int mem_open_snapshot(const char *path, struct mem **ret_m)
{
  FILE *f = fopen(path, "rbe");
  if (!f)
    return errno_neg();
  struct mem *m = calloc(1, sizeof *m);
  int r = -ENOMEM;
  char magic[8];
  uint32_t count;
  if (!m)
    goto out;
  m->memfd = -1;
  r = -VMS_E_BADSNAP;
  struct stat st;
  if (fstat(fileno(f), &st) || fread(magic, 8, 1, f) != 1 || memcmp(magic, SNAP_MAGIC, 8) ||
      fread(&count, 4, 1, f) != 1)
    goto out;
  for (uint32_t i = 0; i < count; i++) {
    struct sec_hdr h;
    if (fread(&h, sizeof h, 1, f) != 1 || h.namelen > 4096 || h.len > (1ull << 32) ||
        h.addr + h.len < h.addr || h.namelen + h.len > (uint64_t)st.st_size - (uint64_t)ftell(f))
      goto out;
    char name[4097];
    if (h.namelen && fread(name, 1, h.namelen, f) != h.namelen)
      goto out;
    name[h.namelen] = 0;
    uint8_t *data = malloc(h.len ? h.len : 1);
    if (!data) {
      r = -ENOMEM;
      goto out;
    }
    if (h.len && fread(data, 1, h.len, f) != h.len) {
      free(data);
      goto out;
    }
    if (h.kind == 1) {
      struct mem_iov v = { h.addr, data, h.len, 0 };
      size_t before = m->nreg;
      record(m, &v);
      free(data);
      if (m->nreg == before && h.len)
        goto out;
    } else if (h.kind == 2) {
      int e = mem_blob_add(m, name, data, h.len);
      free(data);
      if (e) {
        r = e;
        goto out;
      }
    } else {
      free(data);
      goto out;
    }
  }
  r = reg_normalise(m);
out:
  fclose(f);
  if (r) {
    mem_close(m);
    return r;
  }
  *ret_m = m;
  return 0;
}
