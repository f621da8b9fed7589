/* elf.c on our own executable: symbols both ways, bias, code bytes, .eh_frame_hdr, build-id. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <unistd.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "unit.h"

int unit_global_fn(int x);
int unit_global_obj = 42;
__thread long unit_tls_var = 5;   /* local-exec in the executable: no relocation */
static volatile int sink;

enum { KNOWN_LINE = __LINE__ + 1 };
static NOIPA int known_static_fn(int x)
{
  int s = 0;
  for (int i = 0; i < x; i++)
    s += i * sink + (s >> 3);
  sink = s;
  return s + 7;
}
enum { KNOWN_END_LINE = __LINE__ - 1 };

NOIPA int unit_global_fn(int x)
{
  sink = x * 3;
  return known_static_fn(x) ^ sink;
}

static uint64_t A(const void *p)
{
  return (uint64_t)(uintptr_t)p;
}

#define FN(f) ((uint64_t)(uintptr_t)(f))

/* What the dynamic loader knows of the main program: bias, eh_frame_hdr, build-id. */
struct self_info {
  uint64_t bias, eh_hdr;
  const uint8_t *build_id;
  size_t build_id_len;
  int found;
};

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
  struct self_info *si = arg;
  (void)size;
  if (si->found++)
    return 1;   /* the main program comes first */
  si->bias = info->dlpi_addr;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_GNU_EH_FRAME)
      si->eh_hdr = ph->p_vaddr;
    if (ph->p_type != PT_NOTE)
      continue;
    const uint8_t *p = (const uint8_t *)(uintptr_t)(info->dlpi_addr + ph->p_vaddr);
    const uint8_t *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
      const uint8_t *name = p + sizeof *nh;
      const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
        si->build_id = desc;
        si->build_id_len = nh->n_descsz;
      }
      p = desc + ((nh->n_descsz + 3) & ~3u);
    }
  }
  return 1;
}

static void check_not_elf(const char *what, const void *bytes, size_t len)
{
  char path[] = "/tmp/vmstack-unit-elf-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
  unlink(path);
  CHECK(write(fd, bytes, len) == (ssize_t)len, "write: %s", strerror(errno));
  struct elf_file *ef = NULL;
  int rc = elf_file_open(fd, &ef);
  if (rc != -VMS_E_BADELF)
    FAIL("%s: elf_file_open returned %d, want -VMS_E_BADELF (%d)", what, rc, -VMS_E_BADELF);
  CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF, "%s: fd left open after a failed open", what);
}

