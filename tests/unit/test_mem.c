/* mem.c: live reads of our own process (plain and /proc/self/mem fallback), cache, snapshots. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmstack/err.h"
#include "vmstack/mem.h"
#include "unit.h"

#define PG 4096u

static char tmpdir[256], snap_path[300], snap_path2[300];
static pid_t main_pid;

static void cleanup(void)
{
  if (getpid() != main_pid)
    return;
  unlink(snap_path);
  unlink(snap_path2);
  rmdir(tmpdir);
}

static uint64_t A(const void *p)
{
  return (uint64_t)(uintptr_t)p;
}

static uint8_t pat(size_t i)
{
  return (uint8_t)(i * 131u + (i >> 8) * 7u + 1u);
}

/* n pages, read-write, filled with pat(); hole >= 0 unmaps that page, none >= 0 makes it
 * PROT_NONE. */
static uint8_t *map_pages(size_t n, int hole, int none)
{
  uint8_t *p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
  for (size_t i = 0; i < n * PG; i++)
    p[i] = pat(i);
  if (hole >= 0)
    CHECK(!munmap(p + (size_t)hole * PG, PG), "munmap: %s", strerror(errno));
  if (none >= 0)
    CHECK(!mprotect(p + (size_t)none * PG, PG, PROT_NONE), "mprotect: %s", strerror(errno));
  return p;
}

/* -- Live backend --------------------------------------------------------- */

static void live_basic(struct mem *m)
{
  static uint8_t known[300];
  uint8_t got[300];
  for (size_t i = 0; i < sizeof known; i++)
    known[i] = pat(i + 5);
  CHECK_INT(mem_read(m, A(known), got, sizeof got), 0, "mem_read known buffer");
  CHECK(!memcmp(got, known, sizeof got), "mem_read known buffer: bytes differ");

  uint8_t *big = map_pages(3, -1, -1), *out = malloc(3 * PG);
  struct mem_stats s0, s1;
  mem_get_stats(m, &s0);
  CHECK_INT(mem_read(m, A(big), out, 3 * PG), 0, "mem_read 3 pages");
  mem_get_stats(m, &s1);
  CHECK(!memcmp(out, big, 3 * PG), "mem_read 3 pages: bytes differ");
  CHECK_INT(s1.bytes - s0.bytes, 3 * PG, "stats.bytes after a 3-page read");
  CHECK_INT(s1.syscalls - s0.syscalls, 1, "stats.syscalls after a 3-page read");
  CHECK_INT(s1.cache_hits + s1.cache_misses, s0.cache_hits + s0.cache_misses,
            "cache used by a large read");
  /* large read spanning a page boundary, unaligned */
  memset(out, 0, 3 * PG);
  CHECK_INT(mem_read(m, A(big) + PG - 333, out, 1000), 0, "mem_read 1000 across pages");
  CHECK(!memcmp(out, big + PG - 333, 1000), "mem_read 1000 across pages: bytes differ");

  CHECK_INT(mem_read(m, A(known), got, 0), 0, "mem_read len 0");
  CHECK_INT(mem_read(m, UINT64_MAX - 3, got, 8), -EFAULT, "mem_read wrapping range");
  CHECK_INT(mem_read(m, 0, got, 8), -EFAULT, "mem_read at address 0");
  CHECK_INT(mem_read(m, 0, got, 1000), -EFAULT, "mem_read 1000 at address 0");
  free(out);
  munmap(big, 3 * PG);
}

