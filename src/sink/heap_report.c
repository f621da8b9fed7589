/* Heap reports: the text summary (totals, census by type, the largest retainers with their
 * paths) and the same as JSON (also the input of a later comparison). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmstack/err.h"
#include "vmstack/heaprun.h"
#include "vmstack/json.h"
#include "vmstack/sinkheap.h"
#include "vmstack/target.h"

static const char *human(uint64_t b, char *buf, size_t cap)
{
  if (b >= (1ull << 30))
    snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
  else if (b >= (1ull << 20))
    snprintf(buf, cap, "%.1f MiB", (double)b / (1ull << 20));
  else if (b >= 1024)
    snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
  else
    snprintf(buf, cap, "%" PRIu64 " B", b);
  return buf;
}

static void growth_text(FILE *f, const struct heap_run *run, const struct heap_base *base,
                        size_t top)
{
  struct heap_growth *g;
  size_t n;
  char a[32], b[32], c[32];
  if (heap_growth(run->h, base, top, &g, &n))
    return;
  fprintf(f, "\nGrowth since the baseline (process %d then):\n  %12s %10s %12s  %s\n",
          heap_base_pid(base), "grew", "objects", "now", "path");
  for (size_t i = 0; i < n; i++) {
    snprintf(a, sizeof a, "+%s", human((uint64_t)g[i].bytes, c, sizeof c));
    fprintf(f, "  %12s %+10" PRId64 " %12s  ", a, g[i].objects, human(g[i].after, b, sizeof b));
    text_put(f, g[i].path);
    fputc('\n', f);
  }
  if (!n)
    fprintf(f, "  (nothing grew)\n");
  free(g);
}

int heap_write_text(FILE *f, const struct target *t, const struct heap_run *run, size_t top,
                    const struct heap_base *base)
{
  struct heap_summary s;
  heap_get_summary(run->h, &s);
  char a[32], b[32], c[32];
  fprintf(f, "Process %d \"", (int)t->pid);
  text_put(f, t->comm);
  fprintf(f, "\" ");
  text_put(f, t->exe);
  fputc('\n', f);
  text_put(f, run->describe);   /* (it names the module: a file name of the target's) */
  fputc('\n', f);
  if (run->copied)
    fprintf(f, "Paused %.1f ms to copy %s (%zu thread%s); enumerated in %.0f ms, analysed in "
            "%.0f ms\n", run->pause_ms, human(run->copy_bytes, a, sizeof a), run->threads,
            run->threads == 1 ? "" : "s", run->enum_ms, run->analyse_ms);
  else
    fprintf(f, "Paused %.1f ms: the heap was walked in the live process while it was stopped "
            "(a copy needs %s, over --max-copy %s)\n", run->pause_ms,
            human(run->copy_bytes, a, sizeof a), human(run->max_copy, b, sizeof b));
  fprintf(f, "Heap: %s in %" PRIu64 " objects", human(s.bytes, a, sizeof a), s.objects);
  if (s.vm_bytes)
    fprintf(f, " (the VM counts %s: %s, %.1f%%)", s.vm_what, human(s.vm_bytes, b, sizeof b),
            100.0 * (double)s.bytes / (double)s.vm_bytes);
  if (s.vm_objects)
    fprintf(f, " (the VM counts %s: %" PRIu64 ")", s.vm_what, s.vm_objects);
  if (run->rss)
    fprintf(f, "; process RSS %s", human(run->rss, c, sizeof c));
  fprintf(f, "\n");
  if (s.objects > s.reachable)
    fprintf(f, "Unreachable (garbage not yet collected): %s in %" PRIu64 " objects\n",
            human(s.bytes - s.reachable_bytes, a, sizeof a), s.objects - s.reachable);
  if (s.truncated)
    fprintf(f, "Incomplete: --max-objects was reached; the figures cover what was read\n");
  if (run->enum_err && !s.truncated)
    fprintf(f, "Incomplete: the enumeration ended early (%s)\n", vms_strerror(run->enum_err));

  struct heap_census_row *rows;
  size_t n;
  if (heap_census(run->h, &rows, &n))
    return -1;
  fprintf(f, "\nBy type:\n  %12s %10s  %s\n", "bytes", "objects", "type");
  for (size_t i = 0; i < n && i < 20; i++) {
    fprintf(f, "  %12s %10" PRIu64 "  ", human(rows[i].bytes, a, sizeof a), rows[i].count);
    text_put(f, rows[i].type);
    fputc('\n', f);
  }
  if (n > 20)
    fprintf(f, "  (%zu more types)\n", n - 20);
  free(rows);

  struct heap_retainer *r;
  if (heap_top(run->h, top, &r, &n))
    return -1;
  fprintf(f, "\nLargest retainers (what freeing them would give back):\n"
             "  %12s %10s %10s  %-12s %s\n", "retained", "objects", "shallow", "type", "path");
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "  %12s %10" PRIu64 " %10s  ", human(r[i].retained, a, sizeof a), r[i].count,
            human(r[i].shallow, b, sizeof b));
    text_put(f, r[i].type);
    /* (a longer type keeps a space before the path) */
    fprintf(f, "%*s ", strlen(r[i].type) < 12 ? (int)(12 - strlen(r[i].type)) : 1, "");
    text_put(f, r[i].path);
    fputc('\n', f);
  }
  free(r);
  if (base)
    growth_text(f, run, base, top);
  return ferror(f) ? -1 : 0;
}

