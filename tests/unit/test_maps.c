/* maps.c: /proc/PID/maps text parsing, module grouping, lookups; plus our own live maps. */
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <sys/auxv.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vmstack/maps.h"
#include "unit.h"

static const char text[] =
  "55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234                       /usr/bin/my prog\n"
  "55d0c0a02000-55d0c0a05000 r-xp 00002000 08:01 1234                       /usr/bin/my prog\n"
  "55d0c0a05000-55d0c0a06000 r--p 00005000 08:01 1234                       /usr/bin/my prog\n"
  "55d0c0a06000-55d0c0a07000 rw-p 00005000 08:01 1234                       /usr/bin/my prog\n"
  "55d0c0a07000-55d0c0a08000 rw-p 00000000 00:00 0 \n"
  "this line is garbage\n"
  "\n"
  "55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]\n"
  "7f0000000000-7f0000001000 r-xp 00000000 00:05 99                         /memfd:jit (deleted)\n"
  "7f1000001000-7f1000010000 r-xp 00001000 fd:00 555                        /tmp/old lib.so (deleted)\n"
  "7f1000010000-7f1000011000 rw-p 00010000 fd:00 555                        /tmp/old lib.so (deleted)\n"
  "7f1000020000-7f1000010000 r-xp 00000000 fd:00 556                        /tmp/backwards.so\n"
  "7f1000030000-7f1000031000 r-xp 00000000 fd:00\n"
  "zz1000040000-7f1000041000 r-xp 00000000 fd:00 557                        /tmp/badhex.so\n"
  "7f2000000000-7f2000001000 r-xp 00000000 08:02 10                         /lib/libx.so\n"
  "7f2000001000-7f2000002000 r-xp 00000000 08:02 11                         /lib/libx.so\n"
  "7f3000000000-7f3000001000 ---p 00000000 00:00 0\n"
  "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]\n"
  "7ffc00100000-7ffc00102000 r-xp 00000000 00:00 0                          [vdso]\n"
  "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";

struct want {
  uint64_t start, end, off;
  const char *perms;
  unsigned maj, min;
  uint64_t inode;
  const char *path;       /* NULL: anonymous */
  int mod;                /* index into mods[], -1 for none */
};

struct want_mod {
  const char *path, *name;
  uint64_t start, end, map_start, map_off;
  unsigned maj, min;
  uint64_t inode;
  int deleted;
};

static const struct want want[] = {
  { 0x55d0c0a00000, 0x55d0c0a02000, 0x0000, "r--p", 8, 1, 1234, "/usr/bin/my prog", 0 },
  { 0x55d0c0a02000, 0x55d0c0a05000, 0x2000, "r-xp", 8, 1, 1234, "/usr/bin/my prog", 0 },
  { 0x55d0c0a05000, 0x55d0c0a06000, 0x5000, "r--p", 8, 1, 1234, "/usr/bin/my prog", 0 },
  { 0x55d0c0a06000, 0x55d0c0a07000, 0x5000, "rw-p", 8, 1, 1234, "/usr/bin/my prog", 0 },
  { 0x55d0c0a07000, 0x55d0c0a08000, 0, "rw-p", 0, 0, 0, NULL, -1 },
  { 0x55d0c1000000, 0x55d0c1021000, 0, "rw-p", 0, 0, 0, "[heap]", -1 },
  { 0x7f0000000000, 0x7f0000001000, 0, "r-xp", 0, 5, 99, "/memfd:jit", 1 },
  { 0x7f1000001000, 0x7f1000010000, 0x1000, "r-xp", 0xfd, 0, 555, "/tmp/old lib.so", 2 },
  { 0x7f1000010000, 0x7f1000011000, 0x10000, "rw-p", 0xfd, 0, 555, "/tmp/old lib.so", 2 },
  { 0x7f2000000000, 0x7f2000001000, 0, "r-xp", 8, 2, 10, "/lib/libx.so", 3 },
  { 0x7f2000001000, 0x7f2000002000, 0, "r-xp", 8, 2, 11, "/lib/libx.so", 4 },
  { 0x7f3000000000, 0x7f3000001000, 0, "---p", 0, 0, 0, NULL, -1 },
  { 0x7ffc00000000, 0x7ffc00021000, 0, "rw-p", 0, 0, 0, "[stack]", -1 },
  { 0x7ffc00100000, 0x7ffc00102000, 0, "r-xp", 0, 0, 0, "[vdso]", 5 },
  { 0xffffffffff600000, 0xffffffffff601000, 0, "--xp", 0, 0, 0, "[vsyscall]", -1 },
};