/* One readv over regions whose middle page is unreadable (unmapped or PROT_NONE). */
static void live_readv_bad_page(struct mem *m, uint8_t *r, const char *what)
{
  uint8_t b[6][256];
  static uint8_t known[64];
  for (size_t i = 0; i < sizeof known; i++)
    known[i] = pat(i + 77);
  memset(b, 0xee, sizeof b);
  struct mem_iov v[6] = {
    { A(r) + 10, b[0], 100, 1 },
    { A(r) + PG, b[1], 16, 1 },               /* the bad page */
    { A(r) + 2 * PG + 50, b[2], 200, 1 },
    { A(known), b[3], 64, 1 },
    { A(r) + PG - 8, b[4], 16, 1 },           /* straddles into the bad page */
    { A(r) + 3 * PG - 8, b[5], 8, 1 },        /* last bytes of the mapping */
  };
  int rc = mem_readv(m, v, 6);
  if (rc != -EFAULT)
    FAIL("%s: mem_readv returned %d, want -EFAULT (%d)", what, rc, -EFAULT);
  static const int want[6] = { 0, -EFAULT, 0, 0, -EFAULT, 0 };
  for (int i = 0; i < 6; i++)
    if (v[i].err != want[i])
      FAIL("%s: iov[%d].err = %d, want %d", what, i, v[i].err, want[i]);
  CHECK(!memcmp(b[0], r + 10, 100), "%s: iov[0] bytes differ", what);
  CHECK(!memcmp(b[2], r + 2 * PG + 50, 200), "%s: iov[2] bytes differ", what);
  CHECK(!memcmp(b[3], known, 64), "%s: iov[3] bytes differ", what);
  CHECK(!memcmp(b[5], r + 3 * PG - 8, 8), "%s: iov[5] bytes differ", what);

  /* the first element failing, the rest fine */
  struct mem_iov w[2] = { { A(r) + PG + 100, b[0], 8, 0 }, { A(r), b[1], 8, 0 } };
  CHECK_INT(mem_readv(m, w, 2), -EFAULT, "mem_readv bad first element");
  CHECK_INT(w[1].err, 0, "mem_readv good element after a bad first one");
  CHECK(!memcmp(b[1], r, 8), "%s: element after a bad first one: bytes differ", what);

  /* small (cached) and large reads into the bad page */
  CHECK_INT(mem_read(m, A(r) + PG - 4, b[0], 8), -EFAULT, "small read into bad page");
  CHECK_INT(mem_read(m, A(r) + PG - 600, b[0], 1200), -EFAULT, "large read into bad page");
  CHECK_INT(mem_read(m, A(r) + PG - 8, b[0], 8), 0, "small read just before bad page");
  CHECK(!memcmp(b[0], r + PG - 8, 8), "%s: read before bad page: bytes differ", what);
}

static void live_readv_many(struct mem *m)
{
  /* more elements than one process_vm_readv batch, one bad one past the first batch */
  enum { N = 600, BAD = 550 };
  uint8_t *r = map_pages(3, 1, -1);
  struct mem_iov *v = calloc(N, sizeof *v);
  uint64_t *out = calloc(N, sizeof *out);
  for (size_t i = 0; i < N; i++)
    v[i] = (struct mem_iov){ A(r) + (i % 500) * 8, &out[i], 8, 0 };
  v[BAD].addr = A(r) + PG + 64;
  CHECK_INT(mem_readv(m, v, N), -EFAULT, "mem_readv 600 elements");
  for (size_t i = 0; i < N; i++) {
    if (i == BAD) {
      CHECK_INT(v[i].err, -EFAULT, "mem_readv 600: the bad element");
      continue;
    }
    if (v[i].err)
      FAIL("mem_readv 600: element %zu err %d, want 0", i, v[i].err);
    if (memcmp(&out[i], r + (i % 500) * 8, 8))
      FAIL("mem_readv 600: element %zu bytes differ", i);
  }
  for (size_t i = 0; i < N; i++)
    v[i].addr = A(r) + (i % 500) * 8;
  CHECK_INT(mem_readv(m, v, N), 0, "mem_readv 600 good elements");
  /* an element whose range wraps around the address space */
  uint8_t buf[64];
  struct mem_iov w[2] = { { UINT64_MAX - 8, buf, 64, 0 }, { A(r), buf, 8, 0 } };
  CHECK_INT(mem_readv(m, w, 2), -EFAULT, "mem_readv wrapping element");
  CHECK_INT(w[0].err, -EFAULT, "mem_readv wrapping element err");
  CHECK_INT(w[1].err, 0, "mem_readv element after a wrapping one");
  free(v);
  free(out);
  munmap(r, PG);
  munmap(r + 2 * PG, PG);
}

