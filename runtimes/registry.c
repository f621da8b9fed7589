/* The runtimes built into vmstack, in probe order. */
#include <stddef.h>
#include <string.h>

#include "vmstack/runtime.h"

extern const struct vm_runtime vm_runtime_luajit;
extern const struct vm_runtime vm_runtime_perl;

const struct vm_runtime *const vm_runtimes[] = {
  &vm_runtime_luajit,
  &vm_runtime_perl,
  NULL,
};

const struct vm_runtime *vm_runtime_find(const char *name)
{
  for (size_t i = 0; name && vm_runtimes[i]; i++)
    if (!strcmp(vm_runtimes[i]->name, name))
      return vm_runtimes[i];
  return NULL;
}

const struct vm_runtime *vm_runtime_by_alias(const char *alias)
{
  for (size_t i = 0; alias && vm_runtimes[i]; i++)
    if (vm_runtimes[i]->alias && !strcmp(vm_runtimes[i]->alias, alias))
      return vm_runtimes[i];
  return NULL;
}
