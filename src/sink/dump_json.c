/* JSON output of a dump: the same content as the text form. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/json.h"
#include "vmstack/target.h"

static const char *vm_kind_name(enum frame_kind k)
{
  switch (k) {
  case FK_FUNCTION: return "function";
  case FK_NATIVE_SUB: return "native_sub";
  case FK_CFUNC: return "cfunc";
  case FK_BUILTIN: return "builtin";
  default: return "partial";
  }
}

static void vm_json(FILE *f, size_t i, const struct out_frame *of)
{
  const struct vm_frame *v = &of->vm;
  char name[512];
  fprintf(f, "{\"index\":%zu,\"kind\":\"vm\",\"runtime\":", i);
  json_str(f, of->runtime);
  fprintf(f, ",\"vm_kind\":\"%s\",\"name\":", vm_kind_name(v->kind));
  if (v->kind == FK_CFUNC) {
    symbolize_name(&of->si, of->pc, name, sizeof name);
    json_str(f, v->func[0] ? v->func : name);
    fputs(",\"function\":", f);
    json_str(f, of->si.func);
    fprintf(f, ",\"pc\":\"0x%" PRIx64 "\",\"module\":", of->pc);
    json_str(f, of->si.module);
  } else {
    json_str(f, v->func);
    fputs(",\"function\":", f);
    json_str(f, v->func);
  }
  fputs(",\"file\":", f);
  json_str(f, v->file[0] ? v->file : NULL);
  if (v->line > 0)
    fprintf(f, ",\"line\":%d", v->line);
  else
    fputs(",\"line\":null", f);
  fprintf(f, ",\"trace\":%d", v->trace);
  if (v->nvars) {
    static const char *const kinds[] = { "local", "temporary", "vararg", "upvalue", "argument",
                                         "note" };
    fputs(",\"locals\":[", f);
    for (size_t k = 0; k < v->nvars; k++) {
      const struct vm_var *x = &v->vars[k];
      fprintf(f, "%s{\"kind\":\"%s\",\"name\":", k ? "," : "",
              x->kind <= VAR_NOTE ? kinds[x->kind] : "local");
      json_str(f, x->name);
      fputs(",\"type\":", f);
      json_str(f, x->type[0] ? x->type : NULL);
      fputs(",\"value\":", f);
      json_str(f, x->value);
      if (x->addr)
        fprintf(f, ",\"address\":\"0x%" PRIx64 "\"", x->addr);
      if (x->len >= 0)
        fprintf(f, ",\"length\":%" PRId64, x->len);
      putc('}', f);
    }
    putc(']', f);
  }
  putc('}', f);
}

static void frame_json(FILE *f, size_t i, const struct out_frame *of)
{
  char name[512];
  if (of->kind != FK_NATIVE) {
    vm_json(f, i, of);
    return;
  }
  symbolize_name(&of->si, of->pc, name, sizeof name);
  fprintf(f, "{\"index\":%zu,\"kind\":\"native\",\"pc\":\"0x%" PRIx64 "\",\"name\":", i,
          of->pc);
  json_str(f, name);
  fputs(",\"function\":", f);
  json_str(f, of->si.func);
  fprintf(f, ",\"offset\":%" PRIu64 ",\"module\":", of->si.func ? of->si.off : 0);
  json_str(f, of->si.module);
  fputs(",\"module_path\":", f);
  json_str(f, of->si.module_path);
  fprintf(f, ",\"module_offset\":\"0x%" PRIx64 "\",\"file\":", of->si.module_off);
  json_str(f, of->si.file);
  if (of->si.file)
    fprintf(f, ",\"line\":%d", of->si.line);
  else
    fputs(",\"line\":null", f);
  fprintf(f, ",\"signal_frame\":%s,\"no_cfi\":%s}", of->flags & FRAME_F_SIGNAL ? "true" : "false",
          of->flags & FRAME_F_NOCFI ? "true" : "false");
}

void dump_write_json(FILE *f, const struct target *t, const struct dump_result *res)
{
  fprintf(f, "{\"pid\":%d,\"ns_pid\":%d,\"comm\":", (int)t->pid, (int)t->nspid);
  json_str(f, t->comm);
  fputs(",\"exe\":", f);
  json_str(f, t->exe);
  fputs(",\"threads\":[", f);
  for (size_t i = 0; i < res->n; i++) {
    const struct thread_stack *ts = &res->threads[i];
    fprintf(f, "%s\n{\"tid\":%d,\"ns_tid\":%d,\"name\":", i ? "," : "", (int)ts->tid,
            (int)ts->nstid);
    json_str(f, ts->name);
    fputs(",\"state\":", f);
    json_str(f, ts->err == -ESRCH ? "exited" : target_state_name(ts->state));
    fputs(",\"error\":", f);
    json_str(f, ts->err && ts->err != -ESRCH ? vms_strerror(ts->err) : NULL);
    /* (cut at the depth limit: the native walk, or a runtime's frames) */
    int cut = ts->walk_err == -VMS_E_TRUNCATED;
    for (size_t k = 0; k < ts->nvms; k++)
      cut |= ts->vms[k].err == -VMS_E_TRUNCATED;
    fprintf(f, ",\"truncated\":%s,\"walk_error\":", cut ? "true" : "false");
    json_str(f, ts->walk_err && ts->walk_err != -VMS_E_TRUNCATED ? vms_strerror(ts->walk_err)
                                                                  : NULL);
    fputs(",\"walk_error_at\":", f);
    json_str(f, ts->walk_where[0] ? ts->walk_where + 1 : NULL);
    /* the innermost runtime here, every one in "runtimes" */
    const struct thread_vm *tv = ts->nvms ? &ts->vms[0] : NULL;
    fputs(",\"runtime\":", f);
    json_str(f, tv ? tv->runtime : NULL);
    fputs(",\"vm_state\":", f);
    json_str(f, tv && tv->state[0] ? tv->state : NULL);
    fputs(",\"vm_error\":", f);
    json_str(f, tv && tv->err ? vms_strerror(tv->err) : NULL);
    fputs(",\"runtimes\":[", f);
    for (size_t k = 0; k < ts->nvms; k++) {
      fputs(k ? ",{\"name\":" : "{\"name\":", f);
      json_str(f, ts->vms[k].runtime);
      fputs(",\"state\":", f);
      json_str(f, ts->vms[k].state[0] ? ts->vms[k].state : NULL);
      fputs(",\"error\":", f);
      json_str(f, ts->vms[k].err ? vms_strerror(ts->vms[k].err) : NULL);
      putc('}', f);
    }
    putc(']', f);
    fputs(",\"frames\":[", f);
    for (size_t j = 0; j < ts->n; j++) {
      if (j)
        putc(',', f);
      frame_json(f, j, &ts->frames[j]);
    }
    fputs("]}", f);
  }
  fputs("\n],\"coroutines\":[", f);
  for (size_t i = 0; i < res->coros.n; i++) {
    const struct vm_coroutine *co = &res->coros.v[i];
    fprintf(f, "%s\n{\"id\":\"0x%" PRIx64 "\",\"state\":", i ? "," : "", co->id);
    json_str(f, co->state);
    fputs(",\"runtime\":", f);
    json_str(f, res->coros.runtime);
    fputs(",\"vm_error\":", f);
    json_str(f, co->vf.err ? vms_strerror(co->vf.err) : NULL);
    fputs(",\"frames\":[", f);
    for (size_t j = 0; j < co->vf.n; j++) {
      struct out_frame of = { .kind = co->vf.v[j].kind, .runtime = co->vf.runtime,
                              .vm = co->vf.v[j] };
      if (j)
        putc(',', f);
      vm_json(f, j, &of);
    }
    fputs("]}", f);
  }
  fputs("\n]}\n", f);
}
