/* Address to symbol+offset (module), source line when DWARF is there; cached. */
#ifndef VMSTACK_SYMBOLIZE_H
#define VMSTACK_SYMBOLIZE_H

#include <stdint.h>

struct maps;

struct sym_info {
  const char *module;     /* basename of the module, NULL for anonymous memory */
  const char *module_path;
  uint64_t module_off;    /* pc - load bias: the address in the file */
  const char *func;       /* NULL when no symbol covers the address */
  uint64_t off;           /* pc - function start */
  const char *file;       /* NULL unless DWARF line info was found */
  int line;
};

/* lines: also look up file:line in DWARF (costly for large compressed debug files).
 * exact: pc is the faulting/current instruction, not a return address (which is looked
 * up at pc-1 so that a call at the end of a function resolves to that function). Strings
 * point into the maps' modules and stay valid while the maps live. */
void symbolize(struct maps *mp, uint64_t pc, int exact, int lines, struct sym_info *ret);

/* Folded-style name: "func", or "[module+0xoff]" / "[0xaddr]" when unnamed. */
int symbolize_name(const struct sym_info *si, uint64_t pc, char *buf, size_t cap);

#endif
