/* The live-process target: /proc inspection, ptrace seize/interrupt/resume/detach, and the
 * events of traced threads. The only file that calls ptrace. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"
#include "target_ops.h"

static const struct target_ops target_ptrace_ops;
static int pt_resume(struct target *t, struct thread *th);

#define PF_KTHREAD 0x00200000u
#define THREADS_MAX 65536
#define ATTACH_PASSES 64

/* -- /proc ---------------------------------------------------------------- */

static int read_small(const char *path, char *buf, size_t cap)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n;
  do
    n = read(fd, buf, cap - 1);
  while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n < 0)
    return -e;
  buf[n] = 0;
  return (int)n;
}

/* Parse "pid (comm) S ppid ... flags" robustly: comm may hold spaces and parentheses. */
static int parse_stat(const char *buf, char *ret_state, char *ret_name, size_t namesz,
                      unsigned long *ret_flags)
{
  const char *l = strchr(buf, '('), *r = strrchr(buf, ')');
  if (!l || !r || r < l || r[1] != ' ' || !r[2])
    return -EINVAL;
  if (ret_name) {
    size_t n = (size_t)(r - l - 1);
    if (n >= namesz)
      n = namesz - 1;
    memcpy(ret_name, l + 1, n);
    ret_name[n] = 0;
  }
  *ret_state = r[2];
  if (ret_flags) {
    /* fields after state: ppid pgrp session tty_nr tpgid flags */
    int ppid, pgrp, sess, tty, tpgid;
    if (sscanf(r + 4, "%d %d %d %d %d %lu", &ppid, &pgrp, &sess, &tty, &tpgid, ret_flags) != 6)
      return -EINVAL;
  }
  return 0;
}

int target_thread_stat(pid_t pid, pid_t tid, char *ret_state, char *ret_name, size_t namesz)
{
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
  int r = read_small(p, buf, sizeof buf);
  if (r < 0)
    return r == -ENOENT ? -ESRCH : r;
  return parse_stat(buf, ret_state, ret_name, namesz, NULL);
}

/* Value of a "Key:\t..." line of a status file. */
static const char *status_field(const char *buf, const char *key)
{
  size_t kl = strlen(key);
  for (const char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (!strncmp(l, key, kl) && l[kl] == ':')
      return l + kl + 1;
  return NULL;
}

/* Last number of an NSpid line: the id in the innermost namespace. */
static pid_t last_nspid(const char *v)
{
  pid_t last = 0;
  while (v && *v && *v != '\n') {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v)
      break;
    last = (pid_t)x;
    v = end;
  }
  return last;
}

static pid_t thread_nstid(pid_t pid, pid_t tid)
{
  char p[64], buf[4096];
  snprintf(p, sizeof p, "/proc/%d/task/%d/status", (int)pid, (int)tid);
  if (read_small(p, buf, sizeof buf) < 0)
    return 0;
  return last_nspid(status_field(buf, "NSpid"));
}

/* -- Threads -------------------------------------------------------------- */

static int thread_add(struct target *t, pid_t tid)
{
  for (size_t i = 0; i < t->nthreads; i++)
    if (t->threads[i].tid == tid)
      return 0;
  if (t->nthreads >= THREADS_MAX)
    return -E2BIG;
  if (t->nthreads == t->threads_cap) {
    /* a new array in place before the old one goes: the exit guard may read the table
     * from a signal handler at any moment (realloc would free it first) */
    size_t nc = t->threads_cap ? t->threads_cap * 2 : 16;
    struct thread *nt = malloc(nc * sizeof *nt), *old = t->threads;
    if (!nt)
      return -ENOMEM;
    if (t->nthreads)
      memcpy(nt, old, t->nthreads * sizeof *nt);
    t->threads = nt;
    t->threads_cap = nc;
    free(old);
  }
  struct thread *th = &t->threads[t->nthreads];
  memset(th, 0, sizeof *th);
  th->tid = tid;
  if (target_thread_stat(t->pid, tid, &th->state, th->name, sizeof th->name))
    th->state = 'X';
  th->nstid = thread_nstid(t->pid, tid);
  t->nthreads++;
  return 1;
}

