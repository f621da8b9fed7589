/* Thread-local variables of another process (see tls.h). */
#include <errno.h>
#include <stdint.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/tls.h"

#define TLS_MODID_MAX 65536

int tls_locate(struct mem *mem, struct module *m, int exe, const char *name,
               struct tls_var *ret)
{
  uint64_t got, off, modid_got, off_got, modid;
  *ret = (struct tls_var){ TLS_NONE, 0, 0 };
  if (!m->elf)
    return -ENOENT;
  if (!elf_file_tls_got(m->elf, name, &got) && !mem_read(mem, got + m->bias, &off, 8) && off) {
    *ret = (struct tls_var){ TLS_STATIC, (int64_t)off, 0 };
    return 0;
  }
  if (!elf_file_tls_dtv_got(m->elf, name, &modid_got, &off_got) &&
      !mem_read(mem, modid_got + m->bias, &modid, 8) &&
      !mem_read(mem, off_got + m->bias, &off, 8) && modid && modid < TLS_MODID_MAX) {
    *ret = (struct tls_var){ TLS_DTV, (int64_t)off, modid };
    return 0;
  }
  int64_t eoff;
  if (exe && !elf_file_tls_exe_offset(m->elf, name, &eoff)) {
    *ret = (struct tls_var){ TLS_STATIC, eoff, 0 };
    return 0;
  }
  return -ENOENT;
}

static int rptr(struct mem *mem, uint64_t addr, uint64_t *ret)
{
  *ret = 0;
  if (!addr || (addr & 7))
    return -VMS_E_BADDATA;
  return mem_read(mem, addr, ret, 8) ? -VMS_E_BADDATA : 0;
}

int tls_addr(struct mem *mem, const struct tls_var *v, uint64_t fs_base, uint64_t *ret_addr)
{
  *ret_addr = 0;
  if (v->kind == TLS_STATIC) {
    *ret_addr = fs_base + (uint64_t)v->off;
    return 0;
  }
  if (v->kind != TLS_DTV)
    return -ENOENT;
  /* glibc: tcbhead_t.dtv at fs_base + 8; dtv[-1] holds the number of entries; each entry
   * is { void *val; void *to_free }, val -1 while the block is unallocated */
  uint64_t dtv, len, ent;
  if (rptr(mem, fs_base + 8, &dtv) || !dtv || rptr(mem, dtv - 16, &len))
    return -VMS_E_BADDATA;
  if (v->modid > len || rptr(mem, dtv + 16 * v->modid, &ent))
    return -VMS_E_BADDATA;
  if (!ent || ent == UINT64_MAX)
    return 0;
  *ret_addr = ent + (uint64_t)v->off;
  return 0;
}
