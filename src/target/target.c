/* Targets: the calls of target.h dispatched to the target's kind (target_ops.h), and the
 * exit guard that lets every held thread go whatever happens to vmstack. */
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmstack/target.h"
#include "target_ops.h"

/* -- Exit guard ----------------------------------------------------------- */

/* Every open target (record -s has one per process followed): a slot is set before the
 * target is used and cleared when it is closed. */
#define GUARD_MAX 1024
static struct target *volatile guard_t[GUARD_MAX];
static volatile sig_atomic_t interrupted;

void target_guard_add(struct target *t)
{
  for (size_t i = 0; i < GUARD_MAX; i++)
    if (!guard_t[i]) {
      guard_t[i] = t;
      return;
    }
}

static void guard_remove(struct target *t)
{
  for (size_t i = 0; i < GUARD_MAX; i++)
    if (guard_t[i] == t)
      guard_t[i] = NULL;
}

/* Async-signal-safe: let go of every thread held stopped, of every open target. */
static void emergency_detach(void)
{
  for (size_t k = 0; k < GUARD_MAX; k++) {
    struct target *t = guard_t[k];
    if (t && t->ops && t->ops->emergency)
      t->ops->emergency(t);
  }
}

static void on_term(int sig)
{
  if (interrupted) {
    /* second signal: the caller did not get to finish; leave now */
    emergency_detach();
    _exit(128 + sig);
  }
  interrupted = sig;
}

static void on_fatal(int sig)
{
  emergency_detach();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void on_alarm(int sig)
{
  (void)sig;
}

void target_guard_install(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_term;     /* no SA_RESTART: blocking calls return EINTR */
  static const int term[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };
  for (size_t i = 0; i < sizeof term / sizeof *term; i++)
    sigaction(term[i], &sa, NULL);
  sa.sa_handler = on_fatal;
  sa.sa_flags = SA_RESETHAND | SA_NODEFER;
  static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGSYS };
  for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++)
    sigaction(fatal[i], &sa, NULL);
  sa.sa_handler = on_alarm;
  sa.sa_flags = 0;
  sigaction(SIGALRM, &sa, NULL);
}

int target_interrupted(void)
{
  return interrupted;
}

/* -- Dispatch ------------------------------------------------------------- */

int target_refresh_threads(struct target *t)
{
  return t->ops->refresh_threads(t);
}

void target_prune_threads(struct target *t)
{
  t->ops->prune_threads(t);
}

int target_thread_state(struct target *t, struct thread *th, char *ret_state)
{
  return t->ops->thread_state(t, th, ret_state);
}

int target_alive(const struct target *t)
{
  return t->ops->alive(t);
}

int target_reload_maps(struct target *t)
{
  return t->ops->reload_maps(t);
}

int target_attach(struct target *t)
{
  return t->ops->attach(t);
}

int target_stop(struct target *t, struct thread *th)
{
  return t->ops->stop(t, th);
}

int target_resume(struct target *t, struct thread *th)
{
  return t->ops->resume(t, th);
}

void target_release(struct target *t, struct thread *th)
{
  t->ops->release(t, th);
}

void target_detach(struct target *t)
{
  t->ops->detach(t);
}

void target_close(struct target *t)
{
  if (!t)
    return;
  t->ops->detach(t);
  guard_remove(t);
  t->ops->close(t);
}

const char *target_state_name(char state)
{
  switch (state) {
  case 'R': return "running";
  case 'S': return "sleeping";
  case 'D': return "disk sleep";
  case 'T': return "stopped";
  case 't': return "tracing stop";
  case 'Z': return "zombie";
  case 'X': return "dead";
  case 'I': return "idle";
  default: return "unknown";
  }
}
