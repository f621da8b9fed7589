/* ELF access through libelf/libdw: symbols, build-id, debug files, unwind tables, lines. */
#include <elf.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmstack/elf.h"
#include "vmstack/err.h"

/* -- Types ---------------------------------------------------------------- */

struct image;

struct sym {
  uint64_t addr, size;
  const char *name;   /* points into an Elf's string data (kept open) */
  const struct image *im;     /* where it was read: its entry's and name's file offsets */
  uint64_t ent_off, name_off;
};

struct seg {
  uint64_t vaddr, memsz, filesz, offset;
  uint32_t flags;
};

struct path_str {
  struct path_str *next;
  char s[];
};

/* File bytes read outside libelf's section accessors (elf_file_read, section bytes), kept
 * when reads are tracked so that a snapshot can carry the parts of the file it used. */
struct spans {
  struct { uint64_t off, len; } *v;
  size_t n, cap;
};

struct image {
  int fd;
  void *owned;          /* bytes the Elf was made from (elf_memory), freed with it */
  Elf *elf;
  const uint8_t *raw;   /* whole file, mapped by libelf */
  size_t rawsize;
  struct spans *used;   /* (when tracked) */
  int dwarf_used;       /* its DWARF was opened: its .debug_* sections were used */
};

static int track_reads;

struct elf_file {
  struct image main, dbg;
  uint16_t type;
  struct seg *segs;
  size_t nsegs;
  uint8_t build_id[64];
  size_t build_id_len;
  struct sym *syms;      /* functions, sorted by address */
  size_t nsyms;
  int syms_loaded;
  Dwarf *dw;
  int dw_tried;
  struct path_str *paths;  /* source paths made absolute, kept for the file's lifetime */
  Dwarf_CFI *cfi;
  int cfi_tried;
  int eh_err;            /* cached .eh_frame_hdr lookup */
  uint64_t eh_hdr, eh_table, eh_count;
};

static int parse_eh_frame_hdr(const struct elf_file *ef, uint64_t *ret_hdr,
                              uint64_t *ret_table, uint64_t *ret_count);
static int section_bytes(const struct elf_file *ef, const char *name, uint64_t *ret_vaddr,
                         uint64_t *ret_size, const uint8_t **ret_bytes, uint64_t *ret_off);

/* -- Images --------------------------------------------------------------- */

static int image_open(struct image *im, int fd)
{
  static int inited;
  if (!inited) {
    elf_version(EV_CURRENT);
    inited = 1;
  }
  im->fd = fd;
  im->elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  if (!im->elf || elf_kind(im->elf) != ELF_K_ELF) {
    if (im->elf)
      elf_end(im->elf);
    im->elf = NULL;
    close(fd);
    im->fd = -1;
    return -VMS_E_BADELF;
  }
  im->raw = (const uint8_t *)elf_rawfile(im->elf, &im->rawsize);
  if (track_reads)
    im->used = calloc(1, sizeof *im->used);
  return 0;
}

static void note_used(const struct image *im, uint64_t off, uint64_t len)
{
  struct spans *u = im->used;
  if (!u || !len)
    return;
  if (u->n && u->v[u->n - 1].off + u->v[u->n - 1].len == off) {
    u->v[u->n - 1].len += len;
    return;
  }
  if (u->n == u->cap) {
    size_t nc = u->cap ? 2 * u->cap : 64;
    void *nv = realloc(u->v, nc * sizeof *u->v);
    if (!nv)
      return;
    u->v = nv;
    u->cap = nc;
  }
  u->v[u->n].off = off;
  u->v[u->n++].len = len;
}

/* A symbol a lookup found: its entry and its name are used (the rest of the table is not) */
static void note_sym(const struct image *im, const GElf_Shdr *symsh, size_t i,
                     uint32_t st_name, const char *name)
{
  GElf_Shdr strsh;
  Elf_Scn *str = im->used ? elf_getscn(im->elf, symsh->sh_link) : NULL;
  if (!str || !gelf_getshdr(str, &strsh))
    return;
  note_used(im, symsh->sh_offset + i * symsh->sh_entsize, symsh->sh_entsize);
  note_used(im, strsh.sh_offset + st_name, strlen(name) + 1);
}

void elf_track_reads(int on)
{
  track_reads = on;
}

static void image_close(struct image *im)
{
  if (im->used)
    free(im->used->v);
  free(im->used);
  im->used = NULL;
  if (im->elf)
    elf_end(im->elf);
  free(im->owned);
  im->owned = NULL;
  if (im->fd >= 0)
    close(im->fd);
  im->elf = NULL;
  im->fd = -1;
}

