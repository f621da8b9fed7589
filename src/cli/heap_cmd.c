/* The heap verb: where a process's VM memory is, by object and reference path. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vmstack/err.h"
#include "vmstack/frames.h"
#include "vmstack/heaprun.h"
#include "vmstack/profile.h"
#include "vmstack/runtime.h"
#include "vmstack/sink.h"
#include "vmstack/sinkheap.h"
#include "vmstack/target.h"

enum { OPT_BY = 300, OPT_MAX_COPY, OPT_MAX_OBJECTS, OPT_TOP, OPT_BASELINE };

/* Heap outputs: the report (text, json) or a profile sink (flamegraph, folded, ...) */
struct hopts {
  pid_t pid;
  const char *output;
  const char *format;       /* "text", "json", or a sink's name */
  const struct sink *sink;
  int by_type;
  const char *baseline;     /* an earlier JSON report to compare with */
  uint64_t max_copy;
  long max_objects, top;
};

static const char usage[] =
  "Usage: vmstack heap -p PID [-o FILE] [-f FORMAT] [--by path|type] [--top N]\n"
  "                    [--baseline FILE.json] [--max-copy SIZE] [--max-objects N]\n"
  "Where the memory of the process's VM is: every object, by the shortest reference path\n"
  "from a root and the dominator tree (what freeing an object would give back).\n"
  "  -p, --pid PID         target process\n"
  "  -o, --output FILE     write FILE instead of the text report on stdout; the format\n"
  "                        from its name: .svg memory flame graph, .folded, .json report,\n"
  "                        .pb.gz pprof heap profile (inuse_objects, inuse_space)\n"
  "  -f, --format F        text, json, flamegraph, folded or pprof\n"
  "      --by path|type    flame graph by reference path (default) or by type and class\n"
  "      --top N           largest retainers listed (default 20)\n"
  "      --baseline F.json compare with an earlier report (-o F.json) of the process:\n"
  "                        where the memory grew; folded output gets two counts per\n"
  "                        stack (before after: flamegraph.pl's difffolded format),\n"
  "                        the SVG shows growth red and shrinking blue\n"
  "      --max-copy SIZE   copy at most SIZE bytes (K, M, G) of the process's writable\n"
  "                        memory (default: half the available memory); beyond it the\n"
  "                        heap is walked in the live process while it is held stopped\n"
  "      --max-objects N   stop enumerating after N objects (default 100000000)\n";

static int parse_size(const char *s, uint64_t *ret)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v <= 0)
    return -1;
  double mul = 1;
  if (*end == 'K' || *end == 'k')
    mul = 1024, end++;
  else if (*end == 'M' || *end == 'm')
    mul = 1024.0 * 1024, end++;
  else if (*end == 'G' || *end == 'g')
    mul = 1024.0 * 1024 * 1024, end++;
  if (*end == 'i' && end[1] == 'B')
    end += 2;
  else if (*end == 'B')
    end++;
  if (*end || v * mul > 1e18)
    return -1;
  *ret = (uint64_t)(v * mul);
  return 0;
}

