/* The table of profile formats (sink.h). */
#include <stdio.h>
#include <string.h>

#include "vmstack/profile.h"
#include "vmstack/sink.h"

const struct sink sinks[] = {
  { "flamegraph", "svg", ".svg", output_flamegraph },
  { "folded", "collapsed", ".folded .txt", output_folded },
  { "speedscope", "", ".json", output_speedscope },
  { "pprof", "", ".pb.gz", output_pprof },
  { NULL, NULL, NULL, NULL },
};

/* s is one of the space-separated words of list */
static int in_list(const char *list, const char *s, size_t n)
{
  for (const char *w = list; *w;) {
    size_t l = strcspn(w, " ");
    if (l == n && !strncmp(w, s, n))
      return 1;
    w += l;
    while (*w == ' ')
      w++;
  }
  return 0;
}

const struct sink *sink_by_name(const char *name)
{
  for (const struct sink *s = sinks; s->name; s++)
    if (!strcmp(s->name, name) || in_list(s->aliases, name, strlen(name)))
      return s;
  return NULL;
}

const struct sink *sink_by_file(const char *path)
{
  size_t pl = strlen(path);
  for (const struct sink *s = sinks; s->name; s++)
    for (const char *w = s->exts; *w;) {
      size_t l = strcspn(w, " ");
      if (pl > l && !strncmp(path + pl - l, w, l))
        return s;
      w += l;
      while (*w == ' ')
        w++;
    }
  return NULL;
}

const char *sink_ext(const struct sink *s)
{
  /* the first ending, without its dot */
  static char ext[16];
  const char *e = s->exts + (s->exts[0] == '.');
  snprintf(ext, sizeof ext, "%.*s", (int)strcspn(e, " "), e);
  return ext;
}

const char *sink_names(void)
{
  static char buf[128];
  size_t n = 0;
  buf[0] = 0;
  for (const struct sink *s = sinks; s->name && n < sizeof buf; s++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? "|" : "", s->name);
  return buf;
}
