/* Snapshots: the regions of memory a walk read (recorded while it ran) and named blobs,
 * saved to a file and read back. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vmstack/err.h"
#include "mem_impl.h"

const struct region *region_find(const struct region *v, size_t n, uint64_t addr)
{
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (v[mid].addr + v[mid].len <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && v[lo].addr <= addr ? &v[lo] : NULL;
}

int mem_snap_read(const struct mem *m, struct mem_iov *v)
{
  uint64_t a = v->addr;
  size_t done = 0;
  while (done < v->len) {
    const struct region *r = region_find(m->reg, m->nreg, a);
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

void mem_keep(struct mem *m, const struct mem_iov *v)
{
  if (v->err || !v->len)
    return;
  if (m->recbytes + v->len > REC_MAX) {
    m->rec_dropped = 1;
    return;
  }
  if (m->nreg == m->capreg) {
    size_t nc = m->capreg ? m->capreg * 2 : 64;
    struct region *nr = realloc(m->reg, nc * sizeof *nr);
    if (!nr) {
      m->rec_dropped = 1;
      return;
    }
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

static int ends_with(const char *s, const char *suffix)
{
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

int mem_snapshot_write(const struct mem *m, const char *path)
{
  if (m->rec_dropped)
    return -E2BIG;   /* incomplete: more was read than a snapshot keeps */
  /* a new file, readable by its owner only (it holds the target's memory), in place of
   * an older one only once it is whole; gzip-compressed when its name ends in .gz */
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= (int)sizeof tmp)
    return -ENAMETOOLONG;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return mem_errno_neg();
  gzFile f = gzdopen(fd, ends_with(path, ".gz") ? "wb9" : "wbT");
  if (!f) {
    close(fd);
    unlink(tmp);
    return -ENOMEM;
  }
  /* what a reader would refuse is refused here: a snapshot saved is one that replays */
  uint64_t total = 0;
  for (size_t i = 0; i < m->nreg; i++)
    total += m->reg[i].len + sizeof(struct sec_hdr);
  for (size_t i = 0; i < m->nblobs; i++) {
    size_t nl = strlen(m->blobs[i].name);
    if (m->blobs[i].len > SNAP_SECTION_MAX || nl > SNAP_NAME_MAX)
      return -E2BIG;
    total += m->blobs[i].len + nl + sizeof(struct sec_hdr);
  }
  if (total > SNAP_TOTAL_MAX || m->nreg + m->nblobs > SNAP_SECTIONS_MAX)
    return -E2BIG;
  uint32_t count = (uint32_t)(m->nreg + m->nblobs);
  int ok = gzwrite(f, SNAP_MAGIC, 8) == 8 && gzwrite(f, &count, sizeof count) == sizeof count;
  for (size_t i = 0; ok && i < m->nreg; i++) {
    struct sec_hdr h = { 1, 0, m->reg[i].addr, m->reg[i].len };
    ok = gzwrite(f, &h, sizeof h) == sizeof h &&
         (!h.len || gzwrite(f, m->reg[i].bytes, (unsigned)h.len) == (int)h.len);
  }
  for (size_t i = 0; ok && i < m->nblobs; i++) {
    struct sec_hdr h = { 2, (uint32_t)strlen(m->blobs[i].name), 0, m->blobs[i].len };
    ok = gzwrite(f, &h, sizeof h) == sizeof h &&
         gzwrite(f, m->blobs[i].name, h.namelen) == (int)h.namelen &&
         (!h.len || gzwrite(f, m->blobs[i].data, (unsigned)h.len) == (int)h.len);
  }
  if (gzclose(f) != Z_OK || !ok) {
    unlink(tmp);
    return -EIO;
  }
  if (rename(tmp, path)) {
    int e = mem_errno_neg();
    unlink(tmp);
    return e;
  }
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
    const struct region *e = r ? NULL : region_find(m->reg, m->nreg, old[i].addr);
    if (e)
      memcpy(e->bytes + (old[i].addr - e->addr), old[i].bytes, old[i].len);
    free(old[i].bytes);
  }
  free(old);
  return r;
}

/* gzread of exactly len bytes */
static int gz_full(gzFile f, void *buf, uint64_t len)
{
  return gzread(f, buf, (unsigned)len) == (int)len;
}

int mem_open_snapshot(const char *path, struct mem **ret_m)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  if (fd < 0)
    return mem_errno_neg();
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    close(fd);
    return -VMS_E_BADSNAP;
  }
  gzFile f = gzdopen(fd, "rb");   /* (compressed or not) */
  if (!f) {
    close(fd);
    return -ENOMEM;
  }
  struct mem *m = calloc(1, sizeof *m);
  int r = -ENOMEM;
  char magic[8];
  uint32_t count;
  uint64_t total = 0;
  if (!m)
    goto out;
  m->memfd = -1;
  r = -VMS_E_BADSNAP;
  if (!gz_full(f, magic, 8) || memcmp(magic, SNAP_MAGIC, 8) || !gz_full(f, &count, 4) ||
      count > SNAP_SECTIONS_MAX)
    goto out;
  for (uint32_t i = 0; i < count; i++) {
    struct sec_hdr h;
    /* bounded: a section, a name, the sections and the whole (headers counted) */
    if (!gz_full(f, &h, sizeof h) || h.namelen > SNAP_NAME_MAX || h.len > SNAP_SECTION_MAX ||
        h.addr + h.len < h.addr ||
        (total += h.len + h.namelen + sizeof h) > SNAP_TOTAL_MAX)
      goto out;
    char name[SNAP_NAME_MAX + 1];
    if (h.namelen && !gz_full(f, name, h.namelen))
      goto out;
    name[h.namelen] = 0;
    uint8_t *data = malloc(h.len ? h.len : 1);
    if (!data) {
      r = -ENOMEM;
      goto out;
    }
    if (h.len && !gz_full(f, data, h.len)) {
      free(data);
      goto out;
    }
    if (h.kind == 1) {
      struct mem_iov v = { h.addr, data, h.len, 0 };
      size_t before = m->nreg;
      mem_keep(m, &v);
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
  gzclose(f);
  if (r) {
    mem_close(m);
    return r;
  }
  *ret_m = m;
  return 0;
}
