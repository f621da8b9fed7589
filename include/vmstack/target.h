/* Targets: threads, stop/resume, registers, memory and maps of a process, whatever kind of
 * target provides them (a live process through ptrace now), and a detach that always
 * happens. */
#ifndef VMSTACK_TARGET_H
#define VMSTACK_TARGET_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct mem;
struct maps;
struct target_ops;

struct thread {
  pid_t tid;
  pid_t nstid;             /* tid inside the target's pid namespace (0 when unknown) */
  char name[17];
  char state;              /* /proc state letter read before we stopped it: R S D T t Z X */
  int attached;            /* held by the target's backend (ptrace: seized) */
  int stopped;             /* in a stop we caused */
  int err;                 /* last error for this thread (0, -errno, -VMS_E_*) */
  struct user_regs_struct regs;
  struct {                 /* the ptrace backend's own (src/target/target_ptrace.c) */
    int group_stop;        /* the stop is a group-stop: resume with LISTEN, not CONT */
    int statfd;            /* /proc/PID/task/TID/stat kept open, its descriptor + 1 (0: none;
                              a descriptor may be 0 when vmstack runs without stdin) */
  } pt;
};

struct target {
  const struct target_ops *ops;   /* its kind (src/target/target_ops.h) */
  pid_t pid;
  pid_t nspid;             /* pid inside its own namespace (== pid when the same) */
  char comm[17];
  char exe[4096];          /* as the target sees it */
  char state;
  struct thread *threads;
  size_t nthreads, threads_cap;
  struct mem *mem;
  struct maps *maps;
  int stop_timeout_ms;     /* how long a stop may take before the thread is skipped */
  int trace_exec;          /* seize with PTRACE_O_TRACEEXEC: an exec is reported */
  int exec_seen;           /* an exec happened (set when it is reported; the caller clears) */
};

/* A live process: check it (exists, not a kernel thread or zombie, not traced), read its
 * name, threads and maps, and open its memory. Nothing is attached yet. */
int target_open(pid_t pid, struct target **ret_t);
/* A target replayed from a snapshot file: threads, registers, maps and the memory a
 * walk read, saved by target_snapshot_save (nothing attached, nothing runs). */
int target_snapshot_open(const char *path, struct target **ret_t);
/* Save what target t's walks read (its memory was recorded: mem_record), with its
 * threads' registers and its maps, to path. */
int target_snapshot_save(struct target *t, const char *path, int embed_files);
/* Re-read /proc/PID/task: threads that appeared are added, gone ones are marked. */
int target_refresh_threads(struct target *t);
int target_reload_maps(struct target *t);
/* Forget threads that have exited (not attached, no longer in /proc/PID/task), so that the
 * table stays small and a reused thread id starts afresh. Invalidates thread pointers. */
void target_prune_threads(struct target *t);
/* The process still runs (not exited, not a zombie). */
int target_alive(const struct target *t);
void target_close(struct target *t);   /* detaches first */

/* PTRACE_SEIZE every thread (threads that appear meanwhile too). Does not stop them. */
int target_attach(struct target *t);
/* Stop one thread (seizing it first if needed: PTRACE_INTERRUPT, wait) and read its
 * registers. The wait is bounded by stop_timeout_ms with ITIMER_REAL and SIGALRM, so
 * target_guard_install() must have run (it installs the SIGALRM handler). */
int target_stop(struct target *t, struct thread *th);
/* Let it go again (CONT; LISTEN for a group-stop, which keeps it stopped). Signals that
 * arrive while we wait for a stop are passed on at once, never held back. */
int target_resume(struct target *t, struct thread *th);
/* Detach one thread (resuming it if stopped): stop, read, let go in one-shot dumps. */
void target_release(struct target *t, struct thread *th);
/* Resume what is stopped and detach every thread. Safe to call more than once. */
void target_detach(struct target *t);

/* While a stop is waited for, events of other traced threads (of any target) are handed to
 * fn (tid and waitpid status); without a hook they are handled for the target at hand
 * (signals passed on, job control kept, exec noted). fn must never leave a thread
 * stopped. NULL removes the hook. */
typedef void (*target_event_fn)(void *arg, pid_t tid, int status);
void target_set_event_hook(target_event_fn fn, void *arg);
/* Hand every event waiting now (of any traced thread) to fn, without blocking. */
void target_reap(target_event_fn fn, void *arg);
/* The usual handling of an event of thread th of t that nobody waited for: an exit marks
 * it gone; a stop ends at once (a signal passed on, job control kept, an exec noted in
 * t->exec_seen). th NULL: a thread of no target held, let go. */
void target_event(struct target *t, struct thread *th, pid_t tid, int status);
/* Install handlers for SIGINT/TERM/HUP/PIPE/QUIT and fatal signals (SEGV, BUS, ABRT, FPE,
 * ILL) that detach every attached thread before we exit or die. After a terminating
 * signal, target_interrupted() is true (the caller finishes its output, then exits). */
void target_guard_install(void);
int target_interrupted(void);

/* A thread's state letter now, from its stat file kept open (one pread per call). */
int target_thread_state(struct target *t, struct thread *th, char *ret_state);
/* Thread state letter and name from /proc (no ptrace). */
int target_thread_stat(pid_t pid, pid_t tid, char *ret_state, char *ret_name, size_t namesz);
const char *target_state_name(char state);

#endif