/* Stat files kept open (read again with pread per sample, the cheaper way) for at most
 * this many threads of all targets, and an eighth of the open-file limit; those of further
 * threads are opened per read, so a target with thousands of threads never runs vmstack
 * out of descriptors. */
#define STATFD_KEEP 256
static size_t statfds_kept;

static size_t statfd_keep(void)
{
  static size_t keep;
  struct rlimit rl;
  if (!keep)
    keep = !getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur / 8 < STATFD_KEEP
               ? (size_t)rl.rlim_cur / 8 + 1 : STATFD_KEEP;
  return keep;
}

static void statfd_close(struct thread *th)
{
  if (th->pt.statfd > 0) {
    close(th->pt.statfd - 1);
    statfds_kept--;
  }
  th->pt.statfd = 0;
}

static int pt_thread_state(struct target *t, struct thread *th, char *ret_state)
{
  char buf[1024];
  int fd = th->pt.statfd - 1;
  if (fd < 0) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/task/%d/stat", (int)t->pid, (int)th->tid);
    fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return errno == ENOENT ? -ESRCH : -errno;
    if (statfds_kept < statfd_keep()) {
      th->pt.statfd = fd + 1;
      statfds_kept++;
    }
  }
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  int e = errno;
  if (fd != th->pt.statfd - 1)
    close(fd);
  if (n < 0 && e != ESRCH && e != ENOENT)
    return -e;
  if (n <= 0)
    return -ESRCH;   /* the thread is gone: its stat file reads as nothing */
  buf[n] = 0;
  return parse_stat(buf, ret_state, NULL, 0, NULL);
}

static void pt_prune_threads(struct target *t)
{
  size_t w = 0;
  for (size_t i = 0; i < t->nthreads; i++) {
    struct thread *th = &t->threads[i];
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/task/%d", (int)t->pid, (int)th->tid);
    if (th->tid != t->pid && !th->stopped && (!th->attached || th->err == -ESRCH) &&
        access(p, F_OK)) {
      statfd_close(th);
      continue;
    }
    t->threads[w++] = *th;
  }
  t->nthreads = w;
}

static int pt_refresh_threads(struct target *t)
{
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/task", (int)t->pid);
  DIR *d = opendir(p);
  if (!d)
    return errno == ENOENT ? -VMS_E_GONE : -errno;
  int added = 0, r = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end;
    long tid = strtol(de->d_name, &end, 10);
    if (*end || tid <= 0)
      continue;
    r = thread_add(t, (pid_t)tid);
    if (r < 0)
      break;
    added += r;
  }
  closedir(d);
  return r < 0 ? r : added;
}

/* A zombie leader with live threads (main called pthread_exit) is a running process. */
static int only_leader_left(pid_t pid)
{
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/task", (int)pid);
  DIR *d = opendir(p);
  int n = 0;
  if (!d)
    return 1;
  struct dirent *de;
  while ((de = readdir(d)) && n < 2)
    n += de->d_name[0] != '.';
  closedir(d);
  return n < 2;
}

/* -- Opening -------------------------------------------------------------- */

