/* The dump verb (and the runtimes' aliases, lua-stack ...): options, run, output, exit code. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "vmstack/dump.h"
#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"

enum { OPT_MAX_DEPTH = 256, OPT_STACK_BYTES, OPT_NONBLOCKING, OPT_VM_ONLY, OPT_COROUTINES,
       OPT_SAVE_SNAPSHOT, OPT_SNAPSHOT, OPT_EMBED_FILES, OPT_MAX_STRING, OPT_PREVIEW,
       OPT_ALL_SLOTS };

static int parse(int argc, char **argv, struct opts *o)
{
  static const struct option base[] = {
    { "pid", required_argument, NULL, 'p' },
    { "json", no_argument, NULL, 'j' },
    { "native", no_argument, NULL, 'n' },
    { "source", no_argument, NULL, 's' },
    { "locals", no_argument, NULL, 'l' },
    { "nonblocking", no_argument, NULL, OPT_NONBLOCKING },
    { "max-depth", required_argument, NULL, OPT_MAX_DEPTH },
    { "stack-bytes", required_argument, NULL, OPT_STACK_BYTES },
    { "vm-only", no_argument, NULL, OPT_VM_ONLY },
    { "coroutines", no_argument, NULL, OPT_COROUTINES },
    { "save-snapshot", required_argument, NULL, OPT_SAVE_SNAPSHOT },
    { "snapshot", required_argument, NULL, OPT_SNAPSHOT },
    { "embed-files", no_argument, NULL, OPT_EMBED_FILES },
    { "max-string", required_argument, NULL, OPT_MAX_STRING },
    { "preview", required_argument, NULL, OPT_PREVIEW },
    { "all-slots", no_argument, NULL, OPT_ALL_SLOTS },
    { "help", no_argument, NULL, 'h' },
  };
  /* and each runtime's --X-only, from the registry */
  struct option lo[sizeof base / sizeof *base + 16 + 1];
  size_t nlo = sizeof base / sizeof *base;
  memcpy(lo, base, sizeof base);
  for (size_t i = 0; vm_runtimes[i] && nlo < sizeof lo / sizeof *lo - 1; i++)
    if (vm_runtimes[i]->only)
      lo[nlo++] = (struct option){ vm_runtimes[i]->only, no_argument, NULL, OPT_VM_ONLY };
  lo[nlo] = (struct option){ NULL, 0, NULL, 0 };
  const char *only = o->rt && o->rt->only ? o->rt->only : "vm-only";
  o->max_depth = UNWIND_DEPTH_DEFAULT;
  o->stack_bytes = UNWIND_CAPTURE_DEFAULT;
  o->max_string = 120;
  o->preview = 8;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":p:jnslh", lo, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (cli_opt_pid(optarg, &o->pid))
        return EXIT_USAGE;
      break;
    case 'j': o->json = 1; break;
    case 'n': o->native = 1; break;
    case 's': o->lines = 1; break;
    case 'l': o->locals = 1; break;
    case OPT_NONBLOCKING: o->nonblocking = 1; break;
    case OPT_VM_ONLY: o->vm_only = 1; break;
    case OPT_COROUTINES: o->coroutines = 1; break;
    case OPT_SAVE_SNAPSHOT: o->save_snapshot = optarg; break;
    case OPT_SNAPSHOT: o->snapshot = optarg; break;
    case OPT_EMBED_FILES: o->embed_files = 1; break;
    case OPT_ALL_SLOTS: o->all_slots = 1; break;
    case OPT_MAX_STRING:
      if (cli_parse_long(optarg, 1, 65536, &o->max_string)) {
        cli_error("invalid --max-string '%s': expected 1..65536", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_PREVIEW:
      if (cli_parse_long(optarg, 0, 10000, &o->preview)) {
        cli_error("invalid --preview '%s': expected 0..10000", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_MAX_DEPTH:
      if (cli_parse_long(optarg, 1, 65536, &o->max_depth)) {
        cli_error("invalid --max-depth '%s': expected 1..65536", optarg);
        return EXIT_USAGE;
      }
      break;
    case OPT_STACK_BYTES:
      if (cli_parse_long(optarg, 256, 64L << 20, &o->stack_bytes)) {
        cli_error("invalid --stack-bytes '%s': expected 256..67108864", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'h':
      printf("Usage: %s%s -p PID [-j|--json] [-n|--native] [--%s] [-s|--source] "
             "[-l|--locals [--max-string N] [--preview N] [--all-slots]] [--max-depth N] "
             "[--stack-bytes N]\n(see vmstack --help for exit codes)\n",
             o->prog, o->rt ? "" : " dump", only);
      return -1;
    default:
      return cli_opt_error(c, argv);
    }
  }
  if (optind < argc) {
    cli_error("unexpected argument '%s'", argv[optind]);
    return EXIT_USAGE;
  }
  if (!o->pid && !o->snapshot) {
    cli_error("no target: give -p PID");
    return EXIT_USAGE;
  }
  if (o->pid && o->snapshot) {
    cli_error("-p and --snapshot exclude each other");
    return EXIT_USAGE;
  }
  if (o->embed_files && !o->save_snapshot) {
    cli_error("--embed-files goes with --save-snapshot");
    return EXIT_USAGE;
  }
  if (o->snapshot && o->save_snapshot) {
    cli_error("--save-snapshot saves a live process: not with --snapshot");
    return EXIT_USAGE;
  }
  if (o->locals) {
    size_t i = 0;
    while (vm_runtimes[i] && !(vm_runtimes[i]->caps & VM_CAP_LOCALS))
      i++;
    if (!vm_runtimes[i] || (o->rt && !(o->rt->caps & VM_CAP_LOCALS))) {
      cli_error("--locals: not supported for %s yet", o->rt ? o->rt->noun : "any runtime");
      return EXIT_USAGE;
    }
  }
  if (o->vm_only && o->native) {
    cli_error("--native and --%s exclude each other", only);
    return EXIT_USAGE;
  }
  if (o->nonblocking) {
    cli_error("--nonblocking needs a VM runtime (native stacks need the thread stopped)");
    return EXIT_USAGE;
  }
  return 0;
}

/* The options that decide what a dump reads, kept in a snapshot: a replay reads the same
 * (the output options, -j -n --vm-only, stay free). */
#define BLOB_DUMP_OPTS "vmstack.dump_opts"
struct snap_dump_opts {
  uint64_t max_depth, stack_bytes;
  int32_t coroutines, lines;
  char only_runtime[32];
};

int cmd_dump(int argc, char **argv, struct opts *o)
{
  int r = parse(argc, argv, o);
  if (r)
    return r < 0 ? EXIT_OK : r;
  struct target *t;
  if (o->snapshot) {
    r = target_snapshot_open(o->snapshot, &t);
    if (r) {
      cli_error("cannot replay %s: %s", o->snapshot, vms_strerror(r));
      return EXIT_FATAL;
    }
    o->pid = t->pid;
  } else {
    elf_track_reads(o->embed_files);   /* (files opened from now on: for --embed-files) */
    if ((r = target_open(o->pid, &t)))
      return cli_target_error(o->pid, r);
  }
  if (o->save_snapshot)
    mem_record(t->mem, 1);   /* every read is kept for the snapshot */
  struct dump_opts dopts = {
    .max_depth = (size_t)o->max_depth,
    .stack_bytes = (size_t)o->stack_bytes,
    .lines = o->lines,
    .view = o->native ? VIEW_NATIVE : o->vm_only ? VIEW_VM : VIEW_MIXED,
    .only_runtime = o->rt ? o->rt->name : NULL,
    .coroutines = o->coroutines,
  };
  struct vm_locals_opts lopts = { (size_t)o->max_string, (size_t)o->preview, o->all_slots };
  if (o->locals)
    dopts.locals = &lopts;
  struct snap_dump_opts so;
  memset(&so, 0, sizeof so);
  if (o->snapshot) {
    const void *d;
    size_t len;
    if (!mem_blob_get(t->mem, BLOB_DUMP_OPTS, &d, &len) && len == sizeof so) {
      memcpy(&so, d, sizeof so);
      so.only_runtime[sizeof so.only_runtime - 1] = 0;
      dopts.max_depth = so.max_depth >= 1 && so.max_depth <= 65536 ? so.max_depth
                                                                    : dopts.max_depth;
      dopts.stack_bytes = so.stack_bytes >= 256 && so.stack_bytes <= (64u << 20)
                              ? so.stack_bytes : dopts.stack_bytes;
      dopts.coroutines = so.coroutines;
      dopts.lines = so.lines;
      const struct vm_runtime *srt = vm_runtime_find(so.only_runtime);
      dopts.only_runtime = srt ? srt->name : NULL;
    }
  } else if (o->save_snapshot) {
    so.max_depth = dopts.max_depth;
    so.stack_bytes = dopts.stack_bytes;
    so.coroutines = dopts.coroutines;
    so.lines = dopts.lines;
    if (dopts.only_runtime)
      snprintf(so.only_runtime, sizeof so.only_runtime, "%s", dopts.only_runtime);
    if (mem_blob_add(t->mem, BLOB_DUMP_OPTS, &so, sizeof so)) {
      cli_error("cannot save the snapshot: out of memory");
      target_close(t);
      return EXIT_FATAL;
    }
  }
  struct dump_result res;
  r = dump_collect(t, &dopts, &res);
  int code = EXIT_OK;
  if (r == -VMS_E_NORUNTIME) {
    cli_error("no %s found in process %d", o->rt ? o->rt->noun : "runtime", (int)o->pid);
    code = EXIT_FATAL;
  } else if (r == -VMS_E_UNSUPPORTED) {
    cli_error("unsupported: %s", res.runtime_err);
    code = EXIT_FATAL;
  } else if (r) {
    code = cli_target_error(o->pid, r);
  } else {
    if (res.runtime_err[0])
      cli_error("warning: %s; its frames are not shown", res.runtime_err);
    if (o->locals) {
      /* a process with no runtime that has variables to show: say so, once */
      int can = 0;
      for (size_t i = 0; i < res.nvms; i++)
        can |= res.vms[i].rt->locals != NULL;
      if (!can)
        cli_error("note: --locals: no %s in process %d, so no variables to show",
                  res.nvms ? "runtime that can show its variables" : "VM runtime", (int)o->pid);
    }
    if (o->json)
      dump_write_json(stdout, t, &res);
    else
      dump_write_text(stdout, t, &res);
    if (fflush(stdout) || ferror(stdout)) {
      cli_error("cannot write output: %s", strerror(errno));
      code = EXIT_FATAL;
    } else if (target_interrupted()) {
      cli_error("interrupted: the output is incomplete");
      code = EXIT_PARTIAL;
    } else if (dump_partial(&res)) {
      /* one line per thread that was not read, so scripts see why */
      for (size_t i = 0; i < res.n; i++) {
        const struct thread_stack *ts = &res.threads[i];
        if (ts->err && ts->err != -ESRCH)
          cli_error("thread %d not read: %s", (int)ts->tid, vms_strerror(ts->err));
      }
      code = EXIT_PARTIAL;
    }
  }
  if (o->save_snapshot && (code == EXIT_OK || code == EXIT_PARTIAL)) {
    int e = target_snapshot_save(t, o->save_snapshot, o->embed_files);
    if (e) {
      cli_error("cannot save the snapshot %s: %s", o->save_snapshot,
                e == -E2BIG ? "more than a snapshot keeps (256 MiB read, 1 GiB in all)"
                                : vms_strerror(e));
      code = EXIT_FATAL;
    }
  }
  dump_result_free(&res);
  target_close(t);
  return code;
}
