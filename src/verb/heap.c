/* vmstack heap: every thread stopped, the writable memory the VM's objects live in copied
 * with large reads, every thread let go, then the runtime enumerates its heap from the copy
 * and the core analyses the graph. When the copy would not fit, the enumeration runs on
 * the live process while it is held stopped instead. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/heaprun.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/util.h"

/* A value from /proc/meminfo or /proc/PID/status ("MemAvailable:", "VmRSS:"), in bytes. */
static uint64_t kb_field(const char *path, const char *key)
{
  FILE *f = fopen(path, "re");
  char line[256];
  uint64_t v = 0;
  size_t kl = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl)) {
      v = strtoull(line + kl, NULL, 10) * 1024;
      break;
    }
  if (f)
    fclose(f);
  return v;
}

/* Resident bytes of each mapping (/proc/PID/smaps "Rss:"), by start address; -1: unknown. */
struct rss {
  uint64_t start, rss;
};

static size_t read_rss(pid_t pid, struct rss **ret)
{
  char p[64], line[512];
  snprintf(p, sizeof p, "/proc/%d/smaps", (int)pid);
  FILE *f = fopen(p, "re");
  struct rss *v = NULL;
  size_t n = 0, cap = 0;
  uint64_t start = 0;
  while (f && fgets(line, sizeof line, f)) {
    unsigned long long a, b;
    unsigned long long kb;
    if (sscanf(line, "%llx-%llx ", &a, &b) == 2 && strchr(line, ' ') > line + 8) {
      start = a;
    } else if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
      if (n == cap) {
        struct rss *nv = realloc(v, (cap = cap ? 2 * cap : 256) * sizeof *nv);
        if (!nv)
          break;
        v = nv;
      }
      v[n++] = (struct rss){ start, kb * 1024 };
    }
  }
  if (f)
    fclose(f);
  *ret = v;
  return n;
}

/* The writable private memory a VM's objects can live in: [heap] and anonymous or
 * file-backed writable mappings (a static VM's globals), not thread stacks (the range of
 * any stopped thread's stack pointer), not the kernel's special pages. */
static int heap_ranges(struct target *t, struct mem_range **ret, size_t *ret_n, uint64_t *total)
{
  struct mem_range *v = malloc((t->maps->n ? t->maps->n : 1) * sizeof *v);
  size_t n = 0;
  *total = 0;
  if (!v)
    return -ENOMEM;
  /* mappings with nothing resident (a reservation never touched) hold no objects */
  struct rss *rss = NULL;
  size_t nrss = read_rss(t->pid, &rss);
  for (size_t i = 0; i < t->maps->n; i++) {
    const struct map *m = &t->maps->v[i];
    if (m->perms[0] != 'r' || m->perms[1] != 'w' || m->perms[3] == 's')
      continue;
    if (m->path && m->path[0] == '[' && strcmp(m->path, "[heap]"))
      continue;   /* [stack], [vvar], [vsyscall] */
    int stack = 0;
    for (size_t k = 0; k < t->nthreads && !stack; k++)
      stack = t->threads[k].stopped && t->threads[k].regs.rsp >= m->start &&
              t->threads[k].regs.rsp < m->end;
    if (stack)
      continue;
    int empty = 0;
    for (size_t k = 0; k < nrss && !empty; k++)
      empty = rss[k].start == m->start && !rss[k].rss;
    if (empty)
      continue;
    v[n++] = (struct mem_range){ m->start, m->end - m->start };
    *total += m->end - m->start;
  }
  free(rss);
  *ret = v;
  *ret_n = n;
  return 0;
}

/* Stop every thread (threads started meanwhile too). */
static int stop_all(struct target *t)
{
  int r = target_attach(t);
  if (r)
    return r;
  for (size_t done = 0; done < t->nthreads || target_refresh_threads(t) > 0;) {
    if (done == t->nthreads)
      continue;
    struct thread *th = &t->threads[done++];
    if (th->state == 'Z' || th->state == 'X')
      continue;
    int e = target_stop(t, th);
    if (e == -VMS_E_GONE)
      return e;
    if (done == 1 && (e == -EPERM || e == -EACCES || e == -VMS_E_TRACED))
      return e;
    if (target_interrupted())
      return -EINTR;
  }
  return 0;
}

