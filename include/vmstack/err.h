/* vmstack error codes: -errno for system errors, -VMS_E_* for our own. */
#ifndef VMSTACK_ERR_H
#define VMSTACK_ERR_H

/* X(name, message). Codes start above the errno range so one int carries both. */
#define VMS_ERRORS(X) \
  X(NOPROC,      "no such process") \
  X(KTHREAD,     "is a kernel thread (no user-space stack)") \
  X(ZOMBIE,      "is a zombie (exited, not yet reaped)") \
  X(TRACED,      "is already traced by another process") \
  X(GONE,        "target exited while being read") \
  X(STOPTIMEOUT, "thread did not stop in time (uninterruptible sleep?)") \
  X(NOSTACK,     "no stack mapping for the stack pointer") \
  X(NOMODULE,    "address is in no mapped module") \
  X(BADELF,      "not a usable ELF file") \
  X(NOUNWIND,    "no unwind information for the address") \
  X(UNWIND,      "unwinding failed") \
  X(BADRET,      "return address outside executable code") \
  X(TRUNCATED,   "stack truncated at the depth limit") \
  X(BADSNAP,     "not a vmstack snapshot or corrupt") \
  X(NORUNTIME,   "no known runtime found") \
  X(UNSUPPORTED, "unsupported runtime version or build") \
  X(BADDATA,     "invalid or inconsistent target data") \
  X(CYCLE,       "cycle in target data") \
  X(TORN,        "target data changed while being read without stopping it") \
  X(NONBLOCKING, "no runtime in the process can be read without stopping it") \
  X(EXEC,        "the process started another program")

#define VMS_E_BASE 4096

enum vms_err {
  VMS_E_FIRST_ = VMS_E_BASE - 1,
#define X(name, msg) VMS_E_##name,
  VMS_ERRORS(X)
#undef X
  VMS_E_LAST_
};

/* Message for 0, -errno or -VMS_E_*. Never NULL. */
const char *vms_strerror(int err);

#endif