static void live_cstr(struct mem *m, uint8_t *r)
{
  /* r: 3 pages, page 1 unreadable */
  char buf[256];
  memcpy(r + PG - 6, "hello", 6);
  mem_invalidate(m);   /* our memory changed: the target ran */
  memset(buf, 'z', sizeof buf);
  CHECK_INT(mem_read_cstr(m, A(r) + PG - 6, buf, sizeof buf), 5, "cstr ending at a bad page");
  CHECK_STR(buf, "hello", "cstr ending at a bad page");

  memset(r + PG - 10, 'x', 10);
  mem_invalidate(m);   /* our memory changed: the target ran */
  memset(buf, 'z', sizeof buf);
  CHECK_INT(mem_read_cstr(m, A(r) + PG - 10, buf, sizeof buf), -EFAULT,
            "cstr running into a bad page");
  CHECK(memchr(buf, 0, sizeof buf), "cstr running into a bad page: buffer not terminated");

  memset(buf, 'z', sizeof buf);
  CHECK_INT(mem_read_cstr(m, A(r) + PG, buf, sizeof buf), -EFAULT, "cstr at a bad page");
  CHECK_INT(buf[0], 0, "cstr at a bad page: buf[0]");

  static char longstr[200];
  memset(longstr, 'a', 150);
  longstr[150] = 0;
  memset(buf, 'z', sizeof buf);
  CHECK_INT(mem_read_cstr(m, A(longstr), buf, 16), 15, "cstr longer than cap");
  CHECK_STR(buf, "aaaaaaaaaaaaaaa", "cstr longer than cap");
  CHECK_INT(buf[16], 'z', "cstr longer than cap: wrote past cap");
  CHECK_INT(mem_read_cstr(m, A(longstr), buf, 151), 150, "cstr of exactly cap-1");
  CHECK_INT(strlen(buf), 150, "cstr of exactly cap-1: strlen");
  CHECK_INT(mem_read_cstr(m, A(longstr), buf, 1), 0, "cstr cap 1");
  CHECK_INT(buf[0], 0, "cstr cap 1: buf[0]");
  CHECK_INT(mem_read_cstr(m, A(longstr), buf, 0), -EINVAL, "cstr cap 0");

  /* a string across a page boundary of readable pages */
  uint8_t *two = map_pages(2, -1, -1);
  memcpy(two + PG - 3, "abcdefg", 8);
  mem_invalidate(m);   /* our memory changed: the target ran */
  CHECK_INT(mem_read_cstr(m, A(two) + PG - 3, buf, sizeof buf), 7, "cstr across pages");
  CHECK_STR(buf, "abcdefg", "cstr across pages");
  /* a long one: more than a page, cut at the cap */
  char *huge = malloc(3 * PG);
  memset(huge, 'q', 3 * PG - 1);
  huge[3 * PG - 1] = 0;
  char *hb = malloc(2 * PG);
  CHECK_INT(mem_read_cstr(m, A(huge) + 5, hb, 2 * PG), 2 * PG - 1, "cstr of 2 pages, cut");
  CHECK_INT(strlen(hb), 2 * PG - 1, "cstr of 2 pages: strlen");
  CHECK_INT(mem_read_cstr(m, A(huge) + 5, hb, 2 * PG), 2 * PG - 1, "cstr of 2 pages again");
  free(huge);
  free(hb);
  munmap(two, 2 * PG);
}