/* The very key of a collapsed step, read from the process as it is now. */
static int label_cb(void *arg, uint64_t from, uint64_t to, char *buf, size_t cap)
{
  struct heap_run *run = arg;
  if (!run->vm || !run->vm->rt->heap_label)
    return -ENOENT;
  return run->vm->rt->heap_label(run->vm->vm, run->t, from, to, buf, cap);
}

int heap_run(struct target *t, const struct heap_run_opts *o, struct heap_run *run)
{
  memset(run, 0, sizeof *run);
  struct dump_opts dopts = { .only_runtime = o->only_runtime };
  struct dump_result *rp = &run->res, res;
  int r = dump_probe(t, &dopts, rp);
  res = *rp;
  const struct dump_vm *vm = NULL;
  for (size_t i = 0; i < res.nvms && !vm; i++)
    if (res.vms[i].rt->heap)
      vm = &res.vms[i];
  if (!vm) {
    if (r)
      snprintf(run->describe, sizeof run->describe, "%s", res.runtime_err);
    else if (res.nvms)
      snprintf(run->describe, sizeof run->describe, "%s: heap snapshots are not supported yet",
               res.vms[0].rt->describe(res.vms[0].vm));
    dump_result_free(rp);
    return r ? r : res.nvms ? -VMS_E_UNSUPPORTED : -VMS_E_NORUNTIME;
  }
  run->runtime = vm->rt->name;
  snprintf(run->describe, sizeof run->describe, "%s", vm->rt->describe(vm->vm));
  run->h = heap_new(&o->heap);
  if (!run->h) {
    dump_result_free(rp);
    return -ENOMEM;
  }
  run->max_copy = o->max_copy ? o->max_copy : kb_field("/proc/meminfo", "MemAvailable:") / 2;
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/status", (int)t->pid);
  run->rss = kb_field(p, "VmRSS:");

  /* the copy's buffers first, while the process runs: their page faults are ours, not
   * the pause's (the ranges are read again once it is stopped) */
  struct mem_range *rg = NULL;
  size_t nrg = 0;
  uint64_t total = 0;
  if (!heap_ranges(t, &rg, &nrg, &total) && total <= run->max_copy)
    mem_copy_prepare(t->mem, rg, nrg);
  free(rg);
  rg = NULL;
  double t0 = clock_s();
  r = stop_all(t);
  if (!r)
    target_reload_maps(t);   /* the maps as they are now that it is stopped */
  if (!r)
    r = heap_ranges(t, &rg, &nrg, &total);
  run->copy_bytes = total;
  run->threads = t->nthreads;
  if (!r && total <= run->max_copy) {
    double c0 = clock_s();
    uint64_t got = 0;
    r = mem_copy_ranges(t->mem, rg, nrg, &got);
    run->copy_ms = (clock_s() - c0) * 1e3;
    if (!r) {
      run->copied = 1;
      run->copy_bytes = got;
    }
  }
  free(rg);
  if (run->copied) {
    target_detach(t);   /* the threads run again; the analysis reads the copy */
    run->pause_ms = (clock_s() - t0) * 1e3;
  }
  if (!r && target_interrupted())
    r = -EINTR;
  if (!r) {
    double e0 = clock_s();
    mem_invalidate(t->mem);
    run->enum_err = vm->rt->heap(vm->vm, t, run->h);
    run->enum_ms = (clock_s() - e0) * 1e3;
    mem_copy_drop(t->mem);   /* (its memory back before the graph is analysed) */
  }
  if (!run->copied) {
    target_detach(t);
    run->pause_ms = (clock_s() - t0) * 1e3;
  }
  if (!r && target_interrupted())
    r = -EINTR;   /* (every thread is let go by now) */
  if (!r && !run->copied && !target_alive(t))
    r = -VMS_E_GONE;   /* walked live: what was read may be torn */
  if (r)
    return r;
  /* (the runtime stays for the report: the keys of its paths) */
  run->vm = &run->res.vms[vm - res.vms];
  run->t = t;
  mem_invalidate(t->mem);
  heap_set_labeler(run->h, label_cb, run);
  double a0 = clock_s();
  r = heap_analyse(run->h);
  run->analyse_ms = (clock_s() - a0) * 1e3;
  return !r && target_interrupted() ? -EINTR : r;
}

void heap_run_free(struct heap_run *run)
{
  heap_free(run->h);
  run->h = NULL;
  dump_result_free(&run->res);
  run->vm = NULL;
}
