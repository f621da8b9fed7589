/* Sampling profiler: stacks aggregated while recording, named after the target is released. */
#ifndef VMSTACK_PROFILE_H
#define VMSTACK_PROFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vmstack/frames.h"
#include "vmstack/stack.h"

struct target;
struct profile;
struct profile_stats;

struct record_opts {
  double rate;             /* samples per second per thread */
  double duration;         /* seconds; 0 = until SIGINT/SIGTERM or the target exits */
  enum stack_view view;
  int idle;                /* keep samples of sleeping threads (wall-clock view) */
  size_t max_depth, stack_bytes;
  int progress;            /* a status line on stderr */
  const char *only_runtime;
  int follow;              /* -s: sample child processes too, also those started later */
  int nonblocking;         /* read VM stacks without stopping threads (no native frames) */
  /* called about every tick_s seconds while recording (vmstack top); nonzero ends it */
  int (*tick)(void *arg, struct profile *p, const struct profile_stats *st);
  void *tick_arg;
  double tick_s;
};

#define PROFILE_CAUSES 8

struct profile_stats {
  uint64_t samples, errors, late;
  /* errors by cause ("no unwind information for the address at JIT code"), the first
   * PROFILE_CAUSES distinct ones; the rest counted together */
  struct {
    char what[112];
    uint64_t n;
  } causes[PROFILE_CAUSES];
  uint64_t other_causes;
  uint64_t cut;            /* samples whose VM frames were read but whose native stack
                              ended early (not errors) */
  double seconds;
  int target_gone;
  size_t processes;        /* sampled (1 unless following children) */
};

struct profile;
struct maps;

/* Sample the target until the duration ends, a signal arrives or the target exits; every
 * thread is released before this returns. */
int record_run(struct target *t, const struct record_opts *o, struct profile **ret_prof,
               struct profile_stats *ret_st);

/* Every distinct stack, root first, with its weight (samples, or bytes) and its second
 * weight (0 in a CPU profile; see profile_meta.second). Names are final (symbolised);
 * kinds are enum frame_kind (FK_NATIVE, FK_FUNCTION, FK_JIT, FK_THREAD, FK_PROCESS). */
typedef int (*profile_fn)(void *arg, const char *const *names, const uint8_t *kinds, size_t n,
                          uint64_t count, uint64_t count2);
int profile_each(struct profile *p, int with_threads, profile_fn fn, void *arg);
void profile_free(struct profile *p);
/* A profile of named stacks (a memory profile): empty, then one stack of names at a time,
 * root first, every frame of one kind (enum frame_kind), weighing weight (and weight2, the
 * second weight profile_meta.second names). */
struct profile *profile_new(void);
int profile_add_names(struct profile *p, const char *const *names, size_t n, uint8_t kind,
                      uint64_t weight, uint64_t weight2);

/* Writers. with_threads: a frame naming the thread at the root of every stack. */
struct profile_meta {
  const char *title, *subtitle;
  int pid;
  double rate, seconds;
  int with_threads;
  int bytes;               /* the weights are bytes (a memory profile), not samples */
  enum {
    PROFILE_SECOND_NONE,
    PROFILE_SECOND_OBJECTS,  /* the second weight counts the objects of the bytes */
    PROFILE_SECOND_BEFORE,   /* a comparison: the weight is now, the second the baseline's */
  } second;
};
int output_folded(FILE *f, struct profile *p, const struct profile_meta *m);
int output_flamegraph(FILE *f, struct profile *p, const struct profile_meta *m);
int output_speedscope(FILE *f, struct profile *p, const struct profile_meta *m);
int output_pprof(FILE *f, struct profile *p, const struct profile_meta *m);

#endif
