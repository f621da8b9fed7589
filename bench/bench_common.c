/* Helpers shared by the pause benchmarks. */
#include <errno.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

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
