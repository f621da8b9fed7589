/* Heap reports (src/sink/heap_report.c): text and JSON. The memory flame graph and the
 * other profile formats go through the profile sinks (sink.h). */
#ifndef VMSTACK_SINKHEAP_H
#define VMSTACK_SINKHEAP_H

#include <stddef.h>
#include <stdio.h>

struct target;
struct heap_run;

struct heap_base;

/* Totals, the census by type, the top largest retainers with their paths, and with a
 * baseline (an earlier JSON report, or NULL) where the memory grew since. The JSON also
 * holds every stack of the flame graph, one per line (what a later baseline reads). */
int heap_write_text(FILE *f, const struct target *t, const struct heap_run *run, size_t top,
                    const struct heap_base *base);
int heap_write_json(FILE *f, const struct target *t, const struct heap_run *run, size_t top,
                    const struct heap_base *base);

#endif