static Elf_Scn *find_scn(Elf *elf, const char *name, GElf_Shdr *ret_sh)
{
  size_t shstrndx;
  if (elf_getshdrstrndx(elf, &shstrndx))
    return NULL;
  for (Elf_Scn *s = elf_nextscn(elf, NULL); s; s = elf_nextscn(elf, s)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(s, &sh))
      continue;
    const char *n = elf_strptr(elf, shstrndx, sh.sh_name);
    if (n && !strcmp(n, name)) {
      *ret_sh = sh;
      return s;
    }
  }
  return NULL;
}

static void read_build_id(struct elf_file *ef, Elf *elf, uint8_t *out, size_t *ret_len)
{
  *ret_len = 0;
  (void)ef;
  for (Elf_Scn *s = elf_nextscn(elf, NULL); s; s = elf_nextscn(elf, s)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(s, &sh) || sh.sh_type != SHT_NOTE)
      continue;
    Elf_Data *d = elf_getdata(s, NULL);
    if (!d)
      continue;
    size_t off = 0, noff, doff;
    GElf_Nhdr nh;
    while ((off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          !memcmp((char *)d->d_buf + noff, "GNU", 4) && nh.n_descsz <= 64) {
        memcpy(out, (char *)d->d_buf + doff, nh.n_descsz);
        *ret_len = nh.n_descsz;
        return;
      }
    }
  }
}

/* -- Opening -------------------------------------------------------------- */

static int file_init(struct elf_file *ef, struct elf_file **ret_ef);

int elf_file_open(int fd, struct elf_file **ret_ef)
{
  struct elf_file *ef = calloc(1, sizeof *ef);
  if (!ef) {
    close(fd);
    return -ENOMEM;
  }
  ef->dbg.fd = -1;
  int r = image_open(&ef->main, fd);
  if (r) {
    free(ef);
    return r;
  }
  return file_init(ef, ret_ef);
}

int elf_file_open_mem(void *buf, size_t len, struct elf_file **ret_ef)
{
  struct elf_file *ef = calloc(1, sizeof *ef);
  if (!ef) {
    free(buf);
    return -ENOMEM;
  }
  ef->dbg.fd = ef->main.fd = -1;
  ef->main.owned = buf;
  elf_version(EV_CURRENT);
  ef->main.elf = elf_memory(buf, len);
  if (!ef->main.elf || elf_kind(ef->main.elf) != ELF_K_ELF) {
    elf_file_close(ef);
    return -VMS_E_BADELF;
  }
  ef->main.raw = buf;
  ef->main.rawsize = len;
  if (track_reads)
    ef->main.used = calloc(1, sizeof *ef->main.used);
  return file_init(ef, ret_ef);
}

static int file_init(struct elf_file *ef, struct elf_file **ret_ef)
{
  GElf_Ehdr eh;
  size_t phnum;
  if (!gelf_getehdr(ef->main.elf, &eh) || elf_getphdrnum(ef->main.elf, &phnum)) {
    elf_file_close(ef);
    return -VMS_E_BADELF;
  }
  ef->type = eh.e_type;
  ef->segs = calloc(phnum ? phnum : 1, sizeof *ef->segs);
  if (!ef->segs) {
    elf_file_close(ef);
    return -ENOMEM;
  }
  for (size_t i = 0; i < phnum; i++) {
    GElf_Phdr ph;
    if (gelf_getphdr(ef->main.elf, (int)i, &ph) && ph.p_type == PT_LOAD)
      ef->segs[ef->nsegs++] = (struct seg){ ph.p_vaddr, ph.p_memsz, ph.p_filesz, ph.p_offset,
                                            ph.p_flags };
  }
  read_build_id(ef, ef->main.elf, ef->build_id, &ef->build_id_len);
  ef->eh_err = parse_eh_frame_hdr(ef, &ef->eh_hdr, &ef->eh_table, &ef->eh_count);
  *ret_ef = ef;
  return 0;
}

void elf_file_close(struct elf_file *ef)
{
  if (!ef)
    return;
  if (ef->dw)
    dwarf_end(ef->dw);
  if (ef->cfi)
    dwarf_cfi_end(ef->cfi);   /* (from dwarf_getcfi_elf: ours to end) */
  image_close(&ef->dbg);
  image_close(&ef->main);
  for (struct path_str *p = ef->paths, *n; p; p = n) {
    n = p->next;
    free(p);
  }
  free(ef->segs);
  free(ef->syms);
  free(ef);
}

/* -- Separate debug files ------------------------------------------------- */

