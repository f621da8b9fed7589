/* A target replayed from a snapshot file (dump --save-snapshot, then --snapshot): the
 * process, its threads with their registers and its maps from the file's blobs, its memory
 * from the regions the original walk read. Nothing runs: stopping a thread only hands out
 * the registers it had; nothing is ever attached. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"
#include "target_ops.h"

/* The blobs a snapshot carries besides memory (native byte order, x86_64). */
#define BLOB_PROC "vmstack.process"
#define BLOB_THREADS "vmstack.threads"
#define BLOB_MAPS "vmstack.maps"
#define BLOB_BUILD_IDS "vmstack.build_ids"
#define SNAP_THREADS_MAX 65536

struct snap_proc {
  int32_t pid, nspid;
  char comm[17];
  char state;
  char exe[4096];
};

struct snap_thread {
  int32_t tid, nstid;
  char name[17];
  char state;
  int32_t err;             /* why it could not be stopped (not walked: its regs are void) */
  struct user_regs_struct regs;
};

/* The skeletons of the module files (and debug files) the dump opened, and their list. */
static int save_files(struct target *t)
{
  size_t len = 0, cap = 4096;
  char *list = malloc(cap), name[4200];
  int r = list ? 0 : -ENOMEM;
  for (size_t i = 0; !r && i < t->maps->nmods; i++) {
    const struct module *m = t->maps->mods[i];
    if (!m || !m->elf || m->path[0] != '/')
      continue;
    for (int dbg = 0; !r && dbg < 2; dbg++) {
      void *buf;
      size_t n;
      if (elf_file_skeleton(m->elf, dbg, &buf, &n))
        continue;
      snprintf(name, sizeof name, "%s%" PRIx64 ":%s", dbg ? BLOB_DEBUG_FILE : BLOB_FILE,
               m->map_start, m->path);
      /* (a file too large for a snapshot section is left out: its frames replay unnamed) */
      r = n <= SNAP_SECTION_MAX && strlen(name) <= SNAP_NAME_MAX ? mem_blob_add(t->mem, name, buf, n) : 0;
      free(buf);
    }
    size_t need = strlen(m->path) + 2;
    if (!r && len + need > cap) {
      char *nl = realloc(list, cap = 2 * (len + need));
      if (!nl)
        r = -ENOMEM;
      else
        list = nl;
    }
    if (!r)
      len += (size_t)snprintf(list + len, cap - len, "%s\n", m->path);
  }
  if (!r)
    r = mem_blob_add(t->mem, BLOB_FILES, list, len);
  free(list);
  return r;
}

int target_snapshot_save(struct target *t, const char *path, int embed_files)
{
  struct snap_proc sp;
  memset(&sp, 0, sizeof sp);   /* (padding too: the file holds no stray bytes of ours) */
  sp.pid = t->pid;
  sp.nspid = t->nspid;
  sp.state = t->state;
  memcpy(sp.comm, t->comm, sizeof sp.comm);
  memcpy(sp.exe, t->exe, sizeof sp.exe);
  struct snap_thread *st = calloc(t->nthreads ? t->nthreads : 1, sizeof *st);
  char *maps = malloc(t->maps->text_len + 1);
  int r = -ENOMEM;
  if (!st || !maps)
    goto out;
  for (size_t i = 0; i < t->nthreads; i++) {
    const struct thread *th = &t->threads[i];
    st[i].tid = th->tid;
    st[i].nstid = th->nstid;
    st[i].state = th->state;
    /* a thread that was never stopped (gone, stuck, or the dump interrupted first) has
     * no registers: replayed as it was met */
    st[i].err = th->err ? th->err : th->regs.rsp ? 0 : -ESRCH;
    st[i].regs = th->regs;
    memcpy(st[i].name, th->name, sizeof st[i].name);
  }
  /* the vDSO's bytes (read live from the process, never from a file) */
  for (size_t i = 0; i < t->maps->n; i++) {
    const struct map *m = &t->maps->v[i];
    if (m->path && !strcmp(m->path, "[vdso]") && m->end - m->start <= (1u << 20)) {
      void *b = malloc(m->end - m->start);
      if (b)
        mem_read(t->mem, m->start, b, m->end - m->start);
      free(b);
    }
  }
  /* the maps text as read (its lines were cut in place: NULs back to newlines) */
  memcpy(maps, t->maps->text, t->maps->text_len);
  for (size_t i = 0; i < t->maps->text_len; i++)
    if (!maps[i])
      maps[i] = '\n';
  /* the build-id of every module file read: a replay uses only files that still match */
  size_t idlen = 0, idcap = 4096;
  char *ids = malloc(idcap);
  if (!ids) {
    r = -ENOMEM;
    goto out;
  }
  ids[0] = 0;
  for (size_t i = 0; i < t->maps->nmods; i++) {
    const struct module *m = t->maps->mods[i];
    size_t n = 0;
    const uint8_t *id = m && m->elf && m->path[0] == '/' ? elf_file_build_id(m->elf, &n) : NULL;
    if (!id || !n || n > 64)
      continue;
    size_t need = 2 * n + strlen(m->path) + 3;
    if (idlen + need > idcap) {
      char *ni = realloc(ids, idcap = 2 * (idlen + need));
      if (!ni) {
        free(ids);
        r = -ENOMEM;
        goto out;
      }
      ids = ni;
    }
    for (size_t k = 0; k < n; k++)
      idlen += (size_t)snprintf(ids + idlen, 3, "%02x", id[k]);
    idlen += (size_t)snprintf(ids + idlen, idcap - idlen, " %s\n", m->path);
  }
  r = mem_blob_add(t->mem, BLOB_BUILD_IDS, ids, idlen);
  free(ids);
  if (r || (embed_files && (r = save_files(t))))
    goto out;
  if ((r = mem_blob_add(t->mem, BLOB_PROC, &sp, sizeof sp)) ||
      (r = mem_blob_add(t->mem, BLOB_THREADS, st, t->nthreads * sizeof *st)) ||
      (r = mem_blob_add(t->mem, BLOB_MAPS, maps, t->maps->text_len)))
    goto out;
  r = mem_snapshot_write(t->mem, path);
out:
  free(st);
  free(maps);
  return r;
}