static void live_cache(struct mem *m)
{
  uint8_t *c = map_pages(2, -1, -1);
  uint64_t v1 = 0x1111111111111111ull, v2 = 0x2222222222222222ull, got = 0;
  struct mem_stats s0, s1;
  memcpy(c + 64, &v1, 8);
  mem_invalidate(m);

  mem_get_stats(m, &s0);
  CHECK_INT(mem_read(m, A(c) + 64, &got, 8), 0, "cache: first read");
  mem_get_stats(m, &s1);
  CHECK_HEX(got, v1, "cache: first read");
  CHECK_INT(s1.cache_misses - s0.cache_misses, 1, "cache: misses after first read");
  CHECK_INT(s1.cache_hits - s0.cache_hits, 0, "cache: hits after first read");
  CHECK_INT(s1.bytes - s0.bytes, PG, "cache: bytes after first read (whole page)");

  memcpy(c + 64, &v2, 8);
  s0 = s1;
  CHECK_INT(mem_read(m, A(c) + 64, &got, 8), 0, "cache: second read");
  mem_get_stats(m, &s1);
  CHECK_HEX(got, v1, "cache: second read before invalidate (cached value)");
  CHECK_INT(s1.cache_hits - s0.cache_hits, 1, "cache: hits after second read");
  CHECK_INT(s1.syscalls - s0.syscalls, 0, "cache: syscalls after second read");

  mem_invalidate(m);
  s0 = s1;
  CHECK_INT(mem_read(m, A(c) + 64, &got, 8), 0, "cache: read after invalidate");
  mem_get_stats(m, &s1);
  CHECK_HEX(got, v2, "cache: read after invalidate");
  CHECK_INT(s1.cache_misses - s0.cache_misses, 1, "cache: misses after invalidate");

  /* a small read across a page boundary: page 0 cached, page 1 not yet */
  uint8_t b[16];
  s0 = s1;
  CHECK_INT(mem_read(m, A(c) + PG - 8, b, 16), 0, "cache: read across pages");
  mem_get_stats(m, &s1);
  CHECK(!memcmp(b, c + PG - 8, 16), "cache: read across pages: bytes differ");
  CHECK_INT(s1.cache_hits - s0.cache_hits, 1, "cache: hits of a read across pages");
  CHECK_INT(s1.cache_misses - s0.cache_misses, 1, "cache: misses of a read across pages");
  s0 = s1;
  CHECK_INT(mem_read(m, A(c) + PG - 8, b, 16), 0, "cache: read across pages again");
  mem_get_stats(m, &s1);
  CHECK_INT(s1.cache_hits - s0.cache_hits, 2, "cache: hits of a repeated read across pages");
  CHECK_INT(s1.cache_misses - s0.cache_misses, 0, "cache: misses of a repeated read");

  /* a page that became unmapped stays cached until invalidated */
  CHECK_INT(mem_read(m, A(c) + PG + 8, &got, 8), 0, "cache: read of page 1");
  munmap(c + PG, PG);
  CHECK_INT(mem_read(m, A(c) + PG + 8, &got, 8), 0, "cache: cached read of unmapped page");
  mem_invalidate(m);
  CHECK_INT(mem_read(m, A(c) + PG + 8, &got, 8), -EFAULT, "cache: unmapped page after invalidate");
  CHECK_INT(mem_read(m, A(c) + PG - 4, &got, 8), -EFAULT, "cache: read into unmapped page");
  CHECK_INT(mem_read(m, A(c) + 64, &got, 8), 0, "cache: page 0 after a failed read");
  CHECK_HEX(got, v2, "cache: page 0 after a failed read");
  munmap(c, PG);
}

/* -- /proc/self/mem fallback (process_vm_readv refused by seccomp) -------- */

static int deny_process_vm_readv(void)
{
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { (unsigned short)(sizeof f / sizeof *f), f };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
    return -errno;
  return 0;
}

static void procmem_child(void)
{
  if (deny_process_vm_readv())
    exit(77);
  uint8_t x = 0;
  struct iovec lo = { &x, 1 }, re = { &x, 1 };
  if (process_vm_readv(getpid(), &lo, 1, &re, 1, 0) >= 0 || errno != EPERM)
    exit(77);
  struct mem *m;
  CHECK_INT(mem_open_live(getpid(), &m), 0, "fallback: mem_open_live");
  uint8_t *r = map_pages(3, 1, -1);
  uint8_t b[2][64];
  struct mem_iov v[3] = {
    { A(r) + 8, b[0], 64, 0 }, { A(r) + PG + 8, b[1], 8, 0 }, { A(r) + 2 * PG, b[1], 64, 0 },
  };
  CHECK_INT(mem_readv(m, v, 3), -EFAULT, "fallback: mem_readv");
  CHECK_INT(v[0].err, 0, "fallback: iov[0].err");
  CHECK_INT(v[1].err, -EFAULT, "fallback: iov[1].err (unmapped)");
  CHECK_INT(v[2].err, 0, "fallback: iov[2].err");
  CHECK(!memcmp(b[0], r + 8, 64), "fallback: iov[0] bytes differ");
  CHECK(!memcmp(b[1], r + 2 * PG, 64), "fallback: iov[2] bytes differ");
  uint64_t got;
  CHECK_INT(mem_read(m, A(r) + PG - 4, &got, 8), -EFAULT, "fallback: read into unmapped page");
  CHECK_INT(mem_read(m, A(r) + 16, &got, 8), 0, "fallback: small read");
  CHECK(!memcmp(&got, r + 16, 8), "fallback: small read: bytes differ");
  char s[32];
  memcpy(r + PG - 4, "abc", 4);
  mem_invalidate(m);
  CHECK_INT(mem_read_cstr(m, A(r) + PG - 4, s, sizeof s), 3, "fallback: cstr before a hole");
  CHECK_STR(s, "abc", "fallback: cstr before a hole");
  mem_close(m);
  exit(0);
}

