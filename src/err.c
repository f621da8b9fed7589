/* Error messages for vmstack's own codes and errno values. */
#include <string.h>

#include "vmstack/err.h"

static const char *const msgs[] = {
#define X(name, msg) msg,
  VMS_ERRORS(X)
#undef X
};

const char *vms_strerror(int err)
{
  if (err < 0)
    err = -err;
  if (err == 0)
    return "success";
  if (err > VMS_E_FIRST_ && err < VMS_E_LAST_)
    return msgs[err - VMS_E_FIRST_ - 1];
  return strerror(err);
}