struct jarg {
  FILE *f;
  int first;
};

static int stack_json(void *arg, const char *const *names, size_t n, uint64_t bytes,
                      uint64_t objects)
{
  struct jarg *ja = arg;
  FILE *f = ja->f;
  fprintf(f, "%s\n{\"stack\":[", ja->first ? "" : ",");
  ja->first = 0;
  for (size_t i = 0; i < n; i++) {
    if (i)
      putc(',', f);
    json_str(f, names[i]);
  }
  fprintf(f, "],\"bytes\":%" PRIu64 ",\"objects\":%" PRIu64 "}", bytes, objects);
  return ferror(f) ? -1 : 0;
}

int heap_write_json(FILE *f, const struct target *t, const struct heap_run *run, size_t top,
                    const struct heap_base *base)
{
  struct heap_summary s;
  heap_get_summary(run->h, &s);
  fprintf(f, "{\"pid\":%d,\"time\":%lld,\"comm\":", (int)t->pid, (long long)time(NULL));
  json_str(f, t->comm);
  fprintf(f, ",\"exe\":");
  json_str(f, t->exe);
  fprintf(f, ",\"runtime\":");
  json_str(f, run->runtime);
  fprintf(f, ",\"describe\":");
  json_str(f, run->describe);
  fprintf(f, ",\"copied\":%s,\"copy_bytes\":%" PRIu64 ",\"pause_ms\":%.3f,\"copy_ms\":%.3f"
          ",\"enumerate_ms\":%.3f,\"analyse_ms\":%.3f,\"threads\":%zu",
          run->copied ? "true" : "false", run->copy_bytes, run->pause_ms, run->copy_ms,
          run->enum_ms, run->analyse_ms, run->threads);
  fprintf(f, ",\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"reachable\":%" PRIu64
          ",\"reachable_bytes\":%" PRIu64 ",\"edges\":%" PRIu64 ",\"roots\":%" PRIu64,
          s.objects, s.bytes, s.reachable, s.reachable_bytes, s.edges, s.roots);
  fprintf(f, ",\"vm_accounting\":");
  if (s.vm_bytes || s.vm_objects) {
    fprintf(f, "{\"what\":");
    json_str(f, s.vm_what);
    fprintf(f, ",\"bytes\":%" PRIu64 ",\"objects\":%" PRIu64 "}", s.vm_bytes, s.vm_objects);
  } else {
    fprintf(f, "null");
  }
  fprintf(f, ",\"rss\":%" PRIu64 ",\"truncated\":%s,\"enumeration_error\":", run->rss,
          s.truncated ? "true" : "false");
  json_str(f, run->enum_err && !s.truncated ? vms_strerror(run->enum_err) : NULL);
  fprintf(f, ",\"census\":[");
  struct heap_census_row *rows;
  size_t n;
  if (heap_census(run->h, &rows, &n))
    return -1;
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "%s\n{\"type\":", i ? "," : "");
    json_str(f, rows[i].type);
    fprintf(f, ",\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", rows[i].count, rows[i].bytes);
  }
  free(rows);
  fprintf(f, "],\"retainers\":[");
  struct heap_retainer *r;
  if (heap_top(run->h, top, &r, &n))
    return -1;
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "%s\n{\"path\":", i ? "," : "");
    json_str(f, r[i].path);
    fprintf(f, ",\"type\":");
    json_str(f, r[i].type);
    fprintf(f, ",\"address\":\"0x%" PRIx64 "\",\"retained\":%" PRIu64 ",\"objects\":%" PRIu64
            ",\"shallow\":%" PRIu64 "}", r[i].addr, r[i].retained, r[i].count, r[i].shallow);
  }
  free(r);
  if (base) {
    struct heap_growth *g;
    if (heap_growth(run->h, base, top, &g, &n))
      return -1;
    fprintf(f, "],\"growth\":[");
    for (size_t i = 0; i < n; i++) {
      fprintf(f, "%s\n{\"path\":", i ? "," : "");
      json_str(f, g[i].path);
      fprintf(f, ",\"bytes\":%" PRId64 ",\"objects\":%" PRId64 ",\"before\":%" PRIu64
              ",\"after\":%" PRIu64 "}", g[i].bytes, g[i].objects, g[i].before, g[i].after);
    }
    free(g);
  }
  /* the flame graph's stacks, one per line: what a later --baseline compares with */
  fprintf(f, "],\"stacks\":[");
  struct jarg ja = { f, 1 };
  if (heap_each_stack(run->h, stack_json, &ja))
    return -1;
  fprintf(f, "]}\n");
  return ferror(f) ? -1 : 0;
}