int main(void)
{
  sink = 1;
  sink = unit_global_fn(3);

  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0, "open /proc/self/exe: %s", strerror(errno));
  struct elf_file *ef;
  CHECK_INT(elf_file_open(fd, &ef), 0, "elf_file_open(/proc/self/exe)");

  struct self_info si = { 0 };
  dl_iterate_phdr(phdr_cb, &si);
  CHECK(si.found, "dl_iterate_phdr found nothing");

  /* bias: from the maps' module, from elf_file_bias, and from the loader must agree */
  struct maps *mp;
  CHECK_INT(maps_load(getpid(), &mp), 0, "maps_load(self)");
  struct module *mod = maps_module(mp, FN(known_static_fn));
  CHECK(mod && mod->elf, "maps_module(known_static_fn) has no ELF");
  uint64_t bias = 0;
  CHECK_INT(elf_file_bias(ef, mod->map_start, mod->map_off, &bias), 0, "elf_file_bias");
  CHECK_HEX(bias, mod->bias, "elf_file_bias vs the module's bias");
  CHECK_HEX(bias, si.bias, "elf_file_bias vs the loader's bias");
  /* so does the code mapping (data mappings can share a file page with the segment before:
   * file offset alone cannot tell which segment they belong to) */
  for (size_t i = 0; i < mp->n; i++) {
    if (mp->v[i].mod != mod || mp->v[i].perms[2] != 'x')
      continue;
    uint64_t b = 0;
    CHECK_INT(elf_file_bias(ef, mp->v[i].start, mp->v[i].offset, &b), 0, "elf_file_bias(mapping)");
    CHECK_HEX(b, bias, "elf_file_bias of the code mapping");
  }
  uint16_t etype = 0;
  int efd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  CHECK_INT(pread(efd, &etype, 2, offsetof(Elf64_Ehdr, e_type)), 2, "read e_type");
  close(efd);
  CHECK_INT(elf_file_is_pie_or_dso(ef), etype == ET_DYN, "elf_file_is_pie_or_dso");

  /* a TLS variable of the executable: where it is from the thread pointer */
  {
    uint64_t fsb;
    __asm__("mov %%fs:0, %0" : "=r"(fsb));   /* tcbhead_t.tcb: the thread pointer itself */
    int64_t want = (int64_t)(A(&unit_tls_var) - fsb), got = 0;
    CHECK_INT(elf_file_tls_exe_offset(ef, "unit_tls_var", &got), 0, "elf_file_tls_exe_offset");
    CHECK_HEX((uint64_t)got, (uint64_t)want, "TLS offset of unit_tls_var");
    uint64_t got_slot;
    CHECK(elf_file_tls_got(ef, "unit_tls_var", &got_slot) == -ENOENT,
          "unit_tls_var has an initial-exec relocation");
  }

  /* address -> symbol */
  uint64_t va = FN(known_static_fn) - bias;
  const char *name = NULL;
  uint64_t off = 99;
  CHECK_INT(elf_file_symbol(ef, va, &name, &off), 0, "elf_file_symbol(known_static_fn)");
  CHECK_STR(name, "known_static_fn", "elf_file_symbol(known_static_fn)");
  CHECK_INT(off, 0, "offset at known_static_fn");
  CHECK_INT(elf_file_symbol(ef, va + 5, &name, &off), 0, "elf_file_symbol(known_static_fn+5)");
  CHECK_STR(name, "known_static_fn", "elf_file_symbol(known_static_fn+5)");
  CHECK_INT(off, 5, "offset at known_static_fn+5");
  CHECK_INT(elf_file_symbol(ef, 0, &name, &off), -ENOENT, "elf_file_symbol(0)");

  /* name -> address; its size bounds the function */
  uint64_t gva = 0, gsize = 0;
  CHECK_INT(elf_file_lookup(ef, "unit_global_fn", &gva, &gsize), 0, "elf_file_lookup(unit_global_fn)");
  CHECK_HEX(gva, FN(unit_global_fn) - bias, "elf_file_lookup(unit_global_fn) vaddr");
  CHECK(gsize > 0 && gsize < 4096, "unit_global_fn size %" PRIu64 " implausible", gsize);
  CHECK_INT(elf_file_symbol(ef, gva + gsize - 1, &name, &off), 0, "symbol at the last byte");
  CHECK_STR(name, "unit_global_fn", "symbol at the last byte of unit_global_fn");
  CHECK_INT(off, gsize - 1, "offset at the last byte of unit_global_fn");
  if (!elf_file_symbol(ef, gva + gsize, &name, &off))
    CHECK(strcmp(name, "unit_global_fn"), "unit_global_fn found past its end (+%" PRIu64 ")", off);
  uint64_t sva = 0, ssize = 0;
  CHECK_INT(elf_file_lookup(ef, "known_static_fn", &sva, &ssize), 0, "elf_file_lookup(static)");
  CHECK_HEX(sva, va, "elf_file_lookup(known_static_fn) vaddr");
  CHECK_INT(elf_file_lookup(ef, "main", &sva, NULL), 0, "elf_file_lookup(main) without size");
  CHECK_HEX(sva, FN(main) - bias, "elf_file_lookup(main) vaddr");
  CHECK_INT(elf_file_lookup(ef, "unit_global_obj", &sva, &ssize), 0, "elf_file_lookup(object)");
  CHECK_HEX(sva, A(&unit_global_obj) - bias, "elf_file_lookup(unit_global_obj) vaddr");
  CHECK_INT(ssize, sizeof unit_global_obj, "elf_file_lookup(unit_global_obj) size");
  CHECK_INT(elf_file_lookup(ef, "no_such_symbol_here", &sva, &ssize), -ENOENT, "lookup(missing)");

  /* code bytes from the file equal the bytes in memory */
  uint8_t file_bytes[32];
  CHECK_INT(elf_file_read(ef, va, file_bytes, sizeof file_bytes), 0, "elf_file_read(code)");
  CHECK(!memcmp(file_bytes, (const void *)(uintptr_t)FN(known_static_fn), sizeof file_bytes),
        "elf_file_read: code bytes differ from memory");
  CHECK_INT(elf_file_read(ef, A(&unit_global_obj) - bias, file_bytes, 4), -EFAULT,
            "elf_file_read of a writable segment");
  CHECK_INT(elf_file_read(ef, UINT64_MAX - 2, file_bytes, 8), -EFAULT, "elf_file_read wrapping");
  uint64_t tva = 0, tsize = 0;
  const uint8_t *tbytes = NULL;
  CHECK_INT(elf_file_section(ef, ".text", &tva, &tsize, &tbytes), 0, "elf_file_section(.text)");
  CHECK(tva <= va && va < tva + tsize, ".text does not contain known_static_fn");
  CHECK(tbytes && !memcmp(tbytes + (va - tva), file_bytes, sizeof file_bytes),
        ".text section bytes differ from elf_file_read");
  CHECK(!memcmp(tbytes + (gva - tva), (const void *)(uintptr_t)FN(unit_global_fn), 16),
        ".text bytes differ from memory");
  CHECK_INT(elf_file_section(ef, ".no_such_section", &tva, &tsize, NULL), -ENOENT,
            "elf_file_section(missing)");

  /* .eh_frame_hdr: where the loader has it, count and table as in memory */
  uint64_t hdr = 0, table = 0, count = 0;
  CHECK_INT(elf_file_eh_frame_hdr(ef, &hdr, &table, &count), 0, "elf_file_eh_frame_hdr");
  CHECK_HEX(hdr, si.eh_hdr, "eh_frame_hdr address vs PT_GNU_EH_FRAME");
  const uint8_t *mh = (const uint8_t *)(uintptr_t)(bias + hdr);
  uint32_t mcount;
  memcpy(&mcount, mh + 8, 4);
  CHECK_INT(mh[0], 1, "eh_frame_hdr version in memory");
  CHECK_HEX(table, hdr + 12, "eh_frame_hdr table address");
  CHECK_INT(count, mcount, "eh_frame_hdr fde count vs memory");
  CHECK(count >= 4 && count < 100000, "eh_frame_hdr fde count %" PRIu64 " implausible", count);
  /* the table is sorted and covers known_static_fn */
  const int32_t *tab = (const int32_t *)(uintptr_t)(bias + table);
  int covered = 0;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t start = bias + hdr + (uint64_t)(int64_t)tab[2 * i];
    if (i && tab[2 * i] < tab[2 * i - 2])
      FAIL("eh_frame_hdr table not sorted at entry %" PRIu64, i);
    if (start == FN(known_static_fn))
      covered = 1;
  }
  CHECK(covered, "no FDE starts at known_static_fn");

  /* build-id as the loader sees it in the note */
  size_t blen = 0;
  const uint8_t *bid = elf_file_build_id(ef, &blen);
  CHECK(si.build_id, "the executable has no build-id note (linked without --build-id?)");
  CHECK_INT(blen, si.build_id_len, "build-id length");
  CHECK(bid && !memcmp(bid, si.build_id, blen), "build-id bytes differ from the loaded note");

  /* source line of the function's entry, when built with debug info */
  uint64_t dva, dsize;
  if (!elf_file_section(ef, ".debug_info", &dva, &dsize, NULL)) {
    const char *file = NULL;
    int line = 0;
    CHECK_INT(elf_file_line(ef, va, &file, &line), 0, "elf_file_line(known_static_fn)");
    /* an absolute path (made from DW_AT_comp_dir), folded, naming this very file */
    static const char tail[] = "/tests/unit/test_elf.c";
    size_t fl = strlen(file), tl = sizeof tail - 1;
    CHECK(file[0] == '/' && fl > tl && !strcmp(file + fl - tl, tail) && !strstr(file, "/./") &&
          !strstr(file, "/../") && !access(file, R_OK), "elf_file_line file \"%s\"", file);
    CHECK(line >= KNOWN_LINE && line <= KNOWN_END_LINE, "elf_file_line line %d of known_static_fn,"
          " want %d..%d", line, KNOWN_LINE, KNOWN_END_LINE);
  }

  /* things that are not ELF files */
  static const char text[] = "#!/bin/sh\necho this is not an ELF file\n";
  check_not_elf("text file", text, sizeof text - 1);
  check_not_elf("empty file", "", 0);
  check_not_elf("ELF magic only", "\177ELF\2\1\1", 7);
  int dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct elf_file *dummy = NULL;
  CHECK_INT(elf_file_open(dfd, &dummy), -VMS_E_BADELF, "elf_file_open(a directory)");

  maps_free(mp);
  elf_file_close(ef);
  return 0;
}
