/* The processes a recording samples: the target, and with -s the children it starts
 * (also after an exec); stray events of their threads; probing them for runtimes. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/profile.h"
#include "vmstack/runtime.h"
#include "vmstack/symbolize.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"
#include "record_impl.h"

struct thread *rec_find_thread(struct rec *rc, pid_t tid, struct rproc **ret_pr)
{
  for (size_t k = 0; k < rc->n; k++) {
    struct target *t = rc->procs[k].t;
    if (rc->procs[k].gone)
      continue;
    for (size_t i = 0; i < t->nthreads; i++)
      if (t->threads[i].tid == tid) {
        *ret_pr = &rc->procs[k];
        return &t->threads[i];
      }
  }
  return NULL;
}

/* Stops we did not ask for: a signal for the target (passed on at once), job control
 * (kept: LISTEN), a thread or a whole process exiting. */
void rec_reap_hook(void *arg, pid_t tid, int status)
{
  rec_reap_one(arg, tid, status);
}

void rec_reap(struct rec *rc)
{
  target_reap(rec_reap_hook, rc);
}

void rec_reap_one(struct rec *rc, pid_t tid, int status)
{
  struct rproc *pr = NULL;
  struct thread *th = rec_find_thread(rc, tid, &pr);
  if ((WIFEXITED(status) || WIFSIGNALED(status)) && pr && tid == pr->t->pid)
    pr->gone = 1;
  target_event(pr ? pr->t : NULL, th, tid, status);
}

void rec_proc_probe(struct rec *rc, struct rproc *pr)
{
  pr->perr = dump_probe(pr->t, &rc->dopts, &pr->res);
  for (size_t i = 0; i < pr->res.nvms; i++)
    if (pr->res.vms[i].rt->install)
      pr->res.vms[i].rt->install(pr->res.vms[i].vm, pr->u);
  pr->probed = pr->t->maps;
}

void rec_proc_release(struct rproc *pr)
{
  target_detach(pr->t);
  for (size_t i = 0; i < pr->res.nvms; i++)
    pr->res.vms[i].rt->free(pr->res.vms[i].vm);
  pr->res.nvms = 0;
  unwinder_free(pr->u);
  pr->u = NULL;
}

/* Start sampling process t (owned by the profile unless it is the first). */
int rec_proc_add(struct rec *rc, struct target *t)
{
  if (rc->n == PROC_MAX) {
    if (!rc->warned_max++)
      fprintf(stderr, "vmstack: warning: following at most %d processes\n", PROC_MAX);
    return -ENOSPC;
  }
  struct rproc *pr = &rc->procs[rc->n];
  memset(pr, 0, sizeof *pr);
  pr->t = t;
  pr->idx = (uint32_t)rc->n;
  pr->added = clock_s();
  int r = unwinder_new(&pr->u);
  if (r)
    return r;
  rec_proc_probe(rc, pr);
  rc->p->maps[rc->n] = t->maps;
  if (rc->n)
    rc->p->owned[rc->n] = t;
  rc->p->nprocs = ++rc->n;
  t->trace_exec = 1;
  /* the first process must be attached (a child found later may have gone meanwhile) */
  if ((r = target_attach(t)) && pr->idx == 0)
    return r;
  /* an exec between reading the process and seizing it is not reported: look */
  char path[64], exe[sizeof t->exe];
  snprintf(path, sizeof path, "/proc/%d/exe", (int)t->pid);
  ssize_t n = readlink(path, exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    if (strcmp(exe, t->exe))
      t->exec_seen = 1;
  }
  return 0;
}

void rec_retire(struct rec *rc, struct rproc *pr)
{
  struct profile *p = rc->p;
  int exec = pr->t->exec_seen && !pr->gone;
  pid_t pid = pr->t->pid;
  rec_proc_release(pr);
  pr->gone = 1;
  pr->retired = 1;
  p->maps[pr->idx] = pr->t->maps;   /* the latest (they are replaced when re-read) */
  profile_name_natives(p, pr->idx);
  if (p->owned[pr->idx]) {
    target_close(p->owned[pr->idx]);
    p->owned[pr->idx] = NULL;
  }
  p->maps[pr->idx] = NULL;
  if (exec && (rc->o->follow || pr->idx == 0 || rc->procs[0].retired))
    rec_reopen(rc, pid);
}

/* Sample the program a process exec'd. Right at the exec its maps can be empty for a
 * moment: then it is tried again at the next refreshes (reopen_pending). */
void rec_reopen(struct rec *rc, pid_t pid)
{
  struct target *nt;
  if (!target_open(pid, &nt)) {
    if (rec_proc_add(rc, nt))
      target_close(nt);
    return;
  }
  if (rc->nreopen < sizeof rc->reopen / sizeof rc->reopen[0]) {
    rc->reopen[rc->nreopen] = pid;
    rc->reopen_since[rc->nreopen++] = clock_s();
  }
}

