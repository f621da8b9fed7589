/* The top verb: a live table of the functions a process spends its time in. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "vmstack/json.h"
#include "vmstack/profile.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"

#define ROWS_MAX 4096

struct row {
  char name[200];
  uint8_t kind;
  uint64_t self, total;
};

struct top {
  struct row *rows;
  size_t n;
  uint64_t samples;
  int tty;
  int lines;               /* rows to show */
  pid_t pid;
  double rate;
  const char *comm;
};

static struct termios saved;
static int raw_on;

static void raw_off(void)
{
  if (raw_on)
    tcsetattr(0, TCSANOW, &saved);
  raw_on = 0;
}

static struct row *row_of(struct top *tp, const char *name, uint8_t kind)
{
  for (size_t i = 0; i < tp->n; i++)
    if (tp->rows[i].kind == kind && !strcmp(tp->rows[i].name, name))
      return &tp->rows[i];
  if (tp->n == ROWS_MAX)
    return NULL;
  struct row *r = &tp->rows[tp->n++];
  snprintf(r->name, sizeof r->name, "%s", name);
  r->kind = kind;
  r->self = r->total = 0;
  return r;
}

static int count(void *arg, const char *const *names, const uint8_t *kinds, size_t n,
                 uint64_t c, uint64_t c2)
{
  struct top *tp = arg;
  (void)c2;
  tp->samples += c;
  for (size_t i = 0; i < n; i++) {
    /* total: once per stack, even for a recursive function */
    size_t j = 0;
    while (j < i && (kinds[j] != kinds[i] || strcmp(names[j], names[i])))
      j++;
    struct row *r = row_of(tp, names[i], kinds[i]);
    if (!r)
      continue;
    if (j == i)
      r->total += c;
    if (i + 1 == n)
      r->self += c;
  }
  return 0;
}

static int by_self(const void *a, const void *b)
{
  const struct row *x = a, *y = b;
  if (x->self != y->self)
    return x->self < y->self ? 1 : -1;
  return x->total < y->total ? 1 : x->total > y->total ? -1 : 0;
}

static int tick(void *arg, struct profile *p, const struct profile_stats *st)
{
  struct top *tp = arg;
  tp->n = 0;
  tp->samples = 0;
  profile_each(p, 0, count, tp);
  qsort(tp->rows, tp->n, sizeof *tp->rows, by_self);
  if (tp->tty)
    fputs("\033[H\033[2J", stdout);
  fputs("vmstack top - ", stdout);
  text_put(stdout, tp->comm);   /* (names from the target: escaped, never raw) */
  printf(" (pid %d) - %.0f s, %llu samples at %g Hz, %llu errors%s\n", (int)tp->pid,
         st->seconds, (unsigned long long)st->samples, tp->rate,
         (unsigned long long)st->errors, tp->tty ? " - q quits" : "");
  printf("%7s %7s  %s\n", "SELF%", "TOTAL%", "FUNCTION");
  for (size_t i = 0; i < tp->n && (int)i < tp->lines; i++) {
    const struct row *r = &tp->rows[i];
    printf("%6.1f%% %6.1f%%  ", tp->samples ? 100.0 * r->self / tp->samples : 0.0,
           tp->samples ? 100.0 * r->total / tp->samples : 0.0);
    text_put(stdout, r->name);
    puts(r->kind == FK_JIT ? " [jit]" : r->kind == FK_FUNCTION ? " [vm]" : "");
  }
  if (!tp->tty)
    putchar('\n');
  fflush(stdout);
  /* q (or Ctrl-D) quits */
  struct pollfd pf = { 0, POLLIN, 0 };
  char c;
  if (tp->tty && poll(&pf, 1, 0) > 0 && read(0, &c, 1) == 1 && (c == 'q' || c == 'Q' || c == 4))
    return 1;
  return 0;
}

int cmd_top(int argc, char **argv)
{
  static const struct option lo[] = {
    { "pid", required_argument, NULL, 'p' },
    { "rate", required_argument, NULL, 'r' },
    { "duration", required_argument, NULL, 'd' },
    { "locals", no_argument, NULL, 'l' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  pid_t pid = 0;
  long rate = 99;
  double duration = 0;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":p:r:d:lh", lo, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (cli_opt_pid(optarg, &pid))
        return EXIT_USAGE;
      break;
    case 'r':
      if (cli_parse_long(optarg, 1, 10000, &rate)) {
        cli_error("invalid --rate '%s': expected 1..10000", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'l':
      cli_error("note: -l shows variables in a dump; top has none (ignored)");
      break;
    case 'd':
      if (cli_parse_double(optarg, 0.001, 86400 * 365.0, &duration)) {
        cli_error("invalid --duration '%s': expected a positive number of seconds", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'h':
      printf("Usage: vmstack top -p PID [-r HZ] [-d SECS]   (q quits)\n");
      return EXIT_OK;
    default:
      return cli_opt_error(c, argv);
    }
  }
  if (optind < argc) {
    cli_error("unexpected argument '%s'", argv[optind]);
    return EXIT_USAGE;
  }
  if (!pid) {
    cli_error("no target: give -p PID");
    return EXIT_USAGE;
  }
  struct target *t;
  int r = target_open(pid, &t);
  if (r)
    return cli_target_error(pid, r);
  struct top tp = { .rows = calloc(ROWS_MAX, sizeof *tp.rows), .tty = isatty(1),
                    .lines = 25, .pid = t->pid, .rate = (double)rate, .comm = t->comm };
  if (!tp.rows) {
    target_close(t);
    return EXIT_FATAL;
  }
  if (tp.tty && isatty(0) && !tcgetattr(0, &saved)) {
    struct termios raw = saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (!tcsetattr(0, TCSANOW, &raw))
      raw_on = 1;
    atexit(raw_off);
  }
  struct record_opts ro = {
    .rate = (double)rate, .duration = duration, .view = VIEW_MIXED,
    .max_depth = UNWIND_DEPTH_DEFAULT, .stack_bytes = UNWIND_CAPTURE_DEFAULT,
    .tick = tick, .tick_arg = &tp, .tick_s = 1.0,
  };
  struct profile *p = NULL;
  struct profile_stats st;
  r = record_run(t, &ro, &p, &st);
  raw_off();
  int code = r ? cli_target_error(pid, r) : EXIT_OK;
  profile_free(p);
  free(tp.rows);
  target_close(t);
  return code;
}
