/* Heap reports (src/sink/heap_report.c): text and JSON. The memory flame graph and the
 * other profile formats go through the profile sinks (sink.h). */
#ifndef VMSTACK_SINKHEAP_H
#define VMSTACK_SINKHEAP_H

#include <stddef.h>
#include <stdio.h>

struct target;
struct heap_run;

/* Totals, the census by type, the top largest retainers with their paths. */
int heap_write_text(FILE *f, const struct target *t, const struct heap_run *run, size_t top);
int heap_write_json(FILE *f, const struct target *t, const struct heap_run *run, size_t top);

#endif
