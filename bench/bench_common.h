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

#endif