static int try_debug(struct elf_file *ef, const char *path)
{
  /* (never blocking, regular files only: the path may lie in the target's own root) */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
    close(fd);
    return 0;
  }
  if (fd < 0)
    return 0;
  struct image im = { .fd = -1 };
  if (image_open(&im, fd))
    return 0;
  /* a debug file must describe this very build: compare build-ids when both have one */
  uint8_t bid[64];
  size_t blen;
  read_build_id(ef, im.elf, bid, &blen);
  if (ef->build_id_len && blen && (blen != ef->build_id_len || memcmp(bid, ef->build_id, blen))) {
    image_close(&im);
    return 0;
  }
  GElf_Shdr sh;
  if (!find_scn(im.elf, ".symtab", &sh) && !find_scn(im.elf, ".debug_info", &sh)) {
    image_close(&im);
    return 0;
  }
  ef->dbg = im;
  return 1;
}

static int try_roots(struct elf_file *ef, const char *root, const char *path)
{
  char p[PATH_MAX];
  if (root && *root) {
    snprintf(p, sizeof p, "%s%s", root, path);
    if (try_debug(ef, p))
      return 1;
  }
  return try_debug(ef, path);
}

int elf_file_find_debug(struct elf_file *ef, const char *root, const char *path)
{
  if (ef->dbg.elf)
    return 1;
  char p[PATH_MAX];
  if (ef->build_id_len >= 2) {
    int n = snprintf(p, sizeof p, "/usr/lib/debug/.build-id/%02x/", ef->build_id[0]);
    for (size_t i = 1; i < ef->build_id_len && n < (int)sizeof p - 8; i++)
      n += snprintf(p + n, sizeof p - (size_t)n, "%02x", ef->build_id[i]);
    snprintf(p + n, sizeof p - (size_t)n, ".debug");
    if (try_roots(ef, root, p))
      return 1;
  }
  GElf_Shdr sh;
  Elf_Scn *s = find_scn(ef->main.elf, ".gnu_debuglink", &sh);
  Elf_Data *d = s ? elf_getdata(s, NULL) : NULL;
  if (!d || !d->d_size || !memchr(d->d_buf, 0, d->d_size) || !path)
    return 0;
  const char *link = d->d_buf;
  if (strchr(link, '/'))
    return 0;
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    return 0;
  *slash = 0;
  static const char *const fmts[] = { "%s/%s", "%s/.debug/%s", "/usr/lib/debug%s/%s" };
  for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
    snprintf(p, sizeof p, fmts[i], dir, link);
    if (strcmp(p, path) && try_roots(ef, root, p))
      return 1;
  }
  return 0;
}

/* -- Addresses ------------------------------------------------------------ */

int elf_file_bias(const struct elf_file *ef, uint64_t map_start, uint64_t map_off,
                  uint64_t *ret_bias)
{
  for (size_t i = 0; i < ef->nsegs; i++) {
    const struct seg *s = &ef->segs[i];
    uint64_t pg_off = s->offset & ~0xfffull;
    if (map_off >= pg_off && map_off < s->offset + (s->filesz ? s->filesz : 1)) {
      *ret_bias = map_start - map_off - (s->vaddr - s->offset);
      return 0;
    }
  }
  return -VMS_E_BADELF;
}

int elf_file_is_pie_or_dso(const struct elf_file *ef)
{
  return ef->type == ET_DYN;
}

int elf_file_read(const struct elf_file *ef, uint64_t vaddr, void *buf, size_t len)
{
  for (size_t i = 0; i < ef->nsegs; i++) {
    const struct seg *s = &ef->segs[i];
    if ((s->flags & PF_W) || vaddr < s->vaddr || vaddr + len > s->vaddr + s->filesz ||
        vaddr + len < vaddr)
      continue;
    uint64_t off = s->offset + (vaddr - s->vaddr);
    if (!ef->main.raw || off > ef->main.rawsize || len > ef->main.rawsize - off)
      return -EFAULT;
    note_used(&ef->main, off, len);
    memcpy(buf, ef->main.raw + off, len);
    return 0;
  }
  return -EFAULT;
}

int elf_file_fde_start(const struct elf_file *ef, size_t i, uint64_t *ret_vaddr)
{
  if (ef->eh_err || i >= ef->eh_count)
    return -ENOENT;
  uint64_t va, size, foff;
  const uint8_t *b;
  if (section_bytes(ef, ".eh_frame_hdr", &va, &size, &b, &foff) || !b)
    return -ENOENT;
  int32_t rel;
  note_used(&ef->main, foff + (ef->eh_table - va) + i * 8, 8);
  memcpy(&rel, b + (ef->eh_table - va) + i * 8, 4);
  *ret_vaddr = va + (uint64_t)(int64_t)rel;
  return 0;
}