static int parse(int argc, char **argv, struct hopts *o)
{
  static const struct option lo[] = {
    { "pid", required_argument, NULL, 'p' },
    { "output", required_argument, NULL, 'o' },
    { "format", required_argument, NULL, 'f' },
    { "by", required_argument, NULL, OPT_BY },
    { "top", required_argument, NULL, OPT_TOP },
    { "baseline", required_argument, NULL, OPT_BASELINE },
    { "max-copy", required_argument, NULL, OPT_MAX_COPY },
    { "max-objects", required_argument, NULL, OPT_MAX_OBJECTS },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  o->max_objects = 100000000;
  o->top = 20;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":p:o:f:h", lo, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (cli_opt_pid(optarg, &o->pid))
        return EXIT_USAGE;
      break;
    case 'o': o->output = optarg; break;
    case 'f': o->format = optarg; break;
    case OPT_BY:
      if (strcmp(optarg, "path") && strcmp(optarg, "type")) {
        cli_error("unknown --by '%s' (path, type)", optarg);
        return EXIT_USAGE;
      }
      o->by_type = !strcmp(optarg, "type");
      break;
    case OPT_TOP:
      if (cli_parse_long(optarg, 1, 100000, &o->top)) {
        cli_error("invalid --top '%s': expected 1..100000", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_BASELINE: o->baseline = optarg; break;
    case OPT_MAX_COPY:
      if (parse_size(optarg, &o->max_copy)) {
        cli_error("invalid --max-copy '%s': expected a size such as 512M or 2G", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_MAX_OBJECTS:
      if (cli_parse_long(optarg, 1000, 2000000000, &o->max_objects)) {
        cli_error("invalid --max-objects '%s': expected 1000..2000000000", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'h':
      fputs(usage, stdout);
      return -1;
    default:
      return cli_opt_error(c, argv);
    }
  }
  if (optind < argc) {
    cli_error("unexpected argument '%s'", argv[optind]);
    return EXIT_USAGE;
  }
  if (!o->pid) {
    cli_error("no target: give -p PID");
    return EXIT_USAGE;
  }
  if (!o->format && o->output && strcmp(o->output, "-")) {
    size_t l = strlen(o->output);
    if (l > 5 && !strcmp(o->output + l - 5, ".json"))
      o->format = "json";
    else if (!(o->sink = sink_by_file(o->output))) {
      cli_error("cannot tell the format from '%s': give -f text, json or %s", o->output,
                sink_names());
      return EXIT_USAGE;
    }
  }
  if (o->format && strcmp(o->format, "text") && strcmp(o->format, "json") &&
      !(o->sink = sink_by_name(o->format))) {
    cli_error("unknown format '%s' (text, json, %s)", o->format, sink_names());
    return EXIT_USAGE;
  }
  if (o->sink && !strcmp(o->sink->name, "speedscope")) {
    cli_error("speedscope: not for heap snapshots (text, json, flamegraph, folded, pprof)");
    return EXIT_USAGE;
  }
  if (o->baseline && o->sink && !strcmp(o->sink->name, "pprof")) {
    cli_error("--baseline: pprof compares two profiles itself (write each with -o F.pb.gz, "
              "then go tool pprof -diff_base BEFORE.pb.gz AFTER.pb.gz)");
    return EXIT_USAGE;
  }
  return 0;
}

static int add_stack(void *arg, const char *const *names, size_t n, uint64_t bytes,
                     uint64_t objects)
{
  return profile_add_names(arg, names, n, FK_FUNCTION, bytes, objects);
}

/* a comparison: the bytes now weigh, the baseline's are the second weight */
static int add_diff(void *arg, const char *const *names, size_t n, uint64_t before,
                    uint64_t after)
{
  return profile_add_names(arg, names, n, FK_FUNCTION, after, before);
}

int cmd_heap(int argc, char **argv)
{
  struct hopts o = { 0 };
  int r = parse(argc, argv, &o);
  if (r)
    return r < 0 ? EXIT_OK : r;
  struct heap_base *base = NULL;
  if (o.baseline && (r = heap_base_load(o.baseline, &base))) {
    cli_error("cannot read the baseline %s: %s", o.baseline,
              r == -EINVAL ? "not a JSON report of vmstack heap (-o FILE.json)" : strerror(-r));
    return EXIT_FATAL;
  }
  /* the output first: a file that cannot be written is said before the process stops */
  /* (written beside it and renamed over it once whole: a failed run leaves an existing
   * FILE, perhaps the only baseline, as it was) */
  int to_stdout = !o.output || !strcmp(o.output, "-");
  char tmp[4200];
  if (!to_stdout && snprintf(tmp, sizeof tmp, "%s.tmp%d", o.output, (int)getpid()) >= (int)sizeof tmp) {
    cli_error("cannot write %s: %s", o.output, strerror(ENAMETOOLONG));
    heap_base_free(base);
    return EXIT_FATAL;
  }
  FILE *f = to_stdout ? stdout : fopen(tmp, "wxe");
  if (!f) {
    cli_error("cannot write %s: %s", o.output, strerror(errno));
    heap_base_free(base);
    return EXIT_FATAL;
  }
  struct target *t;
  if ((r = target_open(o.pid, &t))) {
    if (!to_stdout) {
      fclose(f);
      unlink(tmp);
    }
    heap_base_free(base);
    return cli_target_error(o.pid, r);
  }
  struct heap_run_opts ho = {
    .heap = { .max_objects = (size_t)o.max_objects, .by_type = o.by_type },
    .max_copy = o.max_copy,
  };
  if (base && heap_base_pid(base) != (int)o.pid)
    cli_error("note: the baseline is of process %d, this is %d: the paths are compared as "
              "they are", heap_base_pid(base), (int)o.pid);
  struct heap_run run;
  r = heap_run(t, &ho, &run);
  int code = EXIT_OK;
  if (r == -VMS_E_NORUNTIME) {
    cli_error("no VM runtime found in process %d", (int)o.pid);
    code = EXIT_FATAL;
  } else if (r == -VMS_E_UNSUPPORTED) {
    cli_error("unsupported: %s", run.describe);
    code = EXIT_FATAL;
  } else if (r == -EINTR) {
    cli_error("interrupted: the process was let go; nothing written");
    code = EXIT_FATAL;
  } else if (r) {
    code = cli_target_error(o.pid, r);
  } else if (base && heap_base_runtime(base)[0] &&
             strcmp(heap_base_runtime(base), run.runtime ? run.runtime : "")) {
    cli_error("--baseline: %s is a report of a %s heap, process %d runs %s: nothing to "
              "compare", o.baseline, heap_base_runtime(base), (int)o.pid,
              run.runtime ? run.runtime : "another runtime");
    code = EXIT_FATAL;
  } else if (o.sink) {
    struct profile *p = profile_new();
    if (!p)
      r = -ENOMEM;
    else if (base)
      r = heap_diff_each(run.h, base, add_diff, p);
    else
      r = heap_each_stack(run.h, add_stack, p);
    struct heap_summary s;
    heap_get_summary(run.h, &s);
    char title[200], sub[400];
    snprintf(title, sizeof title, "%s (pid %d): memory %sby %s", t->comm, (int)t->pid,
             base ? "growth " : "", o.by_type ? "type" : "reference path");
    if (base)
      snprintf(sub, sizeof sub, "%llu bytes in %llu objects, against %s (red: grew, blue: "
               "shrank; widths: now); %s", (unsigned long long)s.bytes,
               (unsigned long long)s.objects, o.baseline, run.describe);
    else
      snprintf(sub, sizeof sub, "%llu bytes in %llu objects; %s", (unsigned long long)s.bytes,
               (unsigned long long)s.objects, run.describe);
    struct profile_meta m = { title, sub, (int)t->pid, 0, 0, 0, 1,
                              base ? PROFILE_SECOND_BEFORE : PROFILE_SECOND_OBJECTS };
    if (!r)
      r = o.sink->write(f, p, &m);
    profile_free(p);
    if (r)
      code = EXIT_FATAL;
  } else if (o.format && !strcmp(o.format, "json")) {
    code = heap_write_json(f, t, &run, (size_t)o.top, base) ? EXIT_FATAL : EXIT_OK;
  } else {
    code = heap_write_text(f, t, &run, (size_t)o.top, base) ? EXIT_FATAL : EXIT_OK;
  }
  if (!r && run.enum_err && code == EXIT_OK)
    code = EXIT_PARTIAL;
  if ((!to_stdout && (fclose(f) || (code != EXIT_FATAL && rename(tmp, o.output)))) ||
      (to_stdout && fflush(f))) {
    cli_error("cannot write %s: %s", to_stdout ? "to stdout" : o.output, strerror(errno));
    if (!to_stdout)
      unlink(tmp);
    code = EXIT_FATAL;
  } else if (!to_stdout && code != EXIT_FATAL) {
    struct heap_summary s;
    heap_get_summary(run.h, &s);
    fprintf(stderr, "Wrote %s (%llu objects, %llu bytes; paused %.1f ms)\n", o.output,
            (unsigned long long)s.objects, (unsigned long long)s.bytes, run.pause_ms);
  } else if (!to_stdout) {
    unlink(tmp);
  }
  heap_run_free(&run);
  heap_base_free(base);
  target_close(t);
  return code;
}
