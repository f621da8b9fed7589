/* Helpers shared by the pause benchmarks. */
#ifndef VMSTACK_BENCH_COMMON_H
#define VMSTACK_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int64_t now_ns(void);
/* The bare round trip the pauses are compared with: INTERRUPT, wait, GETREGS, CONT. */
int bare_round(pid_t tid, int64_t *ret_ns);
int cmp_i64(const void *a, const void *b);
/* Nearest-rank percentile of sorted samples, in microseconds. */
double pct_us(const int64_t *v, size_t n, unsigned p);

/* name's path from PATH into buf; 0 when there is none. */
int find_in_path(const char *name, char *buf, size_t cap);
/* Fork/exec argv (the element "{fd}" becomes the write end of a pipe) and wait for its line
 * "ready 0xADDR" (the address of a counter it bumps while it spins): the pid, or -errno. */
pid_t start_ready(char *const argv[], int timeout_ms, uint64_t *ret_addr);
/* process_vm_readv of len bytes. */
int peek(pid_t pid, uint64_t addr, void *buf, size_t len);
/* Wait until the 8 bytes at addr change: every timed stop starts from a fixture back in
 * its user-space loop, not one still waking from the previous stop (which stops faster
 * and would flatter the figures). */
int wait_running(pid_t pid, uint64_t addr, int64_t timeout_ns);

#endif