int elf_file_fde(struct elf_file *ef, uint64_t vaddr, uint64_t *ret_start, uint64_t *ret_end,
                 int *ret_cfa_reg, int64_t *ret_cfa_off)
{
  if (!ef->cfi_tried) {
    ef->cfi_tried = 1;
    ef->cfi = dwarf_getcfi_elf(ef->main.elf);
    /* libdw reads these as it likes: all of them are used */
    static const char *const cfi_scns[] = { ".eh_frame", ".eh_frame_hdr", ".debug_frame" };
    for (size_t i = 0; ef->main.used && i < sizeof cfi_scns / sizeof *cfi_scns; i++) {
      uint64_t va, size, off;
      const uint8_t *b;
      if (!section_bytes(ef, cfi_scns[i], &va, &size, &b, &off) && b)
        note_used(&ef->main, off, size);
    }
  }
  Dwarf_Frame *fr;
  if (!ef->cfi || dwarf_cfi_addrframe(ef->cfi, vaddr, &fr))
    return -ENOENT;
  Dwarf_Addr s, e;
  Dwarf_Op *ops;
  size_t nops;
  int r = -EINVAL;
  if (dwarf_frame_info(fr, &s, &e, NULL) >= 0 && !dwarf_frame_cfa(fr, &ops, &nops) && nops == 1 &&
      (ops[0].atom == DW_OP_bregx || (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31))) {
    *ret_start = s;
    *ret_end = e;
    *ret_cfa_reg = ops[0].atom == DW_OP_bregx ? (int)ops[0].number : ops[0].atom - DW_OP_breg0;
    *ret_cfa_off = ops[0].atom == DW_OP_bregx ? (int64_t)ops[0].number2 : (int64_t)ops[0].number;
    r = 0;
  }
  free(fr);
  return r;
}

const uint8_t *elf_file_build_id(const struct elf_file *ef, size_t *ret_len)
{
  *ret_len = ef->build_id_len;
  return ef->build_id_len ? ef->build_id : NULL;
}

/* A section's address, size, bytes (NULL for NOBITS) and file offset. */
static int section_bytes(const struct elf_file *ef, const char *name, uint64_t *ret_vaddr,
                         uint64_t *ret_size, const uint8_t **ret_bytes, uint64_t *ret_off)
{
  GElf_Shdr sh;
  if (!find_scn(ef->main.elf, name, &sh))
    return -ENOENT;
  *ret_vaddr = sh.sh_addr;
  *ret_size = sh.sh_size;
  *ret_off = sh.sh_offset;
  /* (no wrap-around: the headers may come from a crafted file) */
  *ret_bytes = sh.sh_type == SHT_NOBITS || !ef->main.raw || sh.sh_offset > ef->main.rawsize ||
               sh.sh_size > ef->main.rawsize - sh.sh_offset ? NULL : ef->main.raw + sh.sh_offset;
  return 0;
}

int elf_file_section(const struct elf_file *ef, const char *name, uint64_t *ret_vaddr,
                     uint64_t *ret_size, const uint8_t **ret_bytes)
{
  const uint8_t *b;
  uint64_t off;
  int r = section_bytes(ef, name, ret_vaddr, ret_size, &b, &off);
  if (r)
    return r;
  if (ret_bytes) {
    *ret_bytes = b;
    if (b)
      note_used(&ef->main, off, *ret_size);
  }
  return 0;
}

/* .eh_frame_hdr: version 1, then eh_frame_ptr, fde_count and the table, each with its own
 * pointer encoding. libunwind's remote table search wants datarel|sdata4 entries. */
int elf_file_eh_frame_hdr(const struct elf_file *ef, uint64_t *ret_hdr, uint64_t *ret_table,
                          uint64_t *ret_count)
{
  if (ef->eh_err)
    return ef->eh_err;
  *ret_hdr = ef->eh_hdr;
  *ret_table = ef->eh_table;
  *ret_count = ef->eh_count;
  return 0;
}

