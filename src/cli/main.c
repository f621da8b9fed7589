/* vmstack entry point: verbs, and the runtimes' aliases (lua-stack ...) chosen by argv[0]. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "vmstack/runtime.h"
#include "vmstack/seams.h"
#include "vmstack/target.h"

#ifndef VMSTACK_VERSION
#define VMSTACK_VERSION "0"
#endif

static const char usage[] =
  "Usage: vmstack VERB [OPTIONS]\n"
  "\n"
  "See inside a running process: native and interpreter (VM) stacks of every thread,\n"
  "read from outside with ptrace, without stopping it for more than microseconds.\n"
  "\n"
  "Verbs:\n"
  "  dump -p PID     print the stack of every thread once\n"
  "  record -p PID   sample stacks and write a flame graph (or -- CMD ARGS...)\n"
  "  top -p PID      live table of the functions it spends its time in (q quits)\n"
  "  heap -p PID     where the VM's memory is: objects by reference path, retained\n"
  "                  sizes, a memory flame graph (vmstack heap --help)\n"
  "\n"
  "dump options:\n"
  "  -p, --pid PID         target process (a thread id selects its process)\n"
  "  -j, --json            JSON instead of text\n"
  "  -n, --native          native frames only (no VM frames)\n"
  "      --vm-only         VM frames only (and each alias's own, see below)\n"
  "      --coroutines      also the stacks of suspended coroutines\n"
  "  -l, --locals          every Lua and Perl frame's variables with their values,\n"
  "                        under the frame (locals, varargs, upvalues; my, @_)\n"
  "      --max-string N    bytes of a string value shown (default 120, at most 65536)\n"
  "      --preview N       entries of a table shown (default 8)\n"
  "      --all-slots       also the stack slots no variable names\n"
  "      --save-snapshot F also save what was read to F (registers, maps, memory);\n"
  "                        gzip-compressed when F ends in .gz\n"
  "      --embed-files     with --save-snapshot: also keep the parts of the module files\n"
  "                        the dump used, so that F replays on another machine\n"
  "      --snapshot F      replay F (saved with --save-snapshot) instead of -p PID\n"
  "  -s, --source          file:line of native frames from DWARF (the binary's own or\n"
  "                        a separate debug file); slower on large debug files\n"
  "      --max-depth N     native frames per thread at most (default 256); VM frames\n"
  "                        at most N or 4096, whichever is more\n"
  "      --stack-bytes N   stack bytes copied per thread while it is stopped\n"
  "                        (default 65536; deeper frames are read after it resumes)\n"
  "\n"
  "record options:\n"
  "  -r, --rate HZ         samples per second per thread (default 99, random intervals)\n"
  "  -d, --duration SECS   stop after that long (default: at Ctrl-C or when it exits)\n"
  "  -o, --output FILE     where to write (default COMM-PID-DATE.svg; - for stdout)\n"
  "  -f, --format F        flamegraph (.svg), folded (.folded, .txt), speedscope (.json) or\n"
  "                        pprof (.pb.gz); default from -o's extension, else flamegraph\n"
  "      --view V          mixed (native + VM), vm or native frames\n"
  "  -t, --threads         a frame naming the thread at the root of each stack\n"
  "      --idle            keep samples of sleeping threads (wall-clock, not CPU, view)\n"
  "  -s, --subprocesses    also sample the child processes, those started later too\n"
  "      --nonblocking     read VM stacks without stopping threads (Perl; no native\n"
  "                        frames)\n"
  "\n"
  "Other options:\n"
  "  -h, --help            this text\n"
  "  -V, --version         version\n"
  "\n"
  "@ALIASES@"
  "Exit status:\n"
  "  0   success\n"
  "  1   partial: some threads or frames could not be read (record: over 10% of\n"
  "      the samples)\n"
  "  2   fatal: no such process, permission denied, unsupported runtime, target gone\n"
  "  64  usage error\n"
  "\n"
  "Needs ptrace rights over the target: root, CAP_SYS_PTRACE, or the same user when\n"
  "kernel.yama.ptrace_scope allows it. The target is never written to and never left\n"
  "stopped, also when vmstack is interrupted.\n";

/* The usage text with the aliases of the runtimes built in. */
static void print_usage(FILE *f)
{
  const char *at = strstr(usage, "@ALIASES@");
  fwrite(usage, 1, (size_t)(at - usage), f);
  fputs("Aliases (dump limited to one runtime):\n", f);
  for (size_t i = 0; vm_runtimes[i]; i++)
    if (vm_runtimes[i]->alias)
      fprintf(f, "  %-22s%s stacks; --%s keeps only its frames\n",
              vm_runtimes[i]->alias, vm_runtimes[i]->lang, vm_runtimes[i]->only);
  fputs("\n", f);
  fputs(at + strlen("@ALIASES@"), f);
}

static const char *base(const char *p)
{
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

int main(int argc, char **argv)
{
  struct opts o = { .prog = "vmstack" };
  const char *b = base(argc > 0 ? argv[0] : "vmstack");
  target_guard_install();
  seams_init();
  const struct vm_runtime *rt = vm_runtime_by_alias(b);
  if (rt) {
    o.prog = rt->alias;
    o.rt = rt;
    cli_set_progname(o.prog);
    return cmd_dump(argc, argv, &o);
  }
  if (argc < 2) {
    print_usage(stderr);
    return EXIT_USAGE;
  }
  const char *verb = argv[1];
  if (!strcmp(verb, "-h") || !strcmp(verb, "--help") || !strcmp(verb, "help")) {
    print_usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(verb, "-V") || !strcmp(verb, "--version")) {
    printf("vmstack %s\n", VMSTACK_VERSION);
    return EXIT_OK;
  }
  if (!strcmp(verb, "dump"))
    return cmd_dump(argc - 1, argv + 1, &o);
  if (!strcmp(verb, "record"))
    return cmd_record(argc - 1, argv + 1);
  if (!strcmp(verb, "top"))
    return cmd_top(argc - 1, argv + 1);
  if (!strcmp(verb, "heap"))
    return cmd_heap(argc - 1, argv + 1);
  cli_error("unknown verb '%s' (try 'vmstack --help')", verb);
  return EXIT_USAGE;
}
