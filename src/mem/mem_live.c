/* Live-process memory: batched process_vm_readv, /proc/PID/mem when it is refused. Never
 * writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vmstack/err.h"
#include "mem_impl.h"

static int procmem_read(struct mem *m, struct mem_iov *v)
{
  if (m->memfd < 0) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/mem", (int)m->pid);
    m->memfd = open(p, O_RDONLY | O_CLOEXEC);
    if (m->memfd < 0)
      return v->err = mem_errno_neg();
  }
  size_t done = 0;
  while (done < v->len) {
    m->st.syscalls++;
    ssize_t r = pread(m->memfd, (char *)v->buf + done, v->len - done, (off_t)(v->addr + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return v->err = r < 0 ? (errno == EIO ? -EFAULT : mem_errno_neg()) : -EFAULT;
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
    int e = errno == ESRCH ? -ESRCH : mem_errno_neg();
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

void mem_live_readv(struct mem *m, struct mem_iov *v, size_t n)
{
  if (m->use_procmem) {
    for (size_t i = 0; i < n; i++)
      procmem_read(m, &v[i]);
  } else {
    for (size_t i = 0; i < n; i += BATCH)
      live_batch(m, v + i, n - i < BATCH ? n - i : BATCH);
  }
}

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