static int parse_eh_frame_hdr(const struct elf_file *ef, uint64_t *ret_hdr,
                              uint64_t *ret_table, uint64_t *ret_count)
{
  uint64_t va, size, foff;
  const uint8_t *b;
  if (section_bytes(ef, ".eh_frame_hdr", &va, &size, &b, &foff) || !b || size < 12 || b[0] != 1)
    return -VMS_E_NOUNWIND;
  uint8_t ptr_enc = b[1], cnt_enc = b[2], tab_enc = b[3];
  size_t off = 4;
  /* eh_frame_ptr: 4 or 8 bytes depending on the encoding's size */
  switch (ptr_enc & 0x0f) {
  case 0x03: case 0x0b: off += 4; break;
  case 0x04: case 0x0c: case 0x00: off += 8; break;
  default: return -VMS_E_NOUNWIND;
  }
  if (cnt_enc != 0x03 || tab_enc != 0x3b || off + 4 > size)
    return -VMS_E_NOUNWIND;
  uint32_t count;
  memcpy(&count, b + off, 4);
  off += 4;
  if (off + (uint64_t)count * 8 > size)
    return -VMS_E_NOUNWIND;
  note_used(&ef->main, foff, off);   /* (the table's entries as they are searched) */
  *ret_hdr = va;
  *ret_table = va + off;
  *ret_count = count;
  return 0;
}

/* -- Symbols -------------------------------------------------------------- */

static int sym_cmp(const void *a, const void *b)
{
  const struct sym *x = a, *y = b;
  if (x->addr != y->addr)
    return x->addr < y->addr ? -1 : 1;
  /* prefer sized symbols, then global-looking names (no leading underscore) */
  if ((x->size == 0) != (y->size == 0))
    return x->size == 0 ? 1 : -1;
  return (x->name[0] == '_') - (y->name[0] == '_');
}

static void add_syms(struct elf_file *ef, const struct image *im, const char *secname,
                     size_t *cap)
{
  Elf *elf = im->elf;
  GElf_Shdr sh;
  Elf_Scn *s = find_scn(elf, secname, &sh);
  if (!s || !sh.sh_entsize)
    return;
  Elf_Data *d = elf_getdata(s, NULL);
  GElf_Shdr strsh;
  if (!d || !gelf_getshdr(elf_getscn(elf, sh.sh_link), &strsh))
    return;
  size_t n = sh.sh_size / sh.sh_entsize;
  for (size_t i = 0; i < n; i++) {
    GElf_Sym sym;
    if (!gelf_getsym(d, (int)i, &sym))
      continue;
    int t = GELF_ST_TYPE(sym.st_info);
    if ((t != STT_FUNC && t != STT_GNU_IFUNC) || !sym.st_value || sym.st_shndx == SHN_UNDEF)
      continue;
    const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
    if (!name || !*name)
      continue;
    if (ef->nsyms == *cap) {
      size_t nc = *cap ? *cap * 2 : 1024;
      struct sym *ns = realloc(ef->syms, nc * sizeof *ns);
      if (!ns)
        return;
      ef->syms = ns;
      *cap = nc;
    }
    ef->syms[ef->nsyms++] = (struct sym){ sym.st_value, sym.st_size, name, im,
                                          sh.sh_offset + i * sh.sh_entsize,
                                          strsh.sh_offset + sym.st_name };
  }
}

static void load_syms(struct elf_file *ef)
{
  if (ef->syms_loaded)
    return;
  ef->syms_loaded = 1;
  size_t cap = 0;
  add_syms(ef, &ef->main, ".symtab", &cap);
  add_syms(ef, &ef->main, ".dynsym", &cap);
  if (ef->dbg.elf)
    add_syms(ef, &ef->dbg, ".symtab", &cap);
  if (!ef->nsyms)
    return;
  qsort(ef->syms, ef->nsyms, sizeof *ef->syms, sym_cmp);
  size_t w = 0;
  for (size_t i = 1; i < ef->nsyms; i++)
    if (ef->syms[i].addr != ef->syms[w].addr)
      ef->syms[++w] = ef->syms[i];
  ef->nsyms = w + 1;
}

int elf_file_symbol(struct elf_file *ef, uint64_t vaddr, const char **ret_name,
                    uint64_t *ret_off)
{
  load_syms(ef);
  size_t lo = 0, hi = ef->nsyms;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ef->syms[mid].addr <= vaddr)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (!lo)
    return -ENOENT;
  const struct sym *s = &ef->syms[lo - 1];
  /* (the nearest symbol decides, found or not: it is what a replay must see) */
  note_used(s->im, s->ent_off, gelf_fsize(s->im->elf, ELF_T_SYM, 1, EV_CURRENT));
  note_used(s->im, s->name_off, strlen(s->name) + 1);
  if (s->size && vaddr >= s->addr + s->size) {
    /* beyond the nearest symbol's end: an unnamed (stripped static) function */
    return -ENOENT;
  }
  if (!s->size) {
    /* a size-less label (assembler code): accept only within its section-free run, i.e.
     * before the next symbol and within 64 KiB */
    if (vaddr - s->addr > 0x10000)
      return -ENOENT;
  }
  *ret_name = s->name;
  *ret_off = vaddr - s->addr;
  return 0;
}