int target_open(pid_t pid, struct target **ret_t)
{
  char p[64], buf[8192];
  if (pid <= 0)
    return -VMS_E_NOPROC;
  snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
  int r = read_small(p, buf, sizeof buf);
  if (r < 0)
    return r == -ENOENT ? -VMS_E_NOPROC : r;
  const char *tg = status_field(buf, "Tgid");
  pid_t tgid = tg ? (pid_t)atoi(tg) : pid;
  if (tgid > 0 && tgid != pid) {
    /* a thread id was given: take its process */
    pid = tgid;
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    if ((r = read_small(p, buf, sizeof buf)) < 0)
      return r == -ENOENT ? -VMS_E_NOPROC : r;
  }
  char sbuf[1024], state;
  unsigned long flags;
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  if ((r = read_small(p, sbuf, sizeof sbuf)) < 0)
    return r == -ENOENT ? -VMS_E_NOPROC : r;
  struct target *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  t->pid = pid;
  t->ops = &target_ptrace_ops;
  t->stop_timeout_ms = 1000;
  if (parse_stat(sbuf, &state, t->comm, sizeof t->comm, &flags)) {
    r = -VMS_E_BADDATA;
    goto fail;
  }
  t->state = state;
  r = -VMS_E_KTHREAD;
  if (flags & PF_KTHREAD)
    goto fail;
  r = -VMS_E_ZOMBIE;
  if ((state == 'Z' || state == 'X') && only_leader_left(pid))
    goto fail;
  const char *tr = status_field(buf, "TracerPid");
  pid_t tracer = tr ? (pid_t)atoi(tr) : 0;
  r = -VMS_E_TRACED;
  if (tracer && tracer != getpid())
    goto fail;
  t->nspid = last_nspid(status_field(buf, "NSpid"));
  if (!t->nspid)
    t->nspid = pid;
  snprintf(p, sizeof p, "/proc/%d/exe", (int)pid);
  ssize_t n = readlink(p, t->exe, sizeof t->exe - 1);
  t->exe[n > 0 ? n : 0] = 0;
  if ((r = maps_load(pid, &t->maps)) < 0) {
    if (r == -ESRCH)
      r = -VMS_E_NOPROC;
    goto fail;
  }
  if ((r = mem_open_live(pid, &t->mem)) < 0)
    goto fail;
  if ((r = pt_refresh_threads(t)) < 0)
    goto fail;
  target_guard_add(t);
  *ret_t = t;
  return 0;
fail:
  target_close(t);
  return r;
}

static int pt_alive(const struct target *t)
{
  char state;
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)t->pid);
  int n = read_small(p, buf, sizeof buf);
  if (n == -EMFILE || n == -ENFILE || n == -ENOMEM)
    return !kill(t->pid, 0) || errno == EPERM;   /* (no file to read with: it is not gone) */
  if (n < 0 || parse_stat(buf, &state, NULL, 0, NULL))
    return 0;
  return (state != 'Z' && state != 'X') || !only_leader_left(t->pid);
}

static int pt_reload_maps(struct target *t)
{
  struct maps *nm;
  int r = maps_reload(t->maps, &nm);
  if (r)
    return r == -ESRCH ? -VMS_E_GONE : r;
  t->maps = nm;
  return 0;
}

static void pt_close(struct target *t)
{
  mem_close(t->mem);
  maps_free(t->maps);
  for (size_t i = 0; i < t->nthreads; i++)
    statfd_close(&t->threads[i]);
  free(t->threads);
  free(t);
}

/* -- ptrace --------------------------------------------------------------- */

/* Async-signal-safe: detach every thread held in a ptrace-stop. Threads that are seized
 * but running are released by the kernel when we exit (exit_ptrace). */
static void pt_emergency(struct target *t)
{
  for (size_t i = 0; i < t->nthreads; i++) {
    struct thread *th = &t->threads[i];
    if (th->attached && th->stopped && !th->pt.group_stop)
      ptrace(PTRACE_DETACH, th->tid, 0, 0);
  }
}

static int seize(struct target *t, struct thread *th)
{
  if (th->attached)
    return 0;
  /* No PTRACE_O_EXITKILL: the target must outlive us whatever happens. */
  if (ptrace(PTRACE_SEIZE, th->tid, 0, (void *)(long)(t->trace_exec ? PTRACE_O_TRACEEXEC : 0))) {
    int e = errno;
    if (e == ESRCH)
      return th->err = th->tid == t->pid ? -VMS_E_GONE : -ESRCH;
    if (e == EPERM && th->tid != t->pid) {
      /* the kernel refuses to attach to a thread that is exiting (exit_state set) */
      char st;
      int r = target_thread_stat(t->pid, th->tid, &st, NULL, 0);
      if (r == -ESRCH || (!r && (st == 'Z' || st == 'X')))
        return th->err = -ESRCH;
    }
    if (e == EPERM) {
      char p[64], buf[4096];
      snprintf(p, sizeof p, "/proc/%d/status", (int)t->pid);
      const char *tr = read_small(p, buf, sizeof buf) > 0 ? status_field(buf, "TracerPid") : NULL;
      if (tr && atoi(tr) != 0 && atoi(tr) != getpid())
        return th->err = -VMS_E_TRACED;
    }
    return th->err = -e;
  }
  th->attached = 1;
  return 0;
}