static const struct want_mod want_mods[] = {
  { "/usr/bin/my prog", "my prog", 0x55d0c0a00000, 0x55d0c0a07000, 0x55d0c0a00000, 0, 8, 1,
    1234, 0 },
  { "/memfd:jit", "memfd:jit", 0x7f0000000000, 0x7f0000001000, 0x7f0000000000, 0, 0, 5, 99, 1 },
  { "/tmp/old lib.so", "old lib.so", 0x7f1000001000, 0x7f1000011000, 0x7f1000001000, 0x1000,
    0xfd, 0, 555, 1 },
  /* the same path, another inode (the file was replaced): two modules */
  { "/lib/libx.so", "libx.so", 0x7f2000000000, 0x7f2000001000, 0x7f2000000000, 0, 8, 2, 10, 0 },
  { "/lib/libx.so", "libx.so", 0x7f2000001000, 0x7f2000002000, 0x7f2000001000, 0, 8, 2, 11, 0 },
  /* the vDSO is a module without a file */
  { "[vdso]", "[vdso]", 0x7ffc00100000, 0x7ffc00102000, 0x7ffc00100000, 0, 0, 0, 0, 0 },
};

#define NW (sizeof want / sizeof *want)
#define NM (sizeof want_mods / sizeof *want_mods)

static void check_text(void)
{
  struct maps *mp;
  CHECK_INT(maps_parse(text, 0, &mp), 0, "maps_parse");
  CHECK_INT(mp->pid, 0, "pid");
  CHECK_STR(mp->root, "", "root of an offline maps");
  CHECK_INT(mp->n, NW, "number of mappings");
  CHECK_INT(mp->nmods, NM, "number of modules");
  CHECK(mp->text && !strncmp(mp->text, "55d0c0a00000-", 13), "raw text not kept");
  for (size_t i = 0; i < NM; i++) {
    const struct want_mod *w = &want_mods[i];
    const struct module *m = mp->mods[i];
    char what[64];
    snprintf(what, sizeof what, "module %zu", i);
    CHECK_STR(m->path, w->path, what);
    CHECK_STR(m->name, w->name, what);
    if (m->start != w->start || m->end != w->end || m->map_start != w->map_start ||
        m->map_off != w->map_off)
      FAIL("%s (%s): start/end/map_start/map_off 0x%" PRIx64 "/0x%" PRIx64 "/0x%" PRIx64
           "/0x%" PRIx64 ", want 0x%" PRIx64 "/0x%" PRIx64 "/0x%" PRIx64 "/0x%" PRIx64, what,
           w->path, m->start, m->end, m->map_start, m->map_off, w->start, w->end,
           w->map_start, w->map_off);
    CHECK_HEX(m->dev, makedev(w->maj, w->min), what);
    CHECK_INT(m->inode, w->inode, what);
    CHECK_INT(m->deleted, w->deleted, what);
    CHECK(!m->elf && !m->elf_tried, "%s: ELF opened during parsing", what);
  }
  for (size_t i = 0; i < NW; i++) {
    const struct want *w = &want[i];
    const struct map *m = &mp->v[i];
    if (m->start != w->start || m->end != w->end || m->offset != w->off)
      FAIL("mapping %zu: 0x%" PRIx64 "-0x%" PRIx64 " off 0x%" PRIx64 ", want 0x%" PRIx64
           "-0x%" PRIx64 " off 0x%" PRIx64, i, m->start, m->end, m->offset, w->start, w->end,
           w->off);
    char what[64];
    snprintf(what, sizeof what, "mapping %zu (0x%" PRIx64 ")", i, w->start);
    CHECK_STR(m->perms, w->perms, what);
    CHECK_HEX(m->dev, makedev(w->maj, w->min), what);
    CHECK_INT(m->inode, w->inode, what);
    if (!w->path)
      CHECK(!m->path, "%s: path \"%s\", want NULL", what, m->path);
    else
      CHECK_STR(m->path, w->path, what);
    if (w->mod < 0)
      CHECK(!m->mod, "%s: has a module, want none", what);
    else
      CHECK(m->mod == mp->mods[w->mod], "%s: module is not module %d", what, w->mod);

    /* lookups: start inclusive, end exclusive */
    CHECK(maps_find(mp, w->start) == m, "maps_find(start) of %s", what);
    CHECK(maps_find(mp, w->end - 1) == m, "maps_find(end-1) of %s", what);
    CHECK(maps_find(mp, w->start + (w->end - w->start) / 2) == m, "maps_find(mid) of %s", what);
    const struct map *after = maps_find(mp, w->end);
    if (i + 1 < NW && want[i + 1].start == w->end)
      CHECK(after == &mp->v[i + 1], "maps_find(end) of %s is not the next mapping", what);
    else
      CHECK(!after, "maps_find(end) of %s: found 0x%" PRIx64 ", want none", what, after->start);
    if (!i || want[i - 1].end != w->start)
      CHECK(!maps_find(mp, w->start - 1), "maps_find(start-1) of %s: want none", what);
  }
  CHECK(!maps_find(mp, 0), "maps_find(0)");
  CHECK(!maps_find(mp, 0x7f1000020000), "maps_find in a backwards (end < start) line");
  CHECK(!maps_find(mp, 0x7f1000030000), "maps_find in a line without an inode");
  CHECK(!maps_find(mp, UINT64_MAX), "maps_find(UINT64_MAX)");

  CHECK(maps_module_by_name(mp, "libx") == mp->mods[3], "maps_module_by_name(libx)");
  CHECK(maps_module_by_name(mp, "old") == mp->mods[2], "maps_module_by_name(old)");
  CHECK(!maps_module_by_name(mp, "libz"), "maps_module_by_name(libz)");
  /* offline, the files do not exist here: no module ELF, no crash */
  struct module *mod = maps_module(mp, 0x55d0c0a02000);
  CHECK(mod == mp->mods[0], "maps_module(text of my prog)");
  CHECK(!mod->elf && mod->elf_tried, "maps_module of a missing file: elf %p tried %d",
        (void *)mod->elf, mod->elf_tried);
  CHECK(!maps_module(mp, 0x7ffc00000010), "maps_module([stack])");
  mod = maps_module(mp, 0x7ffc00100010);
  CHECK(mod == mp->mods[5] && !mod->elf, "maps_module([vdso]) offline");
  CHECK(!maps_module(mp, 0x1000), "maps_module(unmapped)");
  maps_free(mp);
}

