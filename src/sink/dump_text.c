/* Text output of a dump: a header per thread, then its frames innermost first. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/json.h"
#include "vmstack/target.h"

/* Every string from the target or its files (names, paths, symbols) goes out through
 * text_put: control bytes and invalid UTF-8 as \xNN, never raw. */
static void paren(FILE *f, const char *s)
{
  fputs(" (", f);
  text_put(f, s);
  putc(')', f);
}

static void vm_line(FILE *f, size_t i, const struct out_frame *of)
{
  const struct vm_frame *v = &of->vm;
  char name[512];
  fprintf(f, "  #%-2zu ", i);
  if (v->kind == FK_CFUNC && v->func[0]) {
    /* the VM's name, then the symbol and module when there is one */
    text_put(f, v->func);
    if (of->si.func) {
      fputs(" (", f);
      text_put(f, of->si.func);
      fputs(", ", f);
      text_put(f, of->si.module ? of->si.module : "?");
      putc(')', f);
    } else if (of->si.module) {
      paren(f, of->si.module);
    }
  } else if (v->kind == FK_CFUNC) {
    symbolize_name(&of->si, of->pc, name, sizeof name);
    text_put(f, name);
    if (of->si.module && of->si.func)
      paren(f, of->si.module);
  } else {
    text_put(f, v->func);
    if (v->file[0]) {
      fputs(" (", f);
      text_put(f, v->file);
      if (v->line > 0)
        fprintf(f, ":%d", v->line);
      putc(')', f);
    }
  }
  if (v->trace)
    fprintf(f, " [trace %d]", v->trace);
  fprintf(f, " [%s]\n", of->runtime ? of->runtime : "vm");
  /* its variables, one per line under it; the upvalues on one line */
  int upv = 0;
  for (size_t k = 0; k < v->nvars; k++) {
    const struct vm_var *x = &v->vars[k];
    if (x->kind == VAR_UPVALUE) {
      fputs(upv++ ? ", " : "        upvalues: ", f);
    } else {
      if (upv) {
        putc('\n', f);
        upv = 0;
      }
      fputs("        ", f);
    }
    if (x->kind == VAR_NOTE) {
      putc('(', f);
      text_put(f, x->value);
      fputs(")\n", f);
      continue;
    }
    text_put(f, x->name);
    fputs(" = ", f);
    text_put(f, x->value);
    if (x->kind != VAR_UPVALUE)
      putc('\n', f);
  }
  if (upv)
    putc('\n', f);
}

static void frame_line(FILE *f, size_t i, const struct out_frame *of)
{
  char name[512];
  if (of->kind != FK_NATIVE) {
    vm_line(f, i, of);
    return;
  }
  symbolize_name(&of->si, of->pc, name, sizeof name);
  fprintf(f, "  #%-2zu ", i);
  text_put(f, name);
  if (of->si.func)
    fprintf(f, "+0x%" PRIx64, of->si.off);
  if (of->si.module && of->si.func)
    paren(f, of->si.module);
  if (of->si.file) {
    fputs(" at ", f);
    text_put(f, of->si.file);
    fprintf(f, ":%d", of->si.line);
  }
  if (of->flags & FRAME_F_SIGNAL)
    fputs(" <signal handler called>", f);
  putc('\n', f);
}

void dump_write_text(FILE *f, const struct target *t, const struct dump_result *res)
{
  fprintf(f, "Process %d \"", (int)t->pid);
  text_put(f, t->comm);
  putc('"', f);
  if (t->nspid && t->nspid != t->pid)
    fprintf(f, " (pid %d in its namespace)", (int)t->nspid);
  if (t->exe[0]) {
    putc(' ', f);
    text_put(f, t->exe);
  }
  putc('\n', f);
  for (size_t i = 0; i < res->n; i++) {
    const struct thread_stack *ts = &res->threads[i];
    fprintf(f, "Thread %d \"", (int)ts->tid);
    text_put(f, ts->name);
    fprintf(f, "\" (%s", ts->err == -ESRCH ? "exited" : target_state_name(ts->state));
    for (size_t k = 0; k < ts->nvms; k++) {
      fprintf(f, "%s%s%s", k ? "; " : ", ", ts->vms[k].runtime, ts->vms[k].state[0] ? ": " : "");
      text_put(f, ts->vms[k].state);   /* (it may name a native function) */
    }
    putc(')', f);
    if (ts->nstid && ts->nstid != ts->tid)
      fprintf(f, " [tid %d in its namespace]", (int)ts->nstid);
    putc('\n', f);
    if (ts->err && ts->err != -ESRCH)
      fprintf(f, "  (not read: %s)\n", vms_strerror(ts->err));
    for (size_t j = 0; j < ts->n; j++)
      frame_line(f, j, &ts->frames[j]);
    for (size_t k = 0; k < ts->nvms; k++)
      if (ts->vms[k].err == -VMS_E_TRUNCATED)
        fprintf(f, "  (%s frames cut at the depth limit; raise --max-depth)\n",
                ts->vms[k].runtime);
      else if (ts->vms[k].err && ts->nvms > 1)
        fprintf(f, "  (%s walk stopped: %s)\n", ts->vms[k].runtime,
                vms_strerror(ts->vms[k].err));
      else if (ts->vms[k].err)
        fprintf(f, "  (VM walk stopped: %s)\n", vms_strerror(ts->vms[k].err));
    if (ts->walk_err == -VMS_E_TRUNCATED)
      fprintf(f, "  (truncated at %zu frames; raise --max-depth)\n", ts->n);
    else if (ts->walk_err) {
      fprintf(f, "  (walk stopped: %s", vms_strerror(ts->walk_err));
      text_put(f, ts->walk_where);
      fputs(")\n", f);
    }
    if (i + 1 < res->n)
      putc('\n', f);
  }
  for (size_t i = 0; i < res->coros.n; i++) {
    const struct vm_coroutine *co = &res->coros.v[i];
    fprintf(f, "\nCoroutine 0x%" PRIx64 " (%s, %s)\n", co->id, co->state, res->coros.runtime);
    for (size_t j = 0; j < co->vf.n; j++) {
      struct out_frame of = { .kind = co->vf.v[j].kind, .runtime = co->vf.runtime,
                              .vm = co->vf.v[j] };
      vm_line(f, j, &of);
    }
    if (co->vf.err)
      fprintf(f, "  (VM walk stopped: %s)\n", vms_strerror(co->vf.err));
  }
  if (res->coros.err)
    fprintf(f, "\n(coroutine list incomplete: %s)\n", vms_strerror(res->coros.err));
}