static int pt_attach(struct target *t)
{
  for (int pass = 0; pass < ATTACH_PASSES; pass++) {
    int r;
    for (size_t i = 0; i < t->nthreads; i++) {
      struct thread *th = &t->threads[i];
      if (th->attached || th->err)
        continue;
      r = seize(t, th);
      if (r && r != -ESRCH)
        return r;
    }
    r = pt_refresh_threads(t);
    if (r < 0)
      return r;
    if (!r)
      break;
  }
  /* an exec between target_open and the seize is never reported: a program other than the
   * one read at open is taken as an exec (the caller reads the process afresh) */
  char p[64], exe[sizeof t->exe];
  snprintf(p, sizeof p, "/proc/%d/exe", (int)t->pid);
  ssize_t n = readlink(p, exe, sizeof exe - 1);
  if (n > 0 && t->exe[0]) {
    exe[n] = 0;
    if (strcmp(exe, t->exe))
      t->exec_seen = 1;
  }
  return 0;
}

static void timer_arm(int ms)
{
  struct itimerval it = { { 0, 0 }, { ms / 1000, (ms % 1000) * 1000 } };
  setitimer(ITIMER_REAL, &it, NULL);
}

/* Wait for the stop that PTRACE_INTERRUPT asked for. Signal-delivery-stops that come first
 * are passed on (CONT with the signal): the interrupt trap stays pending and follows. */
static target_event_fn event_hook;
static void *event_arg;

void target_set_event_hook(target_event_fn fn, void *arg)
{
  event_hook = fn;
  event_arg = arg;
}

void target_event(struct target *t, struct thread *th, pid_t tid, int status)
{
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    if (th)
      th->attached = th->stopped = 0;
    return;
  }
  if (!WIFSTOPPED(status))
    return;
  if (!th || !t) {
    /* a thread of no target we hold (let go, or renamed by an exec) */
    ptrace(PTRACE_DETACH, tid, 0, 0);
    return;
  }
  int sig = WSTOPSIG(status), ev = (unsigned)status >> 16;
  if (ev == PTRACE_EVENT_EXEC)
    t->exec_seen = 1;   /* another program now: the caller takes it from here */
  if (ev == PTRACE_EVENT_STOP && (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN ||
                                  sig == SIGTTOU))
    ptrace(PTRACE_LISTEN, tid, 0, 0);
  else
    ptrace(PTRACE_CONT, tid, 0, (void *)(long)(ev == 0 ? sig : 0));
}

void target_reap(target_event_fn fn, void *arg)
{
  for (;;) {
    int status;
    pid_t tid = waitpid(-1, &status, WNOHANG | __WALL);
    if (tid <= 0)
      return;
    fn(arg, tid, status);
  }
}

/* An event of a thread other than the one being waited for: passed to the hook, else
 * handled here (never left stopped). */
static void other_event(struct target *t, pid_t tid, int status)
{
  if (event_hook) {
    event_hook(event_arg, tid, status);
    return;
  }
  struct thread *o = NULL;
  for (size_t i = 0; i < t->nthreads && !o; i++)
    if (t->threads[i].tid == tid)
      o = &t->threads[i];
  target_event(t, o, tid, status);
}

