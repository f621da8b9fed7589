/* Pause benchmark: a bare ptrace stop round trip against the pause a vmstack dump imposes. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/symbolize.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"

#define WARMUP 50
#define MIN_DEPTH 30
#define READY_TIMEOUT_MS 10000
#define RUN_TIMEOUT_NS 1000000000

static int die(const char *what, int err)
{
  fprintf(stderr, "pause_bench: %s: %s\n", what, vms_strerror(err));
  return 1;
}

/* The fixture next to this binary: <dir of /proc/self/exe>/deep */
static int default_fixture(char *buf, size_t cap)
{
  ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
  if (n <= 0)
    return -errno;
  buf[n] = 0;
  char *slash = strrchr(buf, '/');
  if (!slash || (size_t)(slash - buf) + sizeof "/deep" > cap)
    return -ENAMETOOLONG;
  strcpy(slash, "/deep");
  return 0;
}

/* Fork/exec the fixture with a pipe's write end as its ready fd; wait for "ready". */
static pid_t start_fixture(const char *path)
{
  int p[2];
  if (pipe(p))
    return -errno;
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (!pid) {
    char fd[16];
    close(p[0]);
    snprintf(fd, sizeof fd, "%d", p[1]);
    execl(path, path, fd, (char *)NULL);
    /* tell the parent why: "E<errno>" instead of "ready" */
    char msg[16];
    int len = snprintf(msg, sizeof msg, "E%d\n", errno);
    ssize_t w = write(p[1], msg, (size_t)len);
    (void)w;
    _exit(127);
  }
  close(p[1]);
  char buf[16];
  size_t got = 0;
  int r = -EPROTO;
  while (got < sizeof buf - 1) {
    struct pollfd pf = { p[0], POLLIN, 0 };
    int pr = poll(&pf, 1, READY_TIMEOUT_MS);
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
      r = buf[0] == 'E' && atoi(buf + 1) > 0 ? -atoi(buf + 1) :
          strcmp(buf, "ready\n") ? -EPROTO : 0;
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

/* The spinner: a running non-leader thread, else any non-leader thread. */
static struct thread *pick_thread(struct target *t)
{
  struct thread *any = NULL;
  for (size_t i = 0; i < t->nthreads; i++) {
    struct thread *th = &t->threads[i];
    if (th->tid == t->pid)
      continue;
    if (th->state == 'R')
      return th;
    if (!any)
      any = th;
  }
  return any;
}

/* Address of the fixture's spin counter, from its symbol table. */
static int spins_addr(struct target *t, uint64_t *ret)
{
  struct module *mod = maps_module_by_name(t->maps, "deep");
  uint64_t va;
  if (!mod)
    return -VMS_E_NOMODULE;
  int r = maps_module_open(t->maps, mod);
  if (r)
    return r;
  if ((r = elf_file_lookup(mod->elf, "spins", &va, NULL)))
    return r;
  *ret = va + mod->bias;
  return 0;
}

/* What dump's capture_thread does: stop, invalidate, copy the stack, resume. */
static int pause_round(struct target *t, struct thread *th, struct stack_capture *cap,
                       int64_t *ret_ns)
{
  int64_t t0 = now_ns();
  int r = target_stop(t, th);
  if (r)
    return r;
  mem_invalidate(t->mem);
  r = unwind_capture(t->mem, t->maps, &th->regs, UNWIND_CAPTURE_DEFAULT, cap);
  int rr = target_resume(t, th);
  *ret_ns = now_ns() - t0;
  return r ? r : rr;
}

/* Walk and symbolise the captured stack; returns the frame count or an error. */
static int walk_round(struct target *t, struct unwinder *u, const struct stack_capture *cap,
                      struct frame *fr, struct sym_info *si, size_t *ret_chain,
                      int64_t *ret_ns)
{
  size_t n = 0;
  int64_t t0 = now_ns();
  int r = unwind_stack(u, t->maps, t->mem, cap, fr, UNWIND_DEPTH_DEFAULT, &n);
  for (size_t i = 0; i < n; i++)
    symbolize(t->maps, fr[i].pc, fr[i].flags & FRAME_F_EXACT, 0, &si[i]);
  *ret_ns = now_ns() - t0;
  if (r && !n)
    return r;
  /* frames of the d01..d30 chain, to be sure the walk went through it */
  size_t chain = 0;
  for (size_t i = 0; i < n; i++) {
    const char *f = si[i].func;
    if (f && f[0] == 'd' && f[1] >= '0' && f[1] <= '3' && f[2] >= '0' && f[2] <= '9' && !f[3])
      chain++;
  }
  *ret_chain = chain;
  return (int)n;
}

static void usage(FILE *f)
{
  fprintf(f, "Usage: pause_bench [-n ROUNDS] [-x FIXTURE]\n"
             "  -n ROUNDS   measured rounds of each kind (default 2000)\n"
             "  -x FIXTURE  the deep fixture (default: deep next to this binary)\n");
}

int main(int argc, char **argv)
{
  long rounds = 2000;
  char fixture[PATH_MAX] = "";
  int c;
  while ((c = getopt(argc, argv, "n:x:h")) != -1) {
    char *end;
    switch (c) {
    case 'n':
      errno = 0;
      rounds = strtol(optarg, &end, 10);
      if (errno || *end || rounds < 1 || rounds > 10000000) {
        fprintf(stderr, "pause_bench: invalid -n '%s'\n", optarg);
        return 64;
      }
      break;
    case 'x':
      snprintf(fixture, sizeof fixture, "%s", optarg);
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 64;
    }
  }
  int r;
  if (!*fixture && (r = default_fixture(fixture, sizeof fixture)))
    return die("cannot locate the fixture", r);

  size_t n = (size_t)rounds;
  int64_t *bare_ns = calloc(n, sizeof *bare_ns), *pause_ns = calloc(n, sizeof *pause_ns),
          *walk_ns = calloc(n, sizeof *walk_ns);
  struct frame *fr = calloc(UNWIND_DEPTH_DEFAULT, sizeof *fr);
  struct sym_info *si = calloc(UNWIND_DEPTH_DEFAULT, sizeof *si);
  if (!bare_ns || !pause_ns || !walk_ns || !fr || !si)
    return die("out of memory", -ENOMEM);

  target_guard_install();   /* also the SIGALRM handler target_stop's timeout relies on */
  pid_t pid = start_fixture(fixture);
  if (pid < 0)
    return die(fixture, pid);

  struct target *t = NULL;
  struct unwinder *u = NULL;
  struct stack_capture cap = { 0 };
  struct thread *th = NULL;
  size_t depth = SIZE_MAX, chain = SIZE_MAX;
  int status = 1;
  if ((r = target_open(pid, &t))) {
    die("target_open", r);
    goto out;
  }
  if (!(th = pick_thread(t))) {
    fprintf(stderr, "pause_bench: the fixture has no second thread\n");
    goto out;
  }
  if ((r = unwinder_new(&u))) {
    die("unwinder_new", r);
    goto out;
  }
  uint64_t spins;
  if ((r = spins_addr(t, &spins))) {
    die("the fixture's spins counter", r);
    goto out;
  }

  /* the library seizes the thread once (in this first target_stop) and keeps it seized:
   * the bare rounds use raw ptrace on the same tid between its stops */
  if ((r = target_stop(t, th)) || (r = target_resume(t, th))) {
    die("target_stop", r);
    goto out;
  }
  for (size_t i = 0; i < WARMUP + n && !target_interrupted(); i++) {
    int64_t b = 0, p = 0, w = 0;
    size_t ch = 0;
    if ((r = wait_running(pid, spins, RUN_TIMEOUT_NS)) || (r = bare_round(th->tid, &b))) {
      die("bare round", r);
      goto out;
    }
    if ((r = wait_running(pid, spins, RUN_TIMEOUT_NS)) || (r = pause_round(t, th, &cap, &p))) {
      die("pause round", r);
      goto out;
    }
    if ((r = walk_round(t, u, &cap, fr, si, &ch, &w)) < 0) {
      die("unwind", r);
      goto out;
    }
    if ((size_t)r < depth)
      depth = (size_t)r;
    if (ch < chain)
      chain = ch;
    if (i >= WARMUP) {
      bare_ns[i - WARMUP] = b;
      pause_ns[i - WARMUP] = p;
      walk_ns[i - WARMUP] = w;
    }
  }
  if (target_interrupted()) {
    fprintf(stderr, "pause_bench: interrupted\n");
    goto out;
  }

  qsort(bare_ns, n, sizeof *bare_ns, cmp_i64);
  qsort(pause_ns, n, sizeof *pause_ns, cmp_i64);
  qsort(walk_ns, n, sizeof *walk_ns, cmp_i64);
  double b50 = pct_us(bare_ns, n, 50), p50 = pct_us(pause_ns, n, 50);
  printf("{\"bench\":\"pause\",\"stack_depth\":%zu,\"rounds\":%zu,"
         "\"bare_roundtrip_us_p50\":%.2f,\"bare_roundtrip_us_p90\":%.2f,"
         "\"pause_us_p50\":%.2f,\"pause_us_p90\":%.2f,\"ratio\":%.3f,"
         "\"unwind_symbolize_us_p50\":%.2f}\n",
         depth, n, b50, pct_us(bare_ns, n, 90), p50, pct_us(pause_ns, n, 90),
         b50 > 0 ? p50 / b50 : 0.0, pct_us(walk_ns, n, 50));
  fflush(stdout);
  status = 0;
  if (depth < MIN_DEPTH || chain < MIN_DEPTH) {
    fprintf(stderr, "pause_bench: shallow walk (%zu frames, %zu of the 30-deep chain): "
            "the figures do not measure a deep stack\n", depth, chain);
    status = 1;
  }
out:
  unwinder_free(u);
  unwind_capture_free(&cap);
  target_close(t);   /* detaches the seized thread */
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  free(bare_ns);
  free(pause_ns);
  free(walk_ns);
  free(fr);
  free(si);
  return status;
}
