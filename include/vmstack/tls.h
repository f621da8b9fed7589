/* Thread-local variables of a module in another process (x86_64, glibc): how a variable
 * is reached from a thread's thread pointer (fs_base). */
#ifndef VMSTACK_TLS_H
#define VMSTACK_TLS_H

#include <stdint.h>

struct mem;
struct module;

enum tls_kind {
  TLS_NONE,       /* not found */
  TLS_STATIC,     /* at fs_base + off (initial-exec through the GOT, or local-exec) */
  TLS_DTV,        /* general-dynamic: the module's block from the thread's DTV, + off */
};

struct tls_var {
  enum tls_kind kind;
  int64_t off;
  uint64_t modid;   /* TLS_DTV: the module's id */
};

/* Where thread-local `name` of module m lives: from the GOT slot of its initial-exec
 * relocation (the value the dynamic linker stored there, read from mem), its
 * general-dynamic module id and offset slots, or, in the main executable (exe nonzero),
 * its local-exec offset from PT_TLS. 0, or -ENOENT with ret->kind TLS_NONE. */
int tls_locate(struct mem *mem, struct module *m, int exe, const char *name,
               struct tls_var *ret);
/* Its address in the thread whose thread pointer is fs_base: 0 with *ret_addr 0 when the
 * thread never touched the module's thread-locals (its DTV entry is unallocated), or
 * -VMS_E_BADDATA. */
int tls_addr(struct mem *mem, const struct tls_var *v, uint64_t fs_base, uint64_t *ret_addr);

#endif
