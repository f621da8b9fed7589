/* The runtimes built into vmstack, in probe order. */
#include <stddef.h>

#include "vmstack/runtime.h"

const struct vm_runtime *const vm_runtimes[] = {
  NULL,
};
