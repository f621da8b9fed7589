/* Symbolisation of native addresses through the maps' modules. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vmstack/elf.h"
#include "vmstack/maps.h"
#include "vmstack/symbolize.h"

void symbolize(struct maps *mp, uint64_t pc, int exact, int lines, struct sym_info *ret)
{
  memset(ret, 0, sizeof *ret);
  uint64_t look = exact || !pc ? pc : pc - 1;
  const struct map *m = maps_find(mp, look);
  if (!m)
    return;
  if (!m->mod) {
    if (m->path && m->path[0] == '[')
      ret->module = m->path;   /* [vdso], [heap], [stack] ... */
    ret->module_off = look - m->start;
    return;
  }
  struct module *mod = m->mod;
  maps_module_open(mp, mod);
  ret->module = mod->name;
  ret->module_path = mod->path;
  if (!mod->elf) {
    ret->module_off = pc - m->start + m->offset;
    return;
  }
  ret->module_off = pc - mod->bias;
  const char *name;
  uint64_t off;
  if (!elf_file_symbol(mod->elf, look - mod->bias, &name, &off)) {
    ret->func = name;
    ret->off = off + (pc - look);
  }
  const char *file;
  int line;
  if (lines && !elf_file_line(mod->elf, look - mod->bias, &file, &line)) {
    ret->file = file;
    ret->line = line;
  }
}

int symbolize_name(const struct sym_info *si, uint64_t pc, char *buf, size_t cap)
{
  if (si->func)
    return snprintf(buf, cap, "%s", si->func);
  if (si->module)
    return snprintf(buf, cap, "[%s+0x%" PRIx64 "]", si->module, si->module_off);
  return snprintf(buf, cap, "[0x%" PRIx64 "]", pc);
}