static void live_procmem_fallback(void)
{
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0, "fork: %s", strerror(errno));
  if (!pid)
    procmem_child();
  int st;
  CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
  if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
    fprintf(stderr, "note: seccomp unavailable, /proc/PID/mem fallback not tested\n");
    return;
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st))
    FAIL("fallback child failed (status 0x%x)", st);
}

/* -- Snapshots ------------------------------------------------------------ */

#define SNAP_PAGES 4
static uint8_t shadow[SNAP_PAGES * PG], rec[SNAP_PAGES * PG];

static void rec_read(struct mem *m, const uint8_t *r, size_t off, size_t len)
{
  uint8_t *tmp = malloc(len);
  int rc = mem_read(m, A(r) + off, tmp, len);
  if (rc || memcmp(tmp, r + off, len))
    FAIL("recorded read at +%zu len %zu: rc %d or bytes differ", off, len, rc);
  memcpy(shadow + off, r + off, len);
  memset(rec + off, 1, len);
  free(tmp);
}

static void flip(uint8_t *r, size_t off, size_t len, uint8_t x)
{
  for (size_t i = 0; i < len; i++)
    r[off + i] ^= x;
}

/* Every byte of r's pages: recorded ones read back as recorded, others give -EFAULT. */
static void check_snapshot_bytes(struct mem *s, const uint8_t *r, const char *what)
{
  for (size_t off = 0; off < sizeof shadow; off++) {
    uint8_t b = 0;
    int rc = mem_read(s, A(r) + off, &b, 1);
    if (rec[off] && (rc || b != shadow[off]))
      FAIL("%s: byte +%zu: rc %d value 0x%02x, want 0 and 0x%02x", what, off, rc, b,
           shadow[off]);
    if (!rec[off] && rc != -EFAULT)
      FAIL("%s: unrecorded byte +%zu: rc %d, want -EFAULT", what, off, rc);
  }
}

