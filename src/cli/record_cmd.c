/* The record verb: sample a process (or a command it starts) and write a profile. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vmstack/err.h"
#include "vmstack/profile.h"
#include "vmstack/sink.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"

enum { OPT_VIEW = 300, OPT_IDLE, OPT_MAX_DEPTH, OPT_NONBLOCKING };

struct ropts {
  pid_t pid;
  char **cmd;
  double rate, duration;
  const char *output;
  const struct sink *fmt;   /* NULL: from -o's name, else flamegraph */
  enum stack_view view;
  int threads, idle, follow, nonblocking;
  long max_depth;
};

static int parse(int argc, char **argv, struct ropts *o)
{
  static const struct option lo[] = {
    { "pid", required_argument, NULL, 'p' },
    { "rate", required_argument, NULL, 'r' },
    { "duration", required_argument, NULL, 'd' },
    { "output", required_argument, NULL, 'o' },
    { "format", required_argument, NULL, 'f' },
    { "view", required_argument, NULL, OPT_VIEW },
    { "threads", no_argument, NULL, 't' },
    { "idle", no_argument, NULL, OPT_IDLE },
    { "nonblocking", no_argument, NULL, OPT_NONBLOCKING },
    { "subprocesses", no_argument, NULL, 's' },
    { "max-depth", required_argument, NULL, OPT_MAX_DEPTH },
    { "locals", no_argument, NULL, 'l' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  o->rate = 99;
  o->max_depth = UNWIND_DEPTH_DEFAULT;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+:p:r:d:o:f:tslh", lo, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (cli_opt_pid(optarg, &o->pid))
        return EXIT_USAGE;
      break;
    case 'r':
      if (cli_parse_double(optarg, 1, 10000, &o->rate)) {
        cli_error("invalid --rate '%s': expected 1..10000 samples per second", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'd':
      if (cli_parse_double(optarg, 0.001, 86400 * 365.0, &o->duration)) {
        cli_error("invalid --duration '%s': expected a positive number of seconds", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'o': o->output = optarg; break;
    case 'f':
      if (!(o->fmt = sink_by_name(optarg))) {
        cli_error("unknown format '%s' (%s)", optarg, sink_names());
        return EXIT_USAGE;
      }
      break;
    case OPT_VIEW:
      if (!strcmp(optarg, "mixed"))
        o->view = VIEW_MIXED;
      else if (!strcmp(optarg, "vm"))
        o->view = VIEW_VM;
      else if (!strcmp(optarg, "native"))
        o->view = VIEW_NATIVE;
      else {
        cli_error("unknown --view '%s' (mixed, vm, native)", optarg);
        return EXIT_USAGE;
      }
      break;
    case 't': o->threads = 1; break;
    case 'l':
      cli_error("note: -l shows variables in a dump; a profile has none (ignored)");
      break;
    case OPT_IDLE: o->idle = 1; break;
    case OPT_MAX_DEPTH:
      if (cli_parse_long(optarg, 1, 65536, &o->max_depth)) {
        cli_error("invalid --max-depth '%s': expected 1..65536", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_NONBLOCKING: o->nonblocking = 1; break;
    case 's': o->follow = 1; break;
    case 'h':
      printf("Usage: vmstack record (-p PID | -- CMD ARGS...) [-r HZ] [-d SECS] [-o FILE] "
             "[-f %s] [--view mixed|vm|native] [-t] [--idle] [-s] [--nonblocking]\n",
             sink_names());
      return -1;
    default:
      return cli_opt_error(c, argv);
    }
  }
  if (optind < argc) {
    if (strcmp(argv[optind - 1], "--") || o->pid) {
      cli_error(o->pid ? "give either -p PID or -- CMD, not both" : "unexpected argument '%s'",
                argv[optind]);
      return EXIT_USAGE;
    }
    o->cmd = &argv[optind];
  }
  if (!o->pid && !o->cmd) {
    cli_error("no target: give -p PID or -- CMD ARGS...");
    return EXIT_USAGE;
  }
  if (o->output && strcmp(o->output, "-") && !o->fmt && !(o->fmt = sink_by_file(o->output))) {
    cli_error("cannot tell the format from '%s': give -f %s", o->output, sink_names());
    return EXIT_USAGE;
  }
  if (!o->fmt)
    o->fmt = &sinks[0];
  if (o->nonblocking && o->view == VIEW_NATIVE) {
    cli_error("--nonblocking reads VM stacks only: --view native has nothing to show");
    return EXIT_USAGE;
  }
  return 0;
}

/* Start CMD; return its pid once it runs the new program (the exec is confirmed by the
 * close-on-exec pipe closing), or -1 after an error line. */
static pid_t spawn(char **cmd)
{
  int p[2];
  if (pipe2(p, O_CLOEXEC))
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    close(p[0]);
    execvp(cmd[0], cmd);
    int e = errno;
    if (write(p[1], &e, sizeof e) < 0)
      _exit(127);
    _exit(127);
  }
  close(p[1]);
  int e = 0;
  ssize_t n = read(p[0], &e, sizeof e);
  close(p[0]);
  if (n > 0) {
    waitpid(pid, NULL, 0);
    cli_error("cannot run '%s': %s", cmd[0], strerror(e));
    return -1;
  }
  return pid;
}

/* A command we started whose recording could not begin is not left running. */
static void discard_child(pid_t child)
{
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
}

int cmd_record(int argc, char **argv)
{
  struct ropts o = { 0 };
  int r = parse(argc, argv, &o);
  if (r)
    return r < 0 ? EXIT_OK : r;
  pid_t child = 0;
  if (o.cmd) {
    child = spawn(o.cmd);
    if (child < 0)
      return EXIT_FATAL;
    o.pid = child;
  }
  struct target *t;
  if ((r = target_open(o.pid, &t))) {
    discard_child(child);
    return cli_target_error(o.pid, r);
  }
  /* the output first: a file that cannot be written is said before any recording, and the
   * profile is written beside it and renamed over it once whole */
  char path[512], tmp[600];
  char stamp[32];
  time_t now = time(NULL);
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
  if (o.output)
    snprintf(path, sizeof path, "%s", o.output);
  else {
    /* (the process names it: anything but a plain name's characters becomes '_') */
    char comm[sizeof t->comm];
    snprintf(comm, sizeof comm, "%s", t->comm);
    for (char *c = comm; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '.' || *c == '_' || *c == '-'))
        *c = '_';
    snprintf(path, sizeof path, "%s-%d-%s.%s", comm[0] == '.' ? "_" : comm, (int)t->pid, stamp,
             sink_ext(o.fmt));
  }
  int to_stdout = !strcmp(path, "-");
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
  FILE *f = to_stdout ? stdout : fopen(tmp, "wxe");
  if (!f) {
    cli_error("cannot write %s: %s", path, strerror(errno));
    target_close(t);
    discard_child(child);
    return EXIT_FATAL;
  }
  struct record_opts ro = {
    .rate = o.rate, .duration = o.duration, .view = o.view, .idle = o.idle, .max_depth = (size_t)o.max_depth, .stack_bytes = UNWIND_CAPTURE_DEFAULT,
    .progress = isatty(2), .follow = o.follow, .nonblocking = o.nonblocking,
  };
  struct profile *p = NULL;
  struct profile_stats st;
  r = record_run(t, &ro, &p, &st);
  if (r) {
    int code = cli_target_error(o.pid, r);
    if (!to_stdout) {
      fclose(f);
      unlink(tmp);
    }
    target_close(t);
    discard_child(child);
    return code;
  }
  /* the target runs freely from here on: name frames, write the file */
  int code = EXIT_OK;
  {
    char title[160], sub[200];
    if (st.processes > 1)
      snprintf(title, sizeof title, "%s (pid %d) and %zu child processes", t->comm,
               (int)t->pid, st.processes - 1);
    else
      snprintf(title, sizeof title, "%s (pid %d)", t->comm, (int)t->pid);
    snprintf(sub, sizeof sub, "%llu samples at %g Hz over %.1f s, %s view",
             (unsigned long long)st.samples, o.rate, st.seconds,
             o.view == VIEW_VM ? "VM" : o.view == VIEW_NATIVE ? "native" : "mixed");
    struct profile_meta m = { title, sub, (int)t->pid, o.rate, st.seconds, o.threads, 0,
                              PROFILE_SECOND_NONE };
    r = o.fmt->write(f, p, &m);
    if ((!to_stdout && (fclose(f) || r || rename(tmp, path))) || (to_stdout && fflush(f)) || r) {
      cli_error("cannot write %s: %s", path, strerror(errno ? errno : EIO));
      if (!to_stdout)
        unlink(tmp);
      code = EXIT_FATAL;
    } else {
      fprintf(stderr, "Wrote %s (%llu samples, %llu errors, %llu late)\n",
              to_stdout ? "to stdout" : path, (unsigned long long)st.samples,
              (unsigned long long)st.errors, (unsigned long long)st.late);
      if (st.errors) {
        /* errors by cause, most frequent first */
        char line[1024];
        size_t l = (size_t)snprintf(line, sizeof line, "%llu errors:",
                                    (unsigned long long)st.errors);
        int done[PROFILE_CAUSES] = { 0 };
        for (int k = 0; k < PROFILE_CAUSES; k++) {
          int best = -1;
          for (int i = 0; i < PROFILE_CAUSES; i++)
            if (st.causes[i].n && !done[i] && (best < 0 || st.causes[i].n > st.causes[best].n))
              best = i;
          if (best < 0)
            break;
          done[best] = 1;
          if (l < sizeof line)
            l += (size_t)snprintf(line + l, sizeof line - l, "%s %llu %s", k ? "," : "",
                                  (unsigned long long)st.causes[best].n, st.causes[best].what);
        }
        if (st.other_causes && l < sizeof line)
          snprintf(line + l, sizeof line - l, ", %llu other",
                   (unsigned long long)st.other_causes);
        cli_error("%s", line);
        /* (a profile with many unread samples is partial: said by the exit status too) */
        if (st.errors > 10 && st.errors * 10 > st.samples + st.errors) {
          cli_error("more than 10%% of the samples could not be read: exit status 1");
          code = EXIT_PARTIAL;
        }
      }
      if (st.cut)
        cli_error("%llu samples have their VM frames but a native stack cut short",
                  (unsigned long long)st.cut);
      if (st.late * 10 > st.samples + 10)
        cli_error("warning: %llu samples came late: the rate of %g Hz could not be kept",
                  (unsigned long long)st.late, o.rate);
      if (st.target_gone && !child)
        cli_error("target %d exited while being recorded", (int)o.pid);
    }
  }
  profile_free(p);
  target_close(t);
  if (child)
    waitpid(child, NULL, WNOHANG);
  return code;
}
