/* CLI helpers: strict number parsing and error lines with remedies. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vmstack/json.h"
#include "vmstack/runtime.h"
#include "vmstack/err.h"

static const char *progname = "vmstack";

int cli_parse_long(const char *s, long min, long max, long *ret)
{
  if (!s || !*s || (*s == '-' && min >= 0) || *s == '+' || *s == ' ')
    return -EINVAL;
  errno = 0;
  char *end;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < min || v > max)
    return -EINVAL;
  *ret = v;
  return 0;
}

int cli_parse_pid(const char *s, pid_t *ret)
{
  long v;
  if (cli_parse_long(s, 1, INT_MAX, &v))
    return -EINVAL;
  *ret = (pid_t)v;
  return 0;
}

int cli_parse_double(const char *s, double min, double max, double *ret)
{
  char *end;
  if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
    return -EINVAL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !(v >= min && v <= max))
    return -EINVAL;
  *ret = v;
  return 0;
}

int cli_opt_pid(const char *arg, pid_t *ret)
{
  if (!cli_parse_pid(arg, ret))
    return 0;
  cli_error("invalid PID '%s': expected a positive number", arg);
  return EXIT_USAGE;
}

int cli_opt_error(int c, char **argv)
{
  if (c == ':')
    cli_error("option '%s' needs a value", argv[optind - 1]);
  else
    cli_error("unknown option '%s'", argv[optind - 1]);
  return EXIT_USAGE;
}

void cli_error(const char *fmt, ...)
{
  /* (messages carry names from the target and paths from the command line: the whole
   * line goes out escaped, one line whatever they hold) */
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s: ", progname);
  text_put(stderr, msg);
  fputc('\n', stderr);
}

static int read_int_file(const char *path, int dflt)
{
  char buf[32];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return dflt;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return dflt;
  buf[n] = 0;
  return atoi(buf);
}

static int have_cap_sys_ptrace(void)
{
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  unsigned long long caps = 0;
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "CapEff:", 7))
      caps = strtoull(line + 7, NULL, 16);
  fclose(f);
  return (caps >> 19) & 1;   /* CAP_SYS_PTRACE */
}

static int in_container(void)
{
  if (!access("/.dockerenv", F_OK) || !access("/run/.containerenv", F_OK))
    return 1;
  FILE *f = fopen("/proc/1/cgroup", "re");
  char line[512];
  int yes = 0;
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, "docker") || strstr(line, "kubepods") || strstr(line, "containerd") ||
        strstr(line, "libpod"))
      yes = 1;
  fclose(f);
  return yes;
}

/* What stops us from tracing, said as a remedy. */
static void perm_hint(char *buf, size_t cap)
{
  int scope = read_int_file("/proc/sys/kernel/yama/ptrace_scope", -1);
  int capok = have_cap_sys_ptrace();
  size_t n = 0;
  if (scope == 3)
    n += (size_t)snprintf(buf + n, cap - n,
                          "ptrace is disabled by kernel.yama.ptrace_scope=3 until reboot");
  else if (!capok && scope == 2)
    n += (size_t)snprintf(buf + n, cap - n,
                          "kernel.yama.ptrace_scope=2 allows only CAP_SYS_PTRACE: run as root");
  else if (!capok && scope == 1)
    n += (size_t)snprintf(buf + n, cap - n,
                          "need CAP_SYS_PTRACE (run as root): kernel.yama.ptrace_scope=1 lets "
                          "others trace only their own descendants");
  else if (!capok)
    n += (size_t)snprintf(buf + n, cap - n,
                          "need CAP_SYS_PTRACE (run as root) or the target's user");
  else
    n += (size_t)snprintf(buf + n, cap - n,
                          "have CAP_SYS_PTRACE: a security module (AppArmor, SELinux) or "
                          "seccomp denies ptrace");
  if (in_container() && n < cap)
    snprintf(buf + n, cap - n,
             "; in Docker run with --cap-add SYS_PTRACE (and --pid=host or --pid=container:X"
             " to see the target), in Kubernetes add SYS_PTRACE to "
             "securityContext.capabilities.add");
}

/* TracerPid of this process (0: none). */
static pid_t tracer_of_self(void)
{
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  long tp = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "TracerPid: %ld", &tp) == 1)
      break;
  if (f)
    fclose(f);
  return (pid_t)tp;
}

int cli_target_error(pid_t pid, int err)
{
  char hint[512];
  switch (-err) {
  case VMS_E_NOPROC:
    cli_error("no such process: %d", (int)pid);
    return EXIT_FATAL;
  case VMS_E_KTHREAD:
    cli_error("process %d is a kernel thread: it has no user-space stack to show", (int)pid);
    return EXIT_FATAL;
  case VMS_E_ZOMBIE:
    cli_error("process %d is a zombie: it has exited and waits for its parent to reap it",
              (int)pid);
    return EXIT_FATAL;
  case VMS_E_TRACED:
    cli_error("cannot attach to %d: it is already traced by another process (a debugger or "
              "profiler; see TracerPid in /proc/%d/status)", (int)pid, (int)pid);
    return EXIT_FATAL;
  case VMS_E_GONE:
    cli_error("target %d exited while being read", (int)pid);
    return EXIT_FATAL;
  case VMS_E_NONBLOCKING: {
    /* the runtimes that can, from the registry */
    char can[128] = "";
    size_t len = 0;
    for (size_t i = 0; vm_runtimes[i]; i++)
      if ((vm_runtimes[i]->caps & VM_CAP_NONBLOCKING) && len < sizeof can)
        len += (size_t)snprintf(can + len, sizeof can - len, "%s%s", len ? ", " : "",
                                vm_runtimes[i]->lang);
    cli_error("--nonblocking: no runtime in process %d can be read without stopping it "
              "(%s can; native stacks need a stop)", (int)pid, can[0] ? can : "none");
    return EXIT_USAGE;
  }
  case EPERM:
  case EACCES:
    if (pid == getpid()) {
      cli_error("cannot attach to %d: it is this vmstack process (a process cannot trace "
                "itself)", (int)pid);
      return EXIT_FATAL;
    }
    if (pid == tracer_of_self()) {
      cli_error("cannot attach to %d: it traces this vmstack process (a debugger or strace "
                "over vmstack cannot be its target)", (int)pid);
      return EXIT_FATAL;
    }
    perm_hint(hint, sizeof hint);
    cli_error("cannot attach to %d: %s (%s)", (int)pid, strerror(-err), hint);
    return EXIT_FATAL;
  default:
    cli_error("cannot read process %d: %s", (int)pid, vms_strerror(err));
    return EXIT_FATAL;
  }
}

void cli_set_progname(const char *p)
{
  progname = p;
}
