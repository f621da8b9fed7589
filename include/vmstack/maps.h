/* The target's address space: /proc/PID/maps parsed into mappings and modules. */
#ifndef VMSTACK_MAPS_H
#define VMSTACK_MAPS_H

#include <stdint.h>
#include <sys/types.h>

struct elf_file;
struct mem;

struct module {
  char *path;             /* as the target sees it, without " (deleted)" */
  const char *name;       /* basename of path */
  uint64_t start, end;    /* extent of all its mappings */
  uint64_t map_start, map_off;  /* the mapping used for the bias */
  uint64_t dev, inode;
  int deleted;
  int elf_tried;
  uint64_t bias;
  struct elf_file *elf;   /* NULL when the file could not be opened */
};

struct map {
  uint64_t start, end, offset;
  char perms[5];
  uint64_t dev, inode;
  const char *path;        /* NULL for anonymous; "[stack]", "[vdso]", ... kept */
  struct module *mod;      /* file-backed mappings only */
};

struct maps {
  pid_t pid;
  char root[64];          /* "/proc/PID/root" */
  struct map *v;
  size_t n;
  struct module **mods;
  size_t nmods;
  char *text;              /* the raw maps text, for snapshots (lines NUL-terminated) */
  size_t text_len;
  struct maps *retired;    /* the maps this one replaced: kept so that names stay valid */
  struct mem *mem;         /* offline (pid 0): where the vDSO's bytes are (a snapshot) */
  char *build_ids;         /* offline: "HEX PATH\n" lines, the build-ids the modules had when
                              the snapshot was taken; a file that differs is not used */
};

/* Parse /proc/PID/maps (or the given text, pid 0 for offline use). */
int maps_load(pid_t pid, struct maps **ret_maps);
int maps_parse(const char *text, pid_t pid, struct maps **ret_maps);
/* Read the maps again. Modules still mapped at the same place keep their objects (and
 * opened files); the old maps stay reachable from the new ones until maps_free(), so
 * strings handed out from them stay valid. */
int maps_reload(struct maps *old, struct maps **ret_maps);
void maps_free(struct maps *mp);

const struct map *maps_find(const struct maps *mp, uint64_t addr);
/* The module at addr with its ELF opened (lazily: /proc/PID/root/<path>, then
 * /proc/PID/map_files for deleted or hidden files) and debug file attached; NULL if none. */
struct module *maps_module(struct maps *mp, uint64_t addr);
/* Open the ELF of a module that is already known (e.g. by name). 0 or -errno. */
int maps_module_open(struct maps *mp, struct module *mod);
/* The first module (opened) whose ELF symbols have both sym1 and sym2 (a runtime's
 * exports), or NULL. */
struct module *maps_module_with(struct maps *mp, const char *sym1, const char *sym2);
/* First module whose basename starts with prefix (e.g. "libluajit"), or NULL. */
struct module *maps_module_by_name(struct maps *mp, const char *prefix);

#endif
