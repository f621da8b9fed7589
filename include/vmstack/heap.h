/* Heap snapshots: a runtime enumerates its objects and references into a heap builder;
 * the core owns the object graph, dominators, paths, aggregation and outputs.
 *
 * The runtime side (the heap() hook of struct vm_runtime):
 * - heap_object() once per object: its address, type (an interned name: "table",
 *   "HASH"), shallow size in bytes (what freeing it alone would give back), and an optional
 *   class ("Report::Cache", a blessed package or a metatable's name). An address given twice
 *   counts once.
 * - heap_edge() per reference from one object to another, labelled as the language would
 *   spell the step (".cache", "[3]", "{*}", "upvalue memo", "{name}"): edges to addresses
 *   that are not objects are dropped; weak references are not given (they do not retain).
 *   A container with more than HEAP_NAMED_MAX children labels them all "{*}" or "[*]" (so
 *   that a cache is one tower, not 200,000 slivers).
 * - heap_root() per root (a global table, a running frame's local, the registry), labelled.
 * - heap_full() tells the runtime to stop enumerating: --max-objects was reached.
 * Labels and names are copied (interned); the runtime keeps nothing. */
#ifndef VMSTACK_HEAP_H
#define VMSTACK_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HEAP_NAMED_MAX 64       /* children of a container that keep their own names */
#define HEAP_LABEL_MAX 200      /* bytes of a label or class kept */

struct heap;

/* -- Building (runtimes) --------------------------------------------------- */

uint32_t heap_type(struct heap *h, const char *name);
int heap_object(struct heap *h, uint64_t addr, uint32_t type, uint64_t size, const char *cls);
int heap_edge(struct heap *h, uint64_t from, uint64_t to, const char *label);
int heap_root(struct heap *h, uint64_t to, const char *label);
/* A root only for an object nothing else reaches (a table that holds what its users own,
 * such as Perl's shared hash keys: a key is its hashes', not the table's). */
int heap_root_weak(struct heap *h, uint64_t to, const char *label);
int heap_full(const struct heap *h);
/* The VM's own count of its bytes (LuaJIT's gc.total) or objects (Perl's PL_sv_count), to
 * set beside the census. */
void heap_vm_total(struct heap *h, uint64_t bytes, uint64_t objects, const char *what);

/* -- Analysis (the heap verb) ---------------------------------------------- */

struct heap_opts {
  size_t max_objects;
  int by_type;             /* the flame graph by type → class instead of by path */
};

struct heap *heap_new(const struct heap_opts *o);
void heap_free(struct heap *h);
/* Resolve the edges, find what each root reaches (shortest paths), the dominator tree and
 * retained sizes. */
int heap_analyse(struct heap *h);

struct heap_census_row {
  const char *type;
  uint64_t count, bytes;
};

struct heap_summary {
  uint64_t objects, bytes;             /* every object enumerated */
  uint64_t reachable, reachable_bytes;
  uint64_t edges, roots;
  uint64_t vm_bytes, vm_objects;       /* the VM's own accounting (0: none given) */
  const char *vm_what;
  int truncated;                       /* --max-objects reached */
};

void heap_get_summary(const struct heap *h, struct heap_summary *ret);
/* Census by type (class appended: "table Foo"), largest first; *ret_rows malloc'd. */
int heap_census(const struct heap *h, struct heap_census_row **ret_rows, size_t *ret_n);

/* The paths of reports name one of a container's many children ("{*}", "[*]") by its very
 * key when fn can tell it: the key under which `from` holds `to` ("{user42}", "[7]"), read
 * again from the process; nonzero when it cannot. */
typedef int (*heap_label_fn)(void *arg, uint64_t from, uint64_t to, char *buf, size_t cap);
void heap_set_labeler(struct heap *h, heap_label_fn fn, void *arg);

/* The objects that hold the most (retained bytes), largest first, down to 0.1% of the
 * heap. Of a chain in which each object holds nearly all of the next one's memory, only
 * its ends are listed: where it is entered and where the memory accumulates. */
struct heap_retainer {
  uint64_t addr, shallow, retained, count;   /* count: objects retained */
  char type[64];
  char path[512];          /* shortest path from a root: "_G.svc.lookup → upvalue memo" */
};
int heap_top(const struct heap *h, size_t n, struct heap_retainer **ret, size_t *ret_n);

/* Every stack of the memory flame graph, root first, weighing bytes: the dominator tree
 * with frames named by the step that reaches each object and its type ("by path"), or
 * type → class ("by type"). Objects no root reaches sit under "(unreachable)". */
typedef int (*heap_stack_fn)(void *arg, const char *const *names, size_t n, uint64_t bytes,
                             uint64_t objects);
int heap_each_stack(struct heap *h, heap_stack_fn fn, void *arg);

/* -- Growth since an earlier snapshot (its JSON report) ------------------------ */

struct heap_base;
/* Read the stacks of a JSON report `vmstack heap -f json` wrote. -EINVAL: not one. */
int heap_base_load(const char *path, struct heap_base **ret);
void heap_base_free(struct heap_base *b);
int heap_base_pid(const struct heap_base *b);
/* The runtime the baseline's heap was of ("luajit"; "" when the report does not say). */
const char *heap_base_runtime(const struct heap_base *b);

/* Where the memory grew most: paths (as in heap_top) whose growth no single child holds
 * nearly all of, largest first, at most n. */
struct heap_growth {
  int64_t bytes, objects;              /* growth (after - before) */
  uint64_t before, after;              /* bytes under the path then and now */
  char path[512];
};
int heap_growth(struct heap *h, const struct heap_base *b, size_t n, struct heap_growth **ret,
                size_t *ret_n);
/* Every stack of either snapshot with its bytes before and after (difffolded's input). */
typedef int (*heap_diff_fn)(void *arg, const char *const *names, size_t n, uint64_t before,
                            uint64_t after);
int heap_diff_each(struct heap *h, const struct heap_base *b, heap_diff_fn fn, void *arg);

#endif