static int lookup_in(const struct image *im, const char *secname, const char *name,
                     uint64_t *ret_vaddr, uint64_t *ret_size)
{
  Elf *elf = im->elf;
  GElf_Shdr sh;
  Elf_Scn *s = find_scn(elf, secname, &sh);
  Elf_Data *d = s ? elf_getdata(s, NULL) : NULL;
  if (!d || !sh.sh_entsize)
    return -ENOENT;
  size_t n = sh.sh_size / sh.sh_entsize;
  for (size_t i = 0; i < n; i++) {
    GElf_Sym sym;
    if (!gelf_getsym(d, (int)i, &sym) || sym.st_shndx == SHN_UNDEF || !sym.st_value)
      continue;
    const char *nm = elf_strptr(elf, sh.sh_link, sym.st_name);
    if (nm && !strcmp(nm, name)) {
      note_sym(im, &sh, i, sym.st_name, nm);
      *ret_vaddr = sym.st_value;
      if (ret_size)
        *ret_size = sym.st_size;
      return 0;
    }
  }
  return -ENOENT;
}

int elf_file_lookup(struct elf_file *ef, const char *name, uint64_t *ret_vaddr,
                    uint64_t *ret_size)
{
  if (!lookup_in(&ef->main, ".dynsym", name, ret_vaddr, ret_size) ||
      !lookup_in(&ef->main, ".symtab", name, ret_vaddr, ret_size))
    return 0;
  if (ef->dbg.elf)
    return lookup_in(&ef->dbg, ".symtab", name, ret_vaddr, ret_size);
  return -ENOENT;
}

/* The GOT slot a dynamic relocation of `type` against symbol `name` fills in. */
static int tls_reloc(struct elf_file *ef, const char *name, unsigned type, uint64_t *ret_got)
{
  Elf *elf = ef->main.elf;
  Elf_Scn *scn = NULL;
  while ((scn = elf_nextscn(elf, scn))) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
      continue;
    Elf_Data *d = elf_getdata(scn, NULL);
    Elf_Scn *symscn = elf_getscn(elf, sh.sh_link);
    GElf_Shdr symsh;
    Elf_Data *syms = symscn ? elf_getdata(symscn, NULL) : NULL;
    if (!d || !syms || !gelf_getshdr(symscn, &symsh))
      continue;
    size_t n = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < n; i++) {
      GElf_Rela r;
      GElf_Sym sym;
      if (!gelf_getrela(d, (int)i, &r) || GELF_R_TYPE(r.r_info) != type ||
          !GELF_R_SYM(r.r_info) || !gelf_getsym(syms, (int)GELF_R_SYM(r.r_info), &sym))
        continue;
      const char *nm = elf_strptr(elf, symsh.sh_link, sym.st_name);
      if (nm && !strcmp(nm, name)) {
        note_sym(&ef->main, &symsh, GELF_R_SYM(r.r_info), sym.st_name, nm);
        *ret_got = r.r_offset;
        return 0;
      }
    }
  }
  return -ENOENT;
}

int elf_file_tls_got(struct elf_file *ef, const char *name, uint64_t *ret_got)
{
  return tls_reloc(ef, name, R_X86_64_TPOFF64, ret_got);
}

int elf_file_tls_dtv_got(struct elf_file *ef, const char *name, uint64_t *ret_modid_got,
                         uint64_t *ret_off_got)
{
  int r = tls_reloc(ef, name, R_X86_64_DTPMOD64, ret_modid_got);
  return r ? r : tls_reloc(ef, name, R_X86_64_DTPOFF64, ret_off_got);
}

/* A TLS symbol's offset in its module's TLS block (st_value; 0 is a valid value). */
static int tls_sym(const struct image *im, const char *secname, const char *name,
                   uint64_t *ret)
{
  Elf *elf = im->elf;
  GElf_Shdr sh;
  Elf_Scn *s = find_scn(elf, secname, &sh);
  Elf_Data *d = s ? elf_getdata(s, NULL) : NULL;
  if (!d || !sh.sh_entsize)
    return -ENOENT;
  size_t n = sh.sh_size / sh.sh_entsize;
  for (size_t i = 0; i < n; i++) {
    GElf_Sym sym;
    if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_TLS ||
        sym.st_shndx == SHN_UNDEF)
      continue;
    const char *nm = elf_strptr(elf, sh.sh_link, sym.st_name);
    if (nm && !strcmp(nm, name)) {
      note_sym(im, &sh, i, sym.st_name, nm);
      *ret = sym.st_value;
      return 0;
    }
  }
  return -ENOENT;
}

