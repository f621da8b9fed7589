/* Helpers shared by the pause benchmarks. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "vmstack/err.h"

int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int bare_round(pid_t tid, int64_t *ret_ns)
{
  struct user_regs_struct regs;
  int64_t t0 = now_ns();
  if (ptrace(PTRACE_INTERRUPT, tid, 0, 0))
    return -errno;
  for (;;) {
    int st;
    if (waitpid(tid, &st, __WALL) < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (!WIFSTOPPED(st))
      return -VMS_E_GONE;
    unsigned ev = (unsigned)st >> 16;
    if (ev == PTRACE_EVENT_STOP)
      break;
    /* a signal for the target came first: pass it on, the interrupt follows */
    ptrace(PTRACE_CONT, tid, 0, (void *)(long)(ev ? 0 : WSTOPSIG(st)));
  }
  if (ptrace(PTRACE_GETREGS, tid, 0, &regs) || ptrace(PTRACE_CONT, tid, 0, 0))
    return -errno;
  *ret_ns = now_ns() - t0;
  return 0;
}

int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

double pct_us(const int64_t *v, size_t n, unsigned p)
{
  size_t k = (p * n + 99) / 100;
  return (double)v[k ? k - 1 : 0] / 1000.0;
}

int find_in_path(const char *name, char *buf, size_t cap)
{
  const char *path = getenv("PATH");
  while (path && *path) {
    size_t l = strcspn(path, ":");
    if (l && (size_t)snprintf(buf, cap, "%.*s/%s", (int)l, path, name) < cap &&
        !access(buf, X_OK))
      return 1;
    path += l + (path[l] == ':');
  }
  return 0;
}

pid_t start_ready(char *const argv[], int timeout_ms, uint64_t *ret_addr)
{
  int p[2];
  if (pipe(p))
    return -errno;
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (!pid) {
    char fd[16], *av[16];
    size_t n = 0;
    close(p[0]);
    snprintf(fd, sizeof fd, "%d", p[1]);
    for (; argv[n] && n < 15; n++)
      av[n] = strcmp(argv[n], "{fd}") ? argv[n] : fd;
    av[n] = NULL;
    execv(av[0], av);
    char msg[16];
    int len = snprintf(msg, sizeof msg, "E%d\n", errno);
    ssize_t w = write(p[1], msg, (size_t)len);
    (void)w;
    _exit(127);
  }
  close(p[1]);
  char buf[64];
  size_t got = 0;
  int r = -EPROTO;
  while (got < sizeof buf - 1) {
    struct pollfd pf = { p[0], POLLIN, 0 };
    int pr = poll(&pf, 1, timeout_ms);
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0) {
      r = pr ? -errno : -ETIMEDOUT;
      break;
    }
    ssize_t n = read(p[0], buf + got, sizeof buf - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
    buf[got] = 0;
    if (strchr(buf, '\n')) {
      char *end;
      if (buf[0] == 'E' && atoi(buf + 1) > 0)
        r = -atoi(buf + 1);
      else if (!strncmp(buf, "ready 0x", 8) && (*ret_addr = strtoull(buf + 6, &end, 16)) &&
               *end == '\n')
        r = 0;
      break;
    }
  }
  close(p[0]);
  if (r) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return r;
  }
  return pid;
}

int peek(pid_t pid, uint64_t addr, void *buf, size_t len)
{
  struct iovec lo = { buf, len }, re = { (void *)(uintptr_t)addr, len };
  return process_vm_readv(pid, &lo, 1, &re, 1, 0) == (ssize_t)len ? 0 : errno ? -errno : -EIO;
}

int wait_running(pid_t pid, uint64_t addr, int64_t timeout_ns)
{
  uint64_t v0, v;
  int r = peek(pid, addr, &v0, sizeof v0);
  int64_t t0 = now_ns();
  do {
    if (r || (r = peek(pid, addr, &v, sizeof v)))
      return r;
    if (now_ns() - t0 > timeout_ns)
      return -ETIMEDOUT;
  } while (v == v0);
  return 0;
}