static void check_edge_texts(void)
{
  struct maps *mp;
  CHECK_INT(maps_parse("", 0, &mp), 0, "maps_parse(\"\")");
  CHECK_INT(mp->n, 0, "mappings of empty text");
  CHECK(!maps_find(mp, 0x1000), "maps_find in empty maps");
  maps_free(mp);

  /* " (deleted)" must be a suffix; only a path of more than the suffix counts */
  CHECK_INT(maps_parse("1000-2000 r-xp 00000000 08:01 7 /a (deleted) b\n"
                       "3000-4000 r-xp 00000000 08:01 8  (deleted)\n"
                       "5000-6000 r-xp 00000000 08:01 9 /x (deleted)\n", 4242, &mp),
            0, "maps_parse deleted variants");
  CHECK_INT(mp->pid, 4242, "pid");
  CHECK_STR(mp->root, "/proc/4242/root", "root");
  CHECK_INT(mp->n, 3, "mappings of deleted variants");
  CHECK_INT(mp->nmods, 2, "modules of deleted variants");
  CHECK_STR(mp->mods[0]->path, "/a (deleted) b", "path with (deleted) inside");
  CHECK_INT(mp->mods[0]->deleted, 0, "deleted flag of \"(deleted) b\"");
  CHECK_STR(mp->v[1].path, "(deleted)", "relative path");
  CHECK(!mp->v[1].mod, "a path not starting with / has a module");
  CHECK_STR(mp->mods[1]->path, "/x", "short deleted path");
  CHECK_STR(mp->mods[1]->name, "x", "short deleted name");
  CHECK_INT(mp->mods[1]->deleted, 1, "short deleted flag");
  maps_free(mp);
}

static void self_fn(void)
{
}

static void check_live(void)
{
  struct maps *mp;
  CHECK_INT(maps_load(getpid(), &mp), 0, "maps_load(self)");
  CHECK_INT(mp->pid, getpid(), "pid of maps_load(self)");
  char exe[PATH_MAX];
  ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
  CHECK(l > 0, "readlink /proc/self/exe: %s", strerror(errno));
  exe[l] = 0;
  uint64_t fn = (uint64_t)(uintptr_t)&self_fn;
  const struct map *m = maps_find(mp, fn);
  CHECK(m, "maps_find(self_fn) found nothing");
  CHECK(m->perms[2] == 'x', "mapping of self_fn not executable: %s", m->perms);
  CHECK(m->mod, "mapping of self_fn has no module");
  CHECK_STR(m->mod->path, exe, "module path of self_fn");
  CHECK(m->mod->start <= fn && fn < m->mod->end, "module extent does not contain self_fn");
  int local = 0;
  const struct map *s = maps_find(mp, (uint64_t)(uintptr_t)&local);
  CHECK(s, "maps_find(stack variable) found nothing");
  CHECK_STR(s->path, "[stack]", "mapping of a stack variable");
  struct module *mod = maps_module(mp, fn);
  CHECK(mod == m->mod && mod->elf, "maps_module(self_fn): ELF not opened");

  /* the vDSO: a module whose ELF is read from our memory, bias from its load segment */
  uint64_t vdso = getauxval(AT_SYSINFO_EHDR);
  if (vdso) {
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(uintptr_t)vdso;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(uintptr_t)(vdso + eh->e_phoff);
    uint64_t bias = UINT64_MAX;
    for (int i = 0; i < eh->e_phnum; i++)
      if (ph[i].p_type == PT_LOAD && bias == UINT64_MAX)
        bias = vdso - (ph[i].p_vaddr - ph[i].p_offset);
    mod = maps_module(mp, vdso + 16);
    CHECK(mod, "maps_module([vdso]) found nothing");
    CHECK_STR(mod->path, "[vdso]", "vDSO module path");
    CHECK(mod->elf, "vDSO module has no ELF");
    CHECK_HEX(mod->bias, bias, "vDSO bias");
  }
  maps_free(mp);
  CHECK_INT(maps_load(INT_MAX, &mp), -ESRCH, "maps_load(no such pid)");
}

int main(void)
{
  check_text();
  check_edge_texts();
  check_live();
  return 0;
}