int elf_file_tls_exe_offset(struct elf_file *ef, const char *name, int64_t *ret_off)
{
  Elf *elf = ef->main.elf;
  uint64_t value;
  if (tls_sym(&ef->main, ".dynsym", name, &value) && tls_sym(&ef->main, ".symtab", name, &value))
    return -ENOENT;
  size_t nph;
  if (elf_getphdrnum(elf, &nph))
    return -VMS_E_BADELF;
  for (size_t i = 0; i < nph; i++) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_TLS)
      continue;
    /* glibc, TLS_TCB_AT_TP: the executable's block is the first below the thread pointer,
     * at off = roundup(memsz - firstbyte, align) + firstbyte */
    uint64_t align = ph.p_align ? ph.p_align : 1;
    if (align & (align - 1))
      return -VMS_E_BADELF;
    uint64_t firstbyte = (0 - (ph.p_vaddr & (align - 1))) & (align - 1);
    uint64_t off = ((ph.p_memsz - firstbyte + align - 1) & ~(align - 1)) + firstbyte;
    *ret_off = (int64_t)value - (int64_t)off;
    return 0;
  }
  return -ENOENT;
}

/* -- DWARF ---------------------------------------------------------------- */

/* dir/rel with "." and ".." folded, stored once per file. */
static const char *intern_path(struct elf_file *ef, const char *dir, const char *rel)
{
  char buf[PATH_MAX];
  if ((size_t)snprintf(buf, sizeof buf, "%s/%s", dir, rel) >= sizeof buf)
    return NULL;
  /* fold in place: components are copied unless "." or "..", which pops one */
  char out[PATH_MAX];
  size_t o = 0;
  for (char *save, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, "."))
      continue;
    if (!strcmp(c, "..")) {
      while (o > 0 && out[--o] != '/')
        ;
      continue;
    }
    size_t l = strlen(c);
    out[o++] = '/';
    memcpy(out + o, c, l);
    o += l;
  }
  out[o] = 0;
  if (!o)
    return NULL;
  for (struct path_str *p = ef->paths; p; p = p->next)
    if (!strcmp(p->s, out))
      return p->s;
  struct path_str *p = malloc(sizeof *p + o + 1);
  if (!p)
    return NULL;
  memcpy(p->s, out, o + 1);
  p->next = ef->paths;
  ef->paths = p;
  return p->s;
}

int elf_file_line(struct elf_file *ef, uint64_t vaddr, const char **ret_file, int *ret_line)
{
  if (!ef->dw_tried) {
    ef->dw_tried = 1;
    GElf_Shdr sh;
    if (ef->dbg.elf && find_scn(ef->dbg.elf, ".debug_info", &sh))
      ef->dw = dwarf_begin_elf(ef->dbg.elf, DWARF_C_READ, NULL), ef->dbg.dwarf_used = 1;
    else if (find_scn(ef->main.elf, ".debug_info", &sh))
      ef->dw = dwarf_begin_elf(ef->main.elf, DWARF_C_READ, NULL), ef->main.dwarf_used = 1;
  }
  if (!ef->dw)
    return -ENOENT;
  Dwarf_Die cu;
  if (!dwarf_addrdie(ef->dw, vaddr, &cu)) {
    /* .debug_aranges, when present, may list only some CUs (objects from another compiler):
     * look through the CUs' own ranges */
    Dwarf_Off off = 0, next;
    size_t hsize;
    int found = 0;
    while (!found && !dwarf_nextcu(ef->dw, off, &next, &hsize, NULL, NULL, NULL)) {
      found = dwarf_offdie(ef->dw, off + hsize, &cu) && dwarf_haspc(&cu, vaddr) > 0;
      off = next;
    }
    if (!found)
      return -ENOENT;
  }
  Dwarf_Line *l = dwarf_getsrc_die(&cu, vaddr);
  int line;
  const char *f = l ? dwarf_linesrc(l, NULL, NULL) : NULL;
  if (!f || dwarf_lineno(l, &line) || line <= 0)
    return -ENOENT;
  *ret_file = f;
  if (f[0] != '/') {
    Dwarf_Attribute a;
    const char *dir = dwarf_formstring(dwarf_attr(&cu, DW_AT_comp_dir, &a));
    const char *abs = dir && dir[0] == '/' ? intern_path(ef, dir, f) : NULL;
    if (abs)
      *ret_file = abs;
  }
  *ret_line = line;
  return 0;
}