static int wait_stop(struct target *t, struct thread *th)
{
  int deadline_hit = 0;
  timer_arm(t->stop_timeout_ms);
  for (;;) {
    int status;
    /* any tracee's event, not only this thread's: an exec in another thread waits until
     * we have reaped the threads it ended, and other stops must not wait for us */
    pid_t r = waitpid(-1, &status, __WALL);
    if (r > 0 && r != th->tid) {
      other_event(t, r, status);
      continue;
    }
    if (r < 0) {
      if (errno == EINTR) {
        struct itimerval it;
        getitimer(ITIMER_REAL, &it);
        if (!it.it_value.tv_sec && !it.it_value.tv_usec) {
          deadline_hit = 1;
          break;
        }
        continue;   /* SIGINT and friends: finish this stop, the caller checks the flag */
      }
      timer_arm(0);
      th->attached = 0;
      return th->err = errno == ECHILD ? -ESRCH : -errno;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      timer_arm(0);
      th->attached = 0;
      return th->err = th->tid == t->pid ? -VMS_E_GONE : -ESRCH;
    }
    if (!WIFSTOPPED(status))
      continue;
    int sig = WSTOPSIG(status), ev = (unsigned)status >> 16;
    if (ev == PTRACE_EVENT_STOP) {
      th->pt.group_stop = sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
      break;
    }
    if (ev == 0) {
      ptrace(PTRACE_CONT, th->tid, 0, (void *)(long)sig);
      continue;
    }
    ptrace(PTRACE_CONT, th->tid, 0, 0);
    if (ev == PTRACE_EVENT_EXEC) {
      /* another program now: what we know of this one is void (the stop asked for may
       * still come; the caller's reaping lets it go) */
      t->exec_seen = 1;
      timer_arm(0);
      return th->err = -VMS_E_EXEC;
    }
    /* other events were not asked for; let it go on */
  }
  timer_arm(0);
  if (deadline_hit)
    return th->err = -VMS_E_STOPTIMEOUT;
  th->stopped = 1;
  return 0;
}

static int pt_stop(struct target *t, struct thread *th)
{
  int r = seize(t, th);
  if (r)
    return r;
  if (ptrace(PTRACE_INTERRUPT, th->tid, 0, 0)) {
    th->attached = errno != ESRCH;
    return th->err = errno == ESRCH ? (th->tid == t->pid ? -VMS_E_GONE : -ESRCH) : -errno;
  }
  if ((r = wait_stop(t, th)))
    return r;
  if (ptrace(PTRACE_GETREGS, th->tid, 0, &th->regs)) {
    r = -errno;
    pt_resume(t, th);
    return th->err = r;
  }
  return 0;
}

static int pt_resume(struct target *t, struct thread *th)
{
  (void)t;
  if (!th->stopped)
    return 0;
  th->stopped = 0;
  /* A group-stopped thread (SIGSTOP, ^Z) must stay stopped: LISTEN keeps job control. */
  if (ptrace(th->pt.group_stop ? PTRACE_LISTEN : PTRACE_CONT, th->tid, 0, 0))
    return th->err = -errno;
  return 0;
}

static void release(struct target *t, struct thread *th)
{
  if (!th->attached)
    return;
  if (!th->stopped) {
    /* PTRACE_DETACH needs a ptrace-stop; a running seized thread gets one first (an
     * exec reported meanwhile comes first: ask again) */
    int r = -VMS_E_EXEC;
    for (int tries = 0; r == -VMS_E_EXEC && tries < 3; tries++)
      r = ptrace(PTRACE_INTERRUPT, th->tid, 0, 0) ? -errno : wait_stop(t, th);
    if (r) {
      th->attached = 0;   /* gone, or stuck: the kernel releases it when we exit */
      return;
    }
  }
  ptrace(PTRACE_DETACH, th->tid, 0, 0);
  th->stopped = th->attached = 0;
}

static void pt_detach(struct target *t)
{
  for (size_t i = 0; i < t->nthreads; i++)
    release(t, &t->threads[i]);
}

static void pt_release(struct target *t, struct thread *th)
{
  release(t, th);
}

static const struct target_ops target_ptrace_ops = {
  .name = "ptrace",
  .refresh_threads = pt_refresh_threads,
  .prune_threads = pt_prune_threads,
  .thread_state = pt_thread_state,
  .alive = pt_alive,
  .reload_maps = pt_reload_maps,
  .attach = pt_attach,
  .stop = pt_stop,
  .resume = pt_resume,
  .release = pt_release,
  .detach = pt_detach,
  .emergency = pt_emergency,
  .close = pt_close,
};
