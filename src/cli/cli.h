/* Command-line layer: options, verbs, error reporting. */
#ifndef VMSTACK_CLI_H
#define VMSTACK_CLI_H

#include <stddef.h>
#include <sys/types.h>

struct vm_runtime;

enum {
  EXIT_OK = 0,
  EXIT_PARTIAL = 1,
  EXIT_FATAL = 2,
  EXIT_USAGE = 64,
};

struct opts {
  const char *prog;         /* vmstack, or a runtime's alias (lua-stack, ...) */
  const struct vm_runtime *rt;   /* the runtime the alias is restricted to, or NULL */
  pid_t pid;
  int json, native, locals, nonblocking, lines, vm_only, coroutines;
  long max_depth;
  long stack_bytes;
  const char *save_snapshot;     /* dump: also save what was read to this file */
  const char *snapshot;          /* dump: replay this file instead of a live process */
  int embed_files;               /* dump: the snapshot carries the module files it used */
  long max_string, preview;      /* dump -l: characters of a string, entries of a table */
  int all_slots;                 /* dump -l: also the slots no variable names */
};

/* Strict numbers: no sign unless allowed by min, no trailing text, no overflow. */
int cli_parse_long(const char *s, long min, long max, long *ret);
int cli_parse_pid(const char *s, pid_t *ret);
int cli_parse_double(const char *s, double min, double max, double *ret);
/* The option parsers' common lines; each prints one error line and returns EXIT_USAGE. */
int cli_opt_pid(const char *arg, pid_t *ret);
int cli_opt_error(int c, char **argv);

void cli_set_progname(const char *p);
/* One line on stderr: "vmstack: <what>" */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One line for a failure to open/attach/read the target, with the remedy; returns the
 * exit code to use. */
int cli_target_error(pid_t pid, int err);

int cmd_dump(int argc, char **argv, struct opts *o);
int cmd_record(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_heap(int argc, char **argv);

#endif
