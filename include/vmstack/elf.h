/* ELF files of the target: symbols, build-id, separate debug files, unwind tables, lines. */
#ifndef VMSTACK_ELF_H
#define VMSTACK_ELF_H

#include <stddef.h>
#include <stdint.h>

struct elf_file;

/* Takes ownership of fd (closed on failure too). */
int elf_file_open(int fd, struct elf_file **ret_ef);
/* From bytes in memory (e.g. the target's [vdso]); takes ownership of buf (malloc'd). */
int elf_file_open_mem(void *buf, size_t len, struct elf_file **ret_ef);
void elf_file_close(struct elf_file *ef);

/* Look for a separate debug file by build-id, then by .gnu_debuglink, first below root
 * (the target's /proc/PID/root, may be "") then on the host. path is the file's path as the
 * target sees it. Returns 1 when one was attached, 0 when none was found. */
int elf_file_find_debug(struct elf_file *ef, const char *root, const char *path);

/* Load bias for a mapping of the file at map_start with file offset map_off. */
int elf_file_bias(const struct elf_file *ef, uint64_t map_start, uint64_t map_off,
                  uint64_t *ret_bias);
int elf_file_is_pie_or_dso(const struct elf_file *ef);

/* Function containing vaddr (file address, i.e. runtime address - bias). */
int elf_file_symbol(struct elf_file *ef, uint64_t vaddr, const char **ret_name,
                    uint64_t *ret_off);
/* Address of a named symbol (functions and objects, .dynsym and .symtab). */
int elf_file_lookup(struct elf_file *ef, const char *name, uint64_t *ret_vaddr,
                    uint64_t *ret_size);
/* The GOT slot (file address) where the dynamic linker stores the thread-pointer offset of
 * TLS variable `name` (an initial-exec R_X86_64_TPOFF64 relocation); -ENOENT if none. */
int elf_file_tls_got(struct elf_file *ef, const char *name, uint64_t *ret_got);
/* The GOT slots of a general-dynamic TLS variable (a shared library's): the module id
 * (R_X86_64_DTPMOD64) and the offset in the module's TLS block (R_X86_64_DTPOFF64). The
 * address in a thread is dtv[modid].val + offset, with dtv = *(fs_base + 8). */
int elf_file_tls_dtv_got(struct elf_file *ef, const char *name, uint64_t *ret_modid_got,
                         uint64_t *ret_off_got);
/* A TLS variable of the main executable without a relocation (local-exec): its offset from
 * the thread pointer (fs_base), from PT_TLS as glibc lays out static TLS on x86_64. */
int elf_file_tls_exe_offset(struct elf_file *ef, const char *name, int64_t *ret_off);
/* Source file and line from DWARF, when the file or its debug file has it. */
int elf_file_line(struct elf_file *ef, uint64_t vaddr, const char **ret_file, int *ret_line);

/* Bytes of a read-only loaded segment, straight from the file (immutable in memory). */
int elf_file_read(const struct elf_file *ef, uint64_t vaddr, void *buf, size_t len);
/* .eh_frame_hdr: its address, the binary search table's address and entry count. */
int elf_file_eh_frame_hdr(const struct elf_file *ef, uint64_t *ret_hdr, uint64_t *ret_table,
                          uint64_t *ret_count);
/* Start addresses of every FDE, from .eh_frame_hdr's table (sorted). i from 0; returns
 * -ENOENT past the end. */
int elf_file_fde_start(const struct elf_file *ef, size_t i, uint64_t *ret_vaddr);
/* The FDE covering vaddr: its range and its CFA rule (DWARF register number + offset) at
 * vaddr. -ENOENT when none, -EINVAL when the CFA is not register+offset. */
int elf_file_fde(struct elf_file *ef, uint64_t vaddr, uint64_t *ret_start, uint64_t *ret_end,
                 int *ret_cfa_reg, int64_t *ret_cfa_off);
const uint8_t *elf_file_build_id(const struct elf_file *ef, size_t *ret_len);
/* Section by name: its address, size and a pointer to its bytes in the file (or NULL for
 * NOBITS). */
int elf_file_section(const struct elf_file *ef, const char *name, uint64_t *ret_vaddr,
                     uint64_t *ret_size, const uint8_t **ret_bytes);

/* Track which bytes of files opened from now on are read (for elf_file_skeleton). */
void elf_track_reads(int on);
/* A copy of the file (debug: of its separate debug file) with the bytes no lookup used
 * zeroed: headers, symbols, notes, relocations, unwind tables, DWARF if it was opened, and
 * the ranges read. *ret_buf is malloc'd, as long as the file. -ENOENT when there is none. */
int elf_file_skeleton(const struct elf_file *ef, int debug, void **ret_buf, size_t *ret_len);
/* Attach a separate debug file from bytes in memory; takes ownership of buf. */
int elf_file_attach_debug_mem(struct elf_file *ef, void *buf, size_t len);

#endif
