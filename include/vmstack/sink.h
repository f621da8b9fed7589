/* Sinks: the formats a profile is written in, one table (src/sink/sinks.c). A new format
 * is a writer and a row there. */
#ifndef VMSTACK_SINK_H
#define VMSTACK_SINK_H

#include <stdio.h>

struct profile;
struct profile_meta;

struct sink {
  const char *name;        /* "flamegraph": -f's value */
  const char *aliases;     /* other -f values, space-separated ("svg") */
  const char *exts;        /* file name endings that choose it, space-separated */
  int (*write)(FILE *f, struct profile *p, const struct profile_meta *m);
};

/* Every sink, the default (flamegraph) first; ends with a row whose name is NULL. */
extern const struct sink sinks[];
const struct sink *sink_by_name(const char *name);
/* By the end of the file name (".svg", ".pb.gz"); NULL when none fits. */
const struct sink *sink_by_file(const char *path);
/* The extension of the sink's default output file name ("svg"), without the dot. */
const char *sink_ext(const struct sink *s);
/* "flamegraph|folded|speedscope|pprof" for messages. */
const char *sink_names(void);

/* A frame name for folded stacks (';' and unsafe bytes as \xNN). */
void folded_put(FILE *f, const char *s);

#endif