/* -- Skeletons -------------------------------------------------------------
 * A copy of a file that keeps what a dump used and zeroes the rest: headers, section
 * names, notes, relocations, the DWARF when it was opened, the symbols lookups found (a
 * zeroed entry has no value: it is skipped as before), and every range read through
 * elf_file_read, a section's bytes or the unwind tables. Replayed, the same lookups give
 * the same answers; a replay on another machine opens it in place of the file. */

/* Sections kept whole: what libelf and libdw read on their own (names, notes, relocations,
 * the debug link; DWARF once it was opened). Symbol tables, unwind tables and code keep
 * only the entries and bytes that were used. */
static int kept_whole(const GElf_Shdr *sh, const char *name, int dwarf_used)
{
  if (sh->sh_type == SHT_NOTE || sh->sh_type == SHT_RELA || sh->sh_type == SHT_REL ||
      sh->sh_type == SHT_DYNAMIC)
    return 1;
  if (!name)
    return 0;
  if (!strcmp(name, ".gnu_debuglink") || !strcmp(name, ".gnu_debugaltlink"))
    return 1;
  return dwarf_used && (!strncmp(name, ".debug_", 7) || !strncmp(name, ".zdebug_", 8));
}

static void copy_span(uint8_t *out, const struct image *im, uint64_t off, uint64_t len)
{
  if (off < im->rawsize)
    memcpy(out + off, im->raw + off, (size_t)(len > im->rawsize - off ? im->rawsize - off : len));
}

static int image_skeleton(const struct image *im, void **ret_buf, size_t *ret_len)
{
  GElf_Ehdr eh;
  size_t shstrndx, phnum;
  if (!im->elf || !im->raw || !gelf_getehdr(im->elf, &eh) || elf_getphdrnum(im->elf, &phnum))
    return -ENOENT;
  uint8_t *out = calloc(1, im->rawsize ? im->rawsize : 1);
  if (!out)
    return -ENOMEM;
  copy_span(out, im, 0, eh.e_ehsize);
  copy_span(out, im, eh.e_phoff, (uint64_t)phnum * eh.e_phentsize);
  for (size_t i = 0; i < phnum; i++) {
    GElf_Phdr ph;
    if (gelf_getphdr(im->elf, (int)i, &ph) && (ph.p_type == PT_NOTE || ph.p_type == PT_DYNAMIC ||
                                               ph.p_type == PT_INTERP))
      copy_span(out, im, ph.p_offset, ph.p_filesz);   /* notes, dynamic, interp */
  }
  size_t shnum = 0;
  elf_getshdrnum(im->elf, &shnum);
  copy_span(out, im, eh.e_shoff, (uint64_t)shnum * eh.e_shentsize);
  int have_names = !elf_getshdrstrndx(im->elf, &shstrndx);
  if (have_names) {
    GElf_Shdr sh;
    if (gelf_getshdr(elf_getscn(im->elf, shstrndx), &sh))
      copy_span(out, im, sh.sh_offset, sh.sh_size);
  }
  for (Elf_Scn *s = elf_nextscn(im->elf, NULL); s; s = elf_nextscn(im->elf, s)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(s, &sh) || sh.sh_type == SHT_NOBITS)
      continue;
    const char *n = have_names ? elf_strptr(im->elf, shstrndx, sh.sh_name) : NULL;
    if (kept_whole(&sh, n, im->dwarf_used))
      copy_span(out, im, sh.sh_offset, sh.sh_size);
  }
  for (size_t i = 0; im->used && i < im->used->n; i++)
    copy_span(out, im, im->used->v[i].off, im->used->v[i].len);
  *ret_buf = out;
  *ret_len = im->rawsize;
  return 0;
}

int elf_file_skeleton(const struct elf_file *ef, int debug, void **ret_buf, size_t *ret_len)
{
  return image_skeleton(debug ? &ef->dbg : &ef->main, ret_buf, ret_len);
}

int elf_file_attach_debug_mem(struct elf_file *ef, void *buf, size_t len)
{
  if (ef->dbg.elf) {
    free(buf);
    return -EEXIST;
  }
  struct image im = { .fd = -1, .owned = buf };
  im.elf = elf_memory(buf, len);
  if (!im.elf || elf_kind(im.elf) != ELF_K_ELF) {
    image_close(&im);
    return -VMS_E_BADELF;
  }
  im.raw = buf;
  im.rawsize = len;
  ef->dbg = im;
  return 0;
}
