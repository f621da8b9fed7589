#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/tls.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"
#include "pl_vm.h"

/* -- Detection -------------------------------------------------------------- */

/* The module holding the interpreter: perl itself or a libperl an embedder loaded. */
static struct module *find_module(struct maps *mp)
{
  return maps_module_with(mp, "PL_curinterp", "Perl_runops_standard");
}

static int sym(struct pl_vm *vm, const char *name, uint64_t *ret, uint64_t *ret_size)
{
  uint64_t a;
  if (elf_file_lookup(vm->mod->elf, name, &a, ret_size))
    return -ENOENT;
  *ret = a + vm->mod->bias;
  return 0;
}

/* A read-only value exported by the interpreter, read from the file (it is constant). */
static int sym_const(struct pl_vm *vm, const char *name, void *buf, size_t len)
{
  uint64_t a;
  if (elf_file_lookup(vm->mod->elf, name, &a, NULL))
    return -ENOENT;
  if (!elf_file_read(vm->mod->elf, a, buf, len))
    return 0;
  return mem_read(vm->t->mem, a + vm->mod->bias, buf, len);
}

static int bincompat_has(const char *opts, const char *flag)
{
  size_t l = strlen(flag);
  for (const char *p = opts; (p = strstr(p, flag)); p += l)
    if ((p == opts || p[-1] == ' ') && (p[l] == ' ' || !p[l]))
      return 1;
  return 0;
}

int pl_probe(struct target *t, void **ret_vm)
{
  struct module *m = find_module(t->maps);
  if (!m)
    return -ENOENT;
  struct pl_vm *vm = calloc(1, sizeof *vm);
  if (!vm)
    return -ENOMEM;
  vm->t = t;
  vm->mod = m;
  *ret_vm = vm;
  uint8_t v[3] = { 0 };
  uint16_t isize = 0;
  char opts[512] = "";
  if (sym_const(vm, "PL_revision", &v[0], 1) || sym_const(vm, "PL_version", &v[1], 1) ||
      sym_const(vm, "PL_subversion", &v[2], 1)) {
    fmt(vm->desc, sizeof vm->desc, "Perl in %s: no PL_revision/PL_version (older than 5.15?); "
        "not supported", m->name);
    return -VMS_E_UNSUPPORTED;
  }
  vm->ver[0] = v[0];
  vm->ver[1] = v[1];
  vm->ver[2] = v[2];
  sym_const(vm, "PL_interp_size", &isize, 2);
  {
    uint64_t a, size = 0;
    if (!elf_file_lookup(m->elf, "PL_bincompat_options", &a, &size)) {
      size_t n = size && size < sizeof opts ? size : sizeof opts - 1;
      if (elf_file_read(m->elf, a, opts, n))
        mem_read(t->mem, a + m->bias, opts, n);
      opts[n] = 0;
      opts[strnlen(opts, n)] = 0;
    }
  }
  int multi = bincompat_has(opts, "MULTIPLICITY");
  int debugging = bincompat_has(opts, "DEBUGGING");
  for (size_t i = 0; pl_layouts[i]; i++) {
    const struct pl_layout *lo = pl_layouts[i];
    if (v[0] == 5 && lo->version == v[1] && lo->multiplicity == multi && !debugging &&
        (!lo->interp_size || lo->interp_size == isize)) {
      vm->lo = lo;
      break;
    }
  }
  if (!vm->lo) {
    fmt(vm->desc, sizeof vm->desc, "Perl %d.%d.%d in %s (%s%s, interpreter size %u): a build "
        "not known; known: ", v[0], v[1], v[2], m->name, multi ? "threaded" : "non-threaded",
        debugging ? ", DEBUGGING" : "", (unsigned)isize);
    for (size_t i = 0; pl_layouts[i]; i++) {
      size_t l = strlen(vm->desc);
      fmt(vm->desc + l, sizeof vm->desc - l, "%s%s", i ? ", " : "", pl_layouts[i]->name);
    }
    return -VMS_E_UNSUPPORTED;
  }
  const struct pl_layout *lo = vm->lo;
  if (lo->multiplicity) {
    if (sym(vm, "PL_curinterp", &vm->curinterp, NULL)) {
      fmt(vm->desc, sizeof vm->desc, "Perl %d.%d.%d in %s: no PL_curinterp", v[0], v[1], v[2],
          m->name);
      return -VMS_E_UNSUPPORTED;
    }
    /* each thread's interpreter: the C11 thread-local PL_current_context (5.36+, when
     * the compiler has one): initial-exec in a perl executable, general-dynamic in a
     * libperl.so, local-exec in a static perl */
    tls_locate(t->mem, m, !strcmp(m->path, t->exe), "PL_current_context", &vm->tls);
  } else if (sym(vm, "PL_curcop", &vm->g_curcop, NULL) ||
             sym(vm, "PL_curstackinfo", &vm->g_curstackinfo, NULL)) {
    fmt(vm->desc, sizeof vm->desc, "Perl %d.%d.%d in %s: no PL_curcop/PL_curstackinfo symbols",
        v[0], v[1], v[2], m->name);
    return -VMS_E_UNSUPPORTED;
  } else {
    sym(vm, "PL_compiling", &vm->g_compiling, NULL);
  }
  static const char *const runops[] = { "Perl_runops_standard", "Perl_runops_debug" };
  for (size_t i = 0; i < sizeof runops / sizeof *runops; i++) {
    uint64_t a, size;
    if (!sym(vm, runops[i], &a, &size) && size && vm->nrunops < RUNOPS_MAX) {
      vm->runops[vm->nrunops][0] = a;
      vm->runops[vm->nrunops][1] = a + size;
      vm->nrunops++;
    }
  }
  {
    uint64_t a, size;
    if (!sym(vm, "Perl_pp_entersub", &a, &size) && size) {
      vm->entersub[0] = a;
      vm->entersub[1] = a + size;
    }
    if (!sym(vm, "Perl_yyparse", &a, &size) && size) {
      vm->yyparse[0] = a;
      vm->yyparse[1] = a + size;
    }
    if (!lo->multiplicity)
      sym(vm, "PL_defstash", &vm->g_defstash, NULL);
  }
  vm->cops = calloc(CACHE_SIZE, sizeof *vm->cops);
  vm->cvs = calloc(CACHE_SIZE, sizeof *vm->cvs);
  if (!vm->cops || !vm->cvs)
    return -ENOMEM;
  fmt(vm->desc, sizeof vm->desc, "Perl %d.%d.%d (%s, %s)", v[0], v[1], v[2], lo->name, m->name);
  return 0;
}

const char *pl_describe(const void *vmv)
{
  return ((const struct pl_vm *)vmv)->desc;
}

void pl_free(void *vmv)
{
  struct pl_vm *vm = vmv;
  if (!vm)
    return;
  for (size_t i = 0; i < SI_MAX; i++)
    free(vm->snap.si[i].cx);
  free(vm->cops);
  free(vm->cvs);
  free(vm->xs);
  free(vm);
}