void rec_reopen_pending(struct rec *rc)
{
  size_t n = rc->nreopen;
  double since[16];
  pid_t pids[16];
  memcpy(pids, rc->reopen, n * sizeof *pids);
  memcpy(since, rc->reopen_since, n * sizeof *since);
  rc->nreopen = 0;
  for (size_t i = 0; i < n; i++) {
    struct target *nt;
    if (rec_known(rc, pids[i]))
      continue;
    if (!target_open(pids[i], &nt)) {
      if (rec_proc_add(rc, nt))
        target_close(nt);
    } else if (clock_s() - since[i] < 2.0 && rc->nreopen < 16) {
      rc->reopen[rc->nreopen] = pids[i];
      rc->reopen_since[rc->nreopen++] = since[i];
    }
  }
}

int rec_known(const struct rec *rc, pid_t pid)
{
  for (size_t k = 0; k < rc->n; k++)
    if (!rc->procs[k].gone && rc->procs[k].t->pid == pid)
      return 1;
  for (size_t k = 0; k < rc->nfailed; k++)
    if (rc->failed[k] == pid)
      return clock_s() - rc->failed_at[k] < 1.0;
  return 0;
}

/* Children of every thread of pr, from the kernel's lists (CONFIG_PROC_CHILDREN). */
void rec_follow_children(struct rec *rc, struct rproc *pr)
{
  struct target *t = pr->t;
  for (size_t i = 0; i < t->nthreads; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)t->pid,
             (int)t->threads[i].tid);
    FILE *f = fopen(path, "re");
    if (!f) {
      /* gone, or a kernel without the lists: then our own is missing too */
      char self[64];
      snprintf(self, sizeof self, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
      if (!rc->warned_children && access(self, F_OK)) {
        rc->warned_children = 1;
        fprintf(stderr, "vmstack: warning: -s cannot follow children: this kernel has no "
                "/proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)\n");
      }
      continue;
    }
    /* whole tokens only: read up to EOF, a number at the very end of a full buffer is
     * read again with the rest */
    char buf[4096];
    size_t have = 0;
    for (;;) {
      size_t len = fread(buf + have, 1, sizeof buf - 1 - have, f);
      int eof = len < sizeof buf - 1 - have;
      have += len;
      buf[have] = 0;
      char *s = buf, *e;
      for (;;) {
        while (*s == ' ' || *s == '\n')
          s++;
        long pid = strtol(s, &e, 10);
        if (e == s || (!*e && !eof))
          break;   /* nothing more, or a number that may go on in the next read */
        s = e;
        if (pid <= 0 || rec_known(rc, (pid_t)pid))
          continue;
        struct target *ct;
        if (target_open((pid_t)pid, &ct)) {
          size_t slot = 0;
          while (slot < rc->nfailed && rc->failed[slot] != (pid_t)pid)
            slot++;
          if (slot == rc->nfailed && rc->nfailed < sizeof rc->failed / sizeof rc->failed[0])
            rc->nfailed++;
          if (slot < rc->nfailed) {
            rc->failed[slot] = (pid_t)pid;
            rc->failed_at[slot] = clock_s();
          }
          continue;
        }
        if (rec_proc_add(rc, ct))
          target_close(ct);
      }
      if (eof)
        break;
      have = strlen(s);
      memmove(buf, s, have + 1);
      if (have >= sizeof buf - 2)
        break;   /* no number is that long */
    }
    fclose(f);
  }
}

/* Every 250 ms: threads started since are seized, exited ones forgotten; the maps are read
 * again, and a program that had no VM yet is probed again when they changed (a libluajit
 * mapped by the dynamic loader after exec); children are followed. */
void rec_refresh(struct rec *rc)
{
  rec_reap(rc);
  rec_reopen_pending(rc);
  size_t n = rc->n;   /* not the ones added meanwhile */
  for (size_t k = 0; k < n; k++) {
    struct rproc *pr = &rc->procs[k];
    if (pr->gone)
      continue;
    /* exits are seen by waitpid, except of a process that went before we seized it */
    if (!target_alive(pr->t)) {
      pr->gone = 1;
      continue;
    }
    target_prune_threads(pr->t);
    target_attach(pr->t);
    if (pr->t->exec_seen)
      continue;   /* its maps are the new program's: rec_retire() comes first */
    /* libraries mapped since (after an exec the dynamic loader maps them, a VM may come
     * with them): read the maps again, while there is no VM or in the first seconds of
     * an entry; later, sampling reads them again when it meets an unknown address */
    struct maps *before = pr->t->maps;
    if ((!pr->res.nvms || clock_s() - pr->added < 2.0) && !target_reload_maps(pr->t) &&
        pr->t->maps != before)
      unwinder_flush(pr->u);
    /* maps that changed since the last probe (here, or while sampling): look again (a
     * change of any mapping counts: a library may have been mapped in parts) */
    if (!pr->res.nvms && !pr->perr && pr->t->maps != pr->probed)
      rec_proc_probe(rc, pr);
    if (rc->o->follow)
      rec_follow_children(rc, pr);
  }
}
