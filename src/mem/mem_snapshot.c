/* Snapshots: the regions of memory a walk read (recorded while it ran) and named blobs,
 * saved to a file and read back. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmstack/err.h"
#include "mem_impl.h"

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

int mem_snap_read(const struct mem *m, struct mem_iov *v)
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

int mem_snapshot_write(const struct mem *m, const char *path)
{
  if (m->rec_dropped)
    return -E2BIG;   /* incomplete: more was read than a snapshot keeps */
  /* a new file, readable by its owner only (it holds the target's memory), in place of
   * an older one only once it is whole */
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= (int)sizeof tmp)
    return -ENAMETOOLONG;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return mem_errno_neg();
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    int e = mem_errno_neg();
    close(fd);
    unlink(tmp);
    return e;
  }
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
  if (fclose(f) || bad) {
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
    return mem_errno_neg();
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
  fclose(f);
  if (r) {
    mem_close(m);
    return r;
  }
  *ret_m = m;
  return 0;
}
