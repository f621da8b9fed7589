/* The runtimes built into vmstack, in probe order. */
#include <stddef.h>

#include "vmstack/runtime.h"

extern const struct vm_runtime vm_runtime_luajit;
extern const struct vm_runtime vm_runtime_perl;

const struct vm_runtime *const vm_runtimes[] = {
  &vm_runtime_luajit,
  &vm_runtime_perl,
  NULL,
};
