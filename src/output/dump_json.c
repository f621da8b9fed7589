/* JSON output of a dump: the same content as the text form. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "vmstack/dump.h"
#include "vmstack/err.h"
#include "vmstack/json.h"
#include "vmstack/target.h"

static const char *kind_name(enum frame_kind k)
{
  switch (k) {
  case FRAME_VM: return "vm";
  case FRAME_JIT: return "jit";
  default: return "native";
  }
}

static const char *vm_kind_name(enum vm_frame_kind k)
{
  switch (k) {
  case VMF_LUA: return "function";
  case VMF_NATIVE_SUB: return "native_sub";
  case VMF_CFUNC: return "cfunc";
  case VMF_BUILTIN: return "builtin";
  case VMF_TRACE: return "trace";
  default: return "partial";
  }
}

static void vm_json(FILE *f, size_t i, const struct out_frame *of)
{
  const struct vm_frame *v = &of->vm;
  char name[512];
  fprintf(f, "{\"index\":%zu,\"kind\":\"%s\",\"runtime\":", i, kind_name(of->kind));
  json_str(f, of->runtime);
  fprintf(f, ",\"vm_kind\":\"%s\",\"name\":", vm_kind_name(v->kind));
  if (v->kind == VMF_CFUNC) {
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
  fprintf(f, ",\"trace\":%d}", v->trace);
}

static void frame_json(FILE *f, size_t i, const struct out_frame *of)
{
  char name[512];
  if (of->kind != FRAME_NATIVE) {
    vm_json(f, i, of);
    return;
  }
  symbolize_name(&of->si, of->pc, name, sizeof name);
  fprintf(f, "{\"index\":%zu,\"kind\":\"%s\",\"pc\":\"0x%" PRIx64 "\",\"name\":", i,
          kind_name(of->kind), of->pc);
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
    fprintf(f, ",\"truncated\":%s,\"walk_error\":",
            ts->walk_err == -VMS_E_TRUNCATED ? "true" : "false");
    json_str(f, ts->walk_err && ts->walk_err != -VMS_E_TRUNCATED ? vms_strerror(ts->walk_err)
                                                                  : NULL);
    fputs(",\"walk_error_at\":", f);
    json_str(f, ts->walk_where[0] ? ts->walk_where + 1 : NULL);
    fputs(",\"runtime\":", f);
    json_str(f, ts->runtime);
    fputs(",\"vm_state\":", f);
    json_str(f, ts->vm_state[0] ? ts->vm_state : NULL);
    fputs(",\"vm_error\":", f);
    json_str(f, ts->vm_err ? vms_strerror(ts->vm_err) : NULL);
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
    json_str(f, res->coros_runtime);
    fputs(",\"vm_error\":", f);
    json_str(f, co->vf.err ? vms_strerror(co->vf.err) : NULL);
    fputs(",\"frames\":[", f);
    for (size_t j = 0; j < co->vf.n; j++) {
      struct out_frame of = { .kind = FRAME_VM, .runtime = co->vf.runtime, .vm = co->vf.v[j] };
      if (j)
        putc(',', f);
      vm_json(f, j, &of);
    }
    fputs("]}", f);
  }
  fputs("\n]}\n", f);
}