static uint8_t *read_file(const char *path, size_t *ret_len)
{
  FILE *f = fopen(path, "rb");
  CHECK(f, "fopen %s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n + 1);
  CHECK(fread(b, 1, (size_t)n, f) == (size_t)n, "fread %s", path);
  fclose(f);
  *ret_len = (size_t)n;
  return b;
}

struct sec {
  uint32_t kind, namelen;
  uint64_t addr, len;
};

/* A snapshot file by hand: count, then sections with their payload. */
static size_t build(uint8_t *out, uint32_t count, const struct sec *secs, const void *const *data,
                    size_t nsecs)
{
  size_t o = 12;
  memcpy(out, "VMSSNAP1", 8);
  memcpy(out + 8, &count, 4);
  for (size_t i = 0; i < nsecs; i++) {
    memcpy(out + o, &secs[i], sizeof secs[i]);
    o += sizeof secs[i];
    uint64_t dl = secs[i].namelen + secs[i].len;
    if (dl > 4096)
      dl = 64;   /* absurd lengths: a short payload follows */
    if (data && data[i]) {
      memcpy(out + o, data[i], dl);
      o += dl;
    }
  }
  return o;
}

/* Corrupt files live in a memfd: rewriting a real file thousands of times is slow. */
static int open_bytes(const void *b, size_t len, struct mem **ret)
{
  static int fd = -1;
  static char fdpath[64];
  if (fd < 0) {
    fd = memfd_create("vmstack-snap", MFD_CLOEXEC);
    CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
  }
  CHECK(!ftruncate(fd, 0) && pwrite(fd, b, len, 0) == (ssize_t)len, "memfd write: %s",
        strerror(errno));
  struct mem *m = NULL;
  int rc = mem_open_snapshot(fdpath, &m);
  if (!rc && ret)
    *ret = m;
  else if (!rc)
    mem_close(m);
  return rc;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNIT_ASAN 1
#endif
#endif

/* Cap our address space a little above what we use, so that a reader that believes a corrupt
 * length and allocates gigabytes fails at once instead of taking the machine's memory. */
static void limit_as(int on)
{
#ifndef UNIT_ASAN
  static struct rlimit saved;
  if (!on) {
    setrlimit(RLIMIT_AS, &saved);
    return;
  }
  getrlimit(RLIMIT_AS, &saved);
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  unsigned long long kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  struct rlimit l = { (rlim_t)(kb * 1024 + (256u << 20)), saved.rlim_max };
  if (kb && (saved.rlim_cur == RLIM_INFINITY || l.rlim_cur < saved.rlim_cur))
    setrlimit(RLIMIT_AS, &l);
#else
  (void)on;
#endif
}

static void snapshot_corrupt(const char *good)
{
  size_t len;
  uint8_t *b = read_file(good, &len);
  /* every proper prefix of a valid file is truncated somewhere */
  for (size_t l = 0; l < len; l++) {
    int rc = open_bytes(b, l, NULL);
    if (rc != -VMS_E_BADSNAP)
      FAIL("snapshot truncated to %zu of %zu bytes: rc %d, want -VMS_E_BADSNAP", l, len, rc);
  }
  CHECK_INT(open_bytes(b, len, NULL), 0, "snapshot: the untruncated copy");
  b[7] ^= 1;
  CHECK_INT(open_bytes(b, len, NULL), -VMS_E_BADSNAP, "snapshot with a bad magic");
  b[7] ^= 1;
  free(b);

  static uint8_t f[1 << 16], payload[8192];
  memset(payload, 'P', sizeof payload);
  const void *pl[] = { payload, payload };
  struct mem *m;
  uint8_t x;
  size_t n = build(f, 0, NULL, NULL, 0);
  CHECK_INT(open_bytes(f, n, &m), 0, "snapshot with no sections");
  CHECK_INT(mem_read(m, 0x1000, &x, 1), -EFAULT, "empty snapshot read");
  mem_close(m);

  struct sec s1 = { 1, 0, 0x1000, 16 };
  n = build(f, 1, &s1, pl, 1);
  CHECK_INT(open_bytes(f, n, NULL), 0, "hand-built valid snapshot");

  struct sec cases[] = {
    { 1, 0, 0x1000, 1ull << 40 },           /* absurd memory length */
    { 1, 0, 0x1000, 1ull << 32 },           /* large length, file far shorter */
    { 1, 0, 0x1000, (1ull << 32) + 1 },
    { 2, 1u << 20, 0, 4 },                  /* absurd name length */
    { 2, 4097, 0, 4 },
    { 3, 0, 0x1000, 16 },                   /* unknown kind */
    { 0, 0, 0x1000, 16 },
    { 1, 0, UINT64_MAX - 7, 16 },           /* range wraps around the address space */
  };
  limit_as(1);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    n = build(f, 1, &cases[i], pl, 1);
    int rc = open_bytes(f, n, NULL);
    if (rc != -VMS_E_BADSNAP)
      FAIL("corrupt section %zu (kind %u namelen %u addr 0x%" PRIx64 " len 0x%" PRIx64
           "): rc %d, want -VMS_E_BADSNAP", i, cases[i].kind, cases[i].namelen,
           cases[i].addr, cases[i].len, rc);
  }
  limit_as(0);
  /* a count larger than the sections present */
  n = build(f, 0xffffffffu, &s1, pl, 1);
  CHECK_INT(open_bytes(f, n, NULL), -VMS_E_BADSNAP, "count larger than the sections");
  CHECK_INT(mem_open_snapshot("/nonexistent/vmstack-snap", &m), -ENOENT, "missing file");
}

/* Overlapping sections in a file: the one written later wins, whatever the addresses. */
static void snapshot_later_wins(void)
{
  static uint8_t f[4096];
  uint8_t a[16], b[16], got[24], want[24];
  memset(a, 'A', 16);
  memset(b, 'B', 16);
  struct mem *m;

  struct sec up[2] = { { 1, 0, 0x1000, 16 }, { 1, 0, 0x1008, 16 } };
  const void *d1[] = { a, b };
  size_t n = build(f, 2, up, d1, 2);
  CHECK_INT(open_bytes(f, n, &m), 0, "overlap, higher one later");
  CHECK_INT(mem_read(m, 0x1000, got, 24), 0, "overlap, higher one later: read");
  memcpy(want, a, 8);
  memcpy(want + 8, b, 16);
  CHECK(!memcmp(got, want, 24), "overlap, higher one later: got %.24s, want %.24s", got, want);
  mem_close(m);

  struct sec down[2] = { { 1, 0, 0x1008, 16 }, { 1, 0, 0x1000, 16 } };
  const void *d2[] = { b, a };
  n = build(f, 2, down, d2, 2);
  CHECK_INT(open_bytes(f, n, &m), 0, "overlap, lower one later");
  CHECK_INT(mem_read(m, 0x1000, got, 24), 0, "overlap, lower one later: read");
  memcpy(want, a, 16);
  memcpy(want + 16, b, 8);
  CHECK(!memcmp(got, want, 24), "overlap, lower one later (later section must win): got %.24s, "
        "want %.24s", got, want);
  mem_close(m);
}

static void snapshot_roundtrip(void)
{
  const char *path = snap_path, *path2 = snap_path2;

  uint8_t *r = map_pages(SNAP_PAGES, -1, -1), *hole = map_pages(3, 1, -1);
  struct mem *m;
  CHECK_INT(mem_open_live(getpid(), &m), 0, "snapshot: mem_open_live");
  uint64_t tmp;
  CHECK_INT(mem_read(m, A(r) + 5, &tmp, 8), 0, "read before recording");   /* not recorded */
  mem_record(m, 1);
  rec_read(m, r, 100, 100);
  rec_read(m, r, 150, 100);      /* overlapping */
  rec_read(m, r, 250, 50);       /* adjacent */
  rec_read(m, r, 1000, 10);
  rec_read(m, r, PG - 8, 16);    /* across a page boundary */
  rec_read(m, r, 2020, 10);      /* then the memory changes and a wider read covers it */
  flip(r, 2000, 100, 0xff);
  rec_read(m, r, 2000, 100);
  rec_read(m, r, 3000, 100);     /* a narrower read of changed memory inside it */
  flip(r, 3050, 10, 0x55);
  rec_read(m, r, 3050, 10);
  rec_read(m, r, 3500, 20);      /* the same range twice, changed in between */
  flip(r, 3500, 20, 0x0f);
  rec_read(m, r, 3500, 20);
  rec_read(m, r, 8000, 3000);    /* a large read over two page boundaries */
  CHECK_INT(mem_read(m, A(hole) + PG, &tmp, 8), -EFAULT, "recording: failed read");
  uint64_t vb[3];
  struct mem_iov v[3] = {
    { A(r) + 5000, &vb[0], 8, 0 }, { A(hole) + PG + 8, &vb[1], 8, 0 }, { A(r) + 6000, &vb[2], 8, 0 },
  };
  CHECK_INT(mem_readv(m, v, 3), -EFAULT, "recording: mem_readv");
  memcpy(shadow + 5000, r + 5000, 8);
  memset(rec + 5000, 1, 8);
  memcpy(shadow + 6000, r + 6000, 8);
  memset(rec + 6000, 1, 8);
  memcpy(r + 7000, "snapshot-string", 16);
  char s[64];
  CHECK_INT(mem_read_cstr(m, A(r) + 7000, s, sizeof s), 15, "recording: mem_read_cstr");
  memcpy(shadow + 7000, r + 7000, 63);   /* reads cap-1 bytes in one go */
  memset(rec + 7000, 1, 63);

  static const char maps_text[] = "00400000-00401000 r-xp 00000000 08:01 1 /bin/x\n";
  uint8_t regs[64] = { 0 };
  regs[5] = 0xab;
  regs[63] = 0xcd;
  CHECK_INT(mem_blob_add(m, "maps", maps_text, sizeof maps_text - 1), 0, "blob maps");
  CHECK_INT(mem_blob_add(m, "regs", regs, sizeof regs), 0, "blob regs");
  CHECK_INT(mem_blob_add(m, "empty", "", 0), 0, "blob empty");
  CHECK_INT(mem_blob_add(m, "dup", "first", 5), 0, "blob dup 1");
  CHECK_INT(mem_blob_add(m, "dup", "second", 6), 0, "blob dup 2");
  CHECK_INT(mem_snapshot_write(m, path), 0, "mem_snapshot_write");
  mem_record(m, 0);
  mem_close(m);

  struct mem *s1, *s2;
  CHECK_INT(mem_open_snapshot(path, &s1), 0, "mem_open_snapshot");
  check_snapshot_bytes(s1, r, "snapshot");
  uint8_t big[300];
  CHECK_INT(mem_read(s1, A(r) + 100, big, 200), 0, "snapshot: read over merged ranges");
  CHECK(!memcmp(big, shadow + 100, 200), "snapshot: merged ranges: bytes differ");
  CHECK_INT(mem_read(s1, A(r) + 100, big, 201), -EFAULT, "snapshot: read past merged ranges");
  CHECK_INT(mem_read(s1, A(r) + 99, big, 2), -EFAULT, "snapshot: read before merged ranges");
  CHECK_INT(mem_read(s1, A(hole) + PG, &tmp, 8), -EFAULT, "snapshot: failed read not recorded");
  struct mem_iov w[2] = { { A(r) + 1000, &vb[0], 8, 0 }, { A(r) + 1010, &vb[1], 8, 0 } };
  CHECK_INT(mem_readv(s1, w, 2), -EFAULT, "snapshot: mem_readv");
  CHECK_INT(w[0].err, 0, "snapshot: mem_readv recorded element");
  CHECK_INT(w[1].err, -EFAULT, "snapshot: mem_readv unrecorded element");
  CHECK(!memcmp(&vb[0], shadow + 1000, 8), "snapshot: mem_readv bytes differ");
  CHECK_INT(mem_read_cstr(s1, A(r) + 7000, s, sizeof s), 15, "snapshot: mem_read_cstr");
  CHECK_STR(s, "snapshot-string", "snapshot: mem_read_cstr");

  const void *bd;
  size_t bl;
  CHECK_INT(mem_blob_get(s1, "maps", &bd, &bl), 0, "snapshot: blob maps");
  CHECK(bl == sizeof maps_text - 1 && !memcmp(bd, maps_text, bl), "snapshot: blob maps differs");
  CHECK_INT(mem_blob_get(s1, "regs", &bd, &bl), 0, "snapshot: blob regs");
  CHECK(bl == sizeof regs && !memcmp(bd, regs, bl), "snapshot: blob regs differs");
  CHECK_INT(mem_blob_get(s1, "empty", &bd, &bl), 0, "snapshot: blob empty");
  CHECK_INT(bl, 0, "snapshot: blob empty length");
  CHECK_INT(mem_blob_get(s1, "dup", &bd, &bl), 0, "snapshot: blob dup");
  CHECK(bl == 6 && !memcmp(bd, "second", 6), "snapshot: blob dup is not the later one");
  CHECK_INT(mem_blob_get(s1, "nope", &bd, &bl), -ENOENT, "snapshot: missing blob");

  /* a snapshot of a snapshot holds the same */
  CHECK_INT(mem_snapshot_write(s1, path2), 0, "mem_snapshot_write of a snapshot");
  CHECK_INT(mem_open_snapshot(path2, &s2), 0, "mem_open_snapshot of the rewritten snapshot");
  check_snapshot_bytes(s2, r, "rewritten snapshot");
  CHECK_INT(mem_blob_get(s2, "dup", &bd, &bl), 0, "rewritten snapshot: blob dup");
  CHECK(bl == 6 && !memcmp(bd, "second", 6), "rewritten snapshot: blob dup is not the later one");
  mem_close(s1);
  mem_close(s2);

  snapshot_corrupt(path);
  munmap(r, SNAP_PAGES * PG);
}

int main(void)
{
  CHECK_INT(sysconf(_SC_PAGESIZE), PG, "page size");
  const char *td = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/vmstack-unit-mem-XXXXXX", td && *td ? td : "/tmp");
  CHECK(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
  main_pid = getpid();
  atexit(cleanup);
  snprintf(snap_path, sizeof snap_path, "%s/snap", tmpdir);
  snprintf(snap_path2, sizeof snap_path2, "%s/snap2", tmpdir);

  uint8_t probe = 1, got = 0;
  struct iovec lo = { &got, 1 }, re = { &probe, 1 };
  if (process_vm_readv(getpid(), &lo, 1, &re, 1, 0) != 1)
    SKIP("process_vm_readv on ourselves refused (%s): the live backend's counts differ",
         strerror(errno));
  struct mem *m;
  CHECK_INT(mem_open_live(0, &m), -EINVAL, "mem_open_live(0)");
  CHECK_INT(mem_open_live(getpid(), &m), 0, "mem_open_live(self)");
  live_basic(m);
  uint8_t *hole = map_pages(3, 1, -1), *none = map_pages(3, -1, 1);
  live_readv_bad_page(m, hole, "unmapped middle page");
  live_readv_bad_page(m, none, "PROT_NONE middle page");
  live_readv_many(m);
  live_cstr(m, hole);
  live_cache(m);
  mem_close(m);
  live_procmem_fallback();
  snapshot_later_wins();
  snapshot_roundtrip();
  return 0;
}
