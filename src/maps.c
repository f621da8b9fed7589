/* /proc/PID/maps parsing; module files opened inside the target's mount namespace. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"

#define MAPS_MAX (1u << 20)   /* mappings; a larger table is cut */

static char *slurp(const char *path, size_t limit)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (len + 4096 >= cap) {
      if (cap >= limit)
        break;
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  int e = errno;
  close(fd);
  if (buf)
    buf[len] = 0;
  errno = e;
  return buf;
}

void maps_free(struct maps *mp)
{
  if (!mp)
    return;
  for (size_t i = 0; i < mp->nmods; i++) {
    if (!mp->mods[i])
      continue;
    elf_file_close(mp->mods[i]->elf);
    free(mp->mods[i]->path);
    free(mp->mods[i]);
  }
  free(mp->mods);
  free(mp->v);
  free(mp->build_ids);
  free(mp->text);
  maps_free(mp->retired);
  free(mp);
}

int maps_reload(struct maps *old, struct maps **ret_maps)
{
  struct maps *mp;
  int r = maps_load(old->pid, &mp);
  if (r)
    return r;
  if (old->text && mp->text && old->text_len == mp->text_len &&
      !memcmp(old->text, mp->text, mp->text_len)) {
    /* nothing changed: keep the old maps (no retired copy piles up) */
    maps_free(mp);
    *ret_maps = old;
    return 0;
  }
  for (size_t i = 0; i < mp->nmods; i++) {
    struct module *nm = mp->mods[i];
    for (size_t j = 0; j < old->nmods; j++) {
      struct module *om = old->mods[j];
      if (!om || om->inode != nm->inode || om->dev != nm->dev || om->map_start != nm->map_start ||
          om->map_off != nm->map_off || strcmp(om->path, nm->path))
        continue;
      for (size_t k = 0; k < mp->n; k++)
        if (mp->v[k].mod == nm)
          mp->v[k].mod = om;
      om->start = nm->start;
      om->end = nm->end;
      free(nm->path);
      free(nm);
      mp->mods[i] = om;
      old->mods[j] = NULL;
      break;
    }
  }
  mp->retired = old;
  *ret_maps = mp;
  return 0;
}

static struct module *module_for(struct maps *mp, const char *path, uint64_t dev,
                                 uint64_t inode, int deleted)
{
  for (size_t i = mp->nmods; i-- > 0;) {
    struct module *m = mp->mods[i];
    if (m->inode == inode && m->dev == dev && !strcmp(m->path, path))
      return m;
  }
  struct module **nm = realloc(mp->mods, (mp->nmods + 1) * sizeof *nm);
  if (!nm)
    return NULL;
  mp->mods = nm;
  struct module *m = calloc(1, sizeof *m);
  if (!m || !(m->path = strdup(path))) {
    free(m);
    return NULL;
  }
  const char *b = strrchr(m->path, '/');
  m->name = b ? b + 1 : m->path;
  m->dev = dev;
  m->inode = inode;
  m->deleted = deleted;
  m->map_off = UINT64_MAX;
  mp->mods[mp->nmods++] = m;
  return m;
}