static int snap_refresh_threads(struct target *t)
{
  (void)t;
  return 0;
}

static void snap_prune_threads(struct target *t)
{
  (void)t;
}

static int snap_thread_state(struct target *t, struct thread *th, char *ret_state)
{
  (void)t;
  *ret_state = th->state;
  return 0;
}

static int snap_alive(const struct target *t)
{
  (void)t;
  return 1;
}

static int snap_reload_maps(struct target *t)
{
  (void)t;
  return 0;
}

static int snap_attach(struct target *t)
{
  (void)t;
  return 0;
}

static int snap_stop(struct target *t, struct thread *th)
{
  (void)t;
  if (th->err)
    return th->err;   /* it could not be stopped when the snapshot was taken */
  th->stopped = 1;    /* the registers are the ones saved */
  return 0;
}

static int snap_resume(struct target *t, struct thread *th)
{
  (void)t;
  th->stopped = 0;
  return 0;
}

static void snap_release(struct target *t, struct thread *th)
{
  (void)t;
  th->stopped = 0;
}

static void snap_detach(struct target *t)
{
  for (size_t i = 0; i < t->nthreads; i++)
    t->threads[i].stopped = 0;
}

static void snap_emergency(struct target *t)
{
  (void)t;   /* nothing is held */
}

static void snap_close(struct target *t)
{
  mem_close(t->mem);
  maps_free(t->maps);
  free(t->threads);
  free(t);
}

static const struct target_ops target_snapshot_ops = {
  .name = "snapshot",
  .refresh_threads = snap_refresh_threads,
  .prune_threads = snap_prune_threads,
  .thread_state = snap_thread_state,
  .alive = snap_alive,
  .reload_maps = snap_reload_maps,
  .attach = snap_attach,
  .stop = snap_stop,
  .resume = snap_resume,
  .release = snap_release,
  .detach = snap_detach,
  .emergency = snap_emergency,
  .close = snap_close,
};

int target_snapshot_open(const char *path, struct target **ret_t)
{
  struct target *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  t->ops = &target_snapshot_ops;
  int r = mem_open_snapshot(path, &t->mem);
  if (r)
    goto fail;
  const void *d;
  size_t len;
  r = -VMS_E_BADSNAP;
  if (mem_blob_get(t->mem, BLOB_PROC, &d, &len) || len != sizeof(struct snap_proc))
    goto fail;
  const struct snap_proc *sp = d;
  t->pid = sp->pid;
  t->nspid = sp->nspid;
  t->state = sp->state;
  memcpy(t->comm, sp->comm, sizeof t->comm);
  memcpy(t->exe, sp->exe, sizeof t->exe);
  t->comm[sizeof t->comm - 1] = 0;
  t->exe[sizeof t->exe - 1] = 0;
  if (mem_blob_get(t->mem, BLOB_THREADS, &d, &len) || len % sizeof(struct snap_thread) ||
      len / sizeof(struct snap_thread) > SNAP_THREADS_MAX)
    goto fail;
  size_t n = len / sizeof(struct snap_thread);
  t->threads = calloc(n ? n : 1, sizeof *t->threads);
  if (!t->threads) {
    r = -ENOMEM;
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    const struct snap_thread *st = (const struct snap_thread *)d + i;
    struct thread *th = &t->threads[i];
    th->tid = st->tid;
    th->nstid = st->nstid;
    memcpy(th->name, st->name, sizeof th->name);
    th->name[sizeof th->name - 1] = 0;
    th->state = st->state;
    th->err = st->err;
    th->regs = st->regs;
  }
  t->nthreads = t->threads_cap = n;
  if (mem_blob_get(t->mem, BLOB_MAPS, &d, &len))
    goto fail;
  char *text = malloc(len + 1);
  if (!text) {
    r = -ENOMEM;
    goto fail;
  }
  memcpy(text, d, len);
  text[len] = 0;
  r = maps_parse(text, 0, &t->maps);
  free(text);
  if (r)
    goto fail;
  t->maps->mem = t->mem;
  if (!mem_blob_get(t->mem, BLOB_BUILD_IDS, &d, &len) && (t->maps->build_ids = malloc(len + 1))) {
    memcpy(t->maps->build_ids, d, len);
    t->maps->build_ids[len] = 0;
  }
  target_guard_add(t);
  *ret_t = t;
  return 0;
fail:
  mem_close(t->mem);
  free(t->threads);
  free(t);
  return r;
}