int maps_parse(const char *text, pid_t pid, struct maps **ret_maps)
{
  struct maps *mp = calloc(1, sizeof *mp);
  if (!mp || !(mp->text = strdup(text))) {
    free(mp);
    return -ENOMEM;
  }
  mp->text_len = strlen(text);   /* (the text is cut into lines in place below) */
  mp->pid = pid;
  if (pid)
    snprintf(mp->root, sizeof mp->root, "/proc/%d/root", (int)pid);
  size_t cap = 0;
  for (char *line = mp->text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = 0;
    uint64_t s, e, off, ino;
    unsigned maj, min;
    char perms[5];
    int pos = 0;
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n", &s, &e,
               perms, &off, &maj, &min, &ino, &pos) >= 7 && e > s && mp->n < MAPS_MAX) {
      if (mp->n == cap) {
        cap = cap ? cap * 2 : 256;
        struct map *nv = realloc(mp->v, cap * sizeof *nv);
        if (!nv) {
          maps_free(mp);
          return -ENOMEM;
        }
        mp->v = nv;
      }
      char *path = line + pos;
      while (*path == ' ')
        path++;
      struct map *m = &mp->v[mp->n++];
      *m = (struct map){ .start = s, .end = e, .offset = off, .dev = makedev(maj, min),
                         .inode = ino };
      memcpy(m->perms, perms, 5);
      m->path = *path ? path : NULL;
      if (!strcmp(path, "[vdso]")) {
        struct module *mod = module_for(mp, path, 0, 0, 0);
        if (!mod) {
          maps_free(mp);
          return -ENOMEM;
        }
        m->mod = mod;
        mod->start = mod->map_start = s;
        mod->end = e;
        mod->map_off = 0;
      } else if (*path == '/' && ino) {
        size_t l = strlen(path);
        int deleted = l > 10 && !strcmp(path + l - 10, " (deleted)");
        if (deleted)
          path[l - 10] = 0;
        struct module *mod = module_for(mp, path, m->dev, ino, deleted);
        if (!mod) {
          maps_free(mp);
          return -ENOMEM;
        }
        m->mod = mod;
        if (!mod->start || s < mod->start)
          mod->start = s;
        if (e > mod->end)
          mod->end = e;
        if (off < mod->map_off) {
          mod->map_off = off;
          mod->map_start = s;
        }
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  *ret_maps = mp;
  return 0;
}

int maps_load(pid_t pid, struct maps **ret_maps)
{
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/maps", (int)pid);
  char *text = slurp(p, 256u << 20);
  if (!text)
    return errno == ENOENT ? -ESRCH : -(errno ? errno : EIO);
  if (!*text) {
    /* empty maps: kernel thread, zombie or an exited process */
    free(text);
    return -ESRCH;
  }
  int r = maps_parse(text, pid, ret_maps);
  free(text);
  return r;
}

const struct map *maps_find(const struct maps *mp, uint64_t addr)
{
  size_t lo = 0, hi = mp->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (mp->v[mid].end <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < mp->n && mp->v[lo].start <= addr ? &mp->v[lo] : NULL;
}

/* The same file as the mapping? Guards against a path that now names another file
 * (replaced on disk, or a different file at that path in our own namespace). */
/* Open a module's file: read-only, never blocking (a FIFO or a device put where a library
 * was must not hang us or have side effects), and only a regular file is kept. */
static int open_regular(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

static int same_file(int fd, const struct module *mod)
{
  struct stat st;
  return !fstat(fd, &st) && st.st_ino == mod->inode && st.st_dev == mod->dev;
}

/* The vDSO has no file: copy its image out of the target (it is small, one or two pages). */
static int vdso_open(struct maps *mp, struct module *mod)
{
  size_t len = (size_t)(mod->end - mod->start);
  if ((!mp->pid && !mp->mem) || len > (1u << 20))
    return -ENOENT;
  void *buf = malloc(len);
  if (!buf)
    return -ENOMEM;
  if (!mp->pid) {
    /* offline: the vDSO's bytes as the snapshot saved them */
    if (mem_read(mp->mem, mod->start, buf, len)) {
      free(buf);
      return -EFAULT;
    }
  } else {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/mem", (int)mp->pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      free(buf);
      return -errno;
    }
    ssize_t n = pread(fd, buf, len, (off_t)mod->start);
    close(fd);
    if (n != (ssize_t)len) {
      free(buf);
      return -EFAULT;
    }
  }
  int r = elf_file_open_mem(buf, len, &mod->elf);
  if (r)
    return r;
  if (elf_file_bias(mod->elf, mod->map_start, 0, &mod->bias)) {
    elf_file_close(mod->elf);
    mod->elf = NULL;
    return -VMS_E_BADELF;
  }
  return 0;
}

/* Offline: the module's file has the build-id the snapshot recorded for its path (or the
 * snapshot recorded none for it). */
static int build_id_matches(const struct maps *mp, const struct module *mod)
{
  size_t n = 0;
  const uint8_t *id = elf_file_build_id(mod->elf, &n);
  char hex[2 * 64 + 1];
  if (n > 64)
    n = 64;
  for (size_t i = 0; i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", id[i]);
  hex[2 * n] = 0;
  size_t pl = strlen(mod->path);
  for (const char *l = mp->build_ids; l && *l;) {
    const char *sp = strchr(l, ' '), *nl = strchr(l, '\n');
    if (!nl)
      nl = l + strlen(l);
    if (sp && sp < nl && (size_t)(nl - sp - 1) == pl && !strncmp(sp + 1, mod->path, pl))
      return (size_t)(sp - l) == 2 * n && !strncmp(l, hex, 2 * n);
    l = *nl ? nl + 1 : nl;
  }
  return 1;
}

/* Offline, from a snapshot that carries its files (--embed-files): the module's file and
 * its debug file as saved, never a file of this machine (a replay reads what the dump
 * read, wherever it runs). */
static int embedded_open(struct maps *mp, struct module *mod)
{
  char name[4200];
  const void *d;
  size_t len;
  snprintf(name, sizeof name, "%s%" PRIx64 ":%s", BLOB_FILE, mod->map_start, mod->path);
  if (mem_blob_get(mp->mem, name, &d, &len))
    return -ENOENT;
  void *buf = malloc(len ? len : 1);
  if (!buf)
    return -ENOMEM;
  memcpy(buf, d, len);
  int r = elf_file_open_mem(buf, len, &mod->elf);
  if (r)
    return r;
  if (elf_file_bias(mod->elf, mod->map_start, mod->map_off, &mod->bias)) {
    elf_file_close(mod->elf);
    mod->elf = NULL;
    return -VMS_E_BADELF;
  }
  snprintf(name, sizeof name, "%s%" PRIx64 ":%s", BLOB_DEBUG_FILE, mod->map_start, mod->path);
  if (!mem_blob_get(mp->mem, name, &d, &len) && (buf = malloc(len ? len : 1))) {
    memcpy(buf, d, len);
    elf_file_attach_debug_mem(mod->elf, buf, len);
  }
  return 0;
}

int maps_module_open(struct maps *mp, struct module *mod)
{
  if (mod->elf_tried)
    return mod->elf ? 0 : -VMS_E_BADELF;
  mod->elf_tried = 1;
  char p[4200];
  int fd = -1;
  if (!strcmp(mod->path, "[vdso]"))
    return vdso_open(mp, mod);
  const void *blob;
  size_t blen;
  if (!mp->pid && mp->mem && !mem_blob_get(mp->mem, BLOB_FILES, &blob, &blen))
    return embedded_open(mp, mod);
  if (mp->pid && !mod->deleted) {
    snprintf(p, sizeof p, "%s%s", mp->root, mod->path);
    fd = open_regular(p);
    if (fd >= 0 && !same_file(fd, mod)) {
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0 && mp->pid) {
    /* map_files names the mapped file itself, deleted or not (needs CAP_SYS_ADMIN on
     * kernels before 5.9 or CAP_CHECKPOINT_RESTORE after). */
    snprintf(p, sizeof p, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)mp->pid,
             mod->map_start, maps_find(mp, mod->map_start)->end);
    fd = open_regular(p);
  }
  if (fd < 0) {
    /* overlay filesystems report another st_dev than maps does: accept the path */
    snprintf(p, sizeof p, "%s%s", mp->pid ? mp->root : "", mod->path);
    fd = open_regular(p);
  }
  if (fd < 0)
    return -errno;
  int r = elf_file_open(fd, &mod->elf);
  if (r)
    return r;
  if (elf_file_bias(mod->elf, mod->map_start, mod->map_off, &mod->bias)) {
    elf_file_close(mod->elf);
    mod->elf = NULL;
    return -VMS_E_BADELF;
  }
  if (!mp->pid && mp->build_ids && !build_id_matches(mp, mod)) {
    /* another build of the file than the process had: its symbols would be wrong */
    elf_file_close(mod->elf);
    mod->elf = NULL;
    return -VMS_E_BADELF;
  }
  elf_file_find_debug(mod->elf, mp->pid ? mp->root : "", mod->path);
  return 0;
}

struct module *maps_module(struct maps *mp, uint64_t addr)
{
  const struct map *m = maps_find(mp, addr);
  if (!m || !m->mod)
    return NULL;
  maps_module_open(mp, m->mod);
  return m->mod;
}

struct module *maps_module_by_name(struct maps *mp, const char *prefix)
{
  size_t l = strlen(prefix);
  for (size_t i = 0; i < mp->nmods; i++)
    if (!strncmp(mp->mods[i]->name, prefix, l))
      return mp->mods[i];
  return NULL;
}

struct module *maps_module_with(struct maps *mp, const char *sym1, const char *sym2)
{
  for (size_t i = 0; i < mp->nmods; i++) {
    struct module *m = mp->mods[i];
    uint64_t a;
    if (!m || maps_module_open(mp, m) || !m->elf)
      continue;
    if (!elf_file_lookup(m->elf, sym1, &a, NULL) && !elf_file_lookup(m->elf, sym2, &a, NULL))
      return m;
  }
  return NULL;
}
