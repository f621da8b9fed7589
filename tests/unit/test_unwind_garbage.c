/* unwind.c without ptrace: our own stack end to end, deliberate cycles, random captures. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "vmstack/err.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/symbolize.h"
#include "vmstack/unwind.h"
#include "unit.h"

#define MAXF 256

static struct maps *mp;
static struct mem *mem;
static struct unwinder *uw;
static volatile int sink;

/* -- Crash and hang reporting --------------------------------------------- */

static volatile sig_atomic_t phase_iter = -1;
static char seed_msg[128];
static const char *volatile phase = "setup";

static void put_num(char *buf, size_t *o, long v)
{
  char t[24];
  size_t n = 0;
  if (v < 0) {
    buf[(*o)++] = '-';
    v = -v;
  }
  do
    t[n++] = (char)('0' + v % 10);
  while ((v /= 10) && n < sizeof t);
  while (n)
    buf[(*o)++] = t[--n];
}

static void on_fatal(int sig)
{
  char buf[256];
  size_t o = 0;
  const char *what = sig == SIGALRM ? "timeout" : "crash (signal ";
  for (const char *p = what; *p; p++)
    buf[o++] = *p;
  if (sig != SIGALRM) {
    put_num(buf, &o, sig);
    buf[o++] = ')';
  }
  for (const char *p = " in "; *p; p++)
    buf[o++] = *p;
  for (const char *p = phase; *p && o < 150; p++)
    buf[o++] = *p;
  for (const char *p = " iteration "; *p; p++)
    buf[o++] = *p;
  put_num(buf, &o, phase_iter);
  buf[o++] = ' ';
  for (const char *p = seed_msg; *p && o < sizeof buf - 2; p++)
    buf[o++] = *p;
  buf[o++] = '\n';
  if (write(2, buf, o) < 0)
    _exit(1);
  _exit(1);
}

/* -- Our own stack ---------------------------------------------------------- */

struct probe {
  struct stack_capture cap;
  uint64_t ra[5], fa[5];   /* return and frame addresses: capture_here, then its callers */
};

static struct probe real, sig;
static uint64_t restore_rt;   /* the signal trampoline, seen as a handler's return address */

static NOIPA void capture_here(struct probe *p, size_t bytes)
{
  struct user_regs_struct r;
  memset(&r, 0, sizeof r);
  __asm__ volatile("lea 0(%%rip), %%rax\n\t"
                   "mov %%rax, %0\n\t"
                   "mov %%rsp, %1\n\t"
                   "mov %%rbp, %2\n\t"
                   "mov %%rbx, %3\n\t"
                   "mov %%r12, %4\n\t"
                   "mov %%r13, %5\n\t"
                   "mov %%r14, %6\n\t"
                   "mov %%r15, %7\n\t"
                   : "=m"(r.rip), "=m"(r.rsp), "=m"(r.rbp), "=m"(r.rbx), "=m"(r.r12),
                     "=m"(r.r13), "=m"(r.r14), "=m"(r.r15)
                   :
                   : "rax", "memory");
  p->ra[0] = (uint64_t)(uintptr_t)__builtin_return_address(0);
  p->fa[0] = (uint64_t)(uintptr_t)__builtin_frame_address(0);
  int rc = unwind_capture(mem, mp, &r, bytes, &p->cap);
  if (rc)
    FAIL("unwind_capture of our own stack: %d (%s)", rc, vms_strerror(rc));
  if (p->cap.base != r.rsp - 128)
    FAIL("unwind_capture base 0x%" PRIx64 ", want rsp-128 0x%" PRIx64, p->cap.base,
         (uint64_t)r.rsp - 128);
}

static NOIPA int chain_c(int x)
{
  real.ra[1] = (uint64_t)(uintptr_t)__builtin_return_address(0);
  real.fa[1] = (uint64_t)(uintptr_t)__builtin_frame_address(0);
  capture_here(&real, 16384);
  return x + sink;
}

static NOIPA int chain_b(int x)
{
  real.ra[2] = (uint64_t)(uintptr_t)__builtin_return_address(0);
  real.fa[2] = (uint64_t)(uintptr_t)__builtin_frame_address(0);
  return chain_c(x + 1) * 3 + sink;
}

static NOIPA int chain_a(int x)
{
  real.ra[3] = (uint64_t)(uintptr_t)__builtin_return_address(0);
  real.fa[3] = (uint64_t)(uintptr_t)__builtin_frame_address(0);
  return chain_b(x + 2) * 5 + sink;
}

static NOIPA void sig_handler(int signo)
{
  sig.ra[1] = restore_rt = (uint64_t)(uintptr_t)__builtin_return_address(0);
  sig.fa[1] = (uint64_t)(uintptr_t)__builtin_frame_address(0);
  capture_here(&sig, UNWIND_CAPTURE_DEFAULT);
  sink += signo;
}

static NOIPA int raise_sig(int x)
{
  raise(SIGUSR1);
  return x + sink;
}

static const char *name_of(const struct frame *f)
{
  static struct sym_info si;
  symbolize(mp, f->pc, !!(f->flags & FRAME_F_EXACT), 0, &si);
  return si.func ? si.func : "?";
}

static void walk(struct unwinder *u, const struct stack_capture *cap, struct frame *fr, size_t max,
                 size_t *n, int *rc)
{
  *rc = unwind_stack(u, mp, mem, cap, fr, max, n);
}

static void dump_frames(const struct frame *fr, size_t n)
{
  for (size_t i = 0; i < n && i < 16; i++)
    fprintf(stderr, "  #%zu pc 0x%" PRIx64 " sp 0x%" PRIx64 " flags 0x%x %s\n", i, fr[i].pc,
            fr[i].sp, fr[i].flags, name_of(&fr[i]));
}

static void expect_frame(const struct frame *fr, size_t n, size_t i, uint64_t pc, uint64_t sp,
                         const char *name)
{
  if (i >= n) {
    dump_frames(fr, n);
    FAIL("real stack: only %zu frames, want %s at #%zu", n, name, i);
  }
  const char *got = name_of(&fr[i]);
  if (fr[i].pc != pc || fr[i].sp != sp || strcmp(got, name)) {
    dump_frames(fr, n);
    FAIL("real stack #%zu: %s pc 0x%" PRIx64 " sp 0x%" PRIx64 ", want %s pc 0x%" PRIx64
         " sp 0x%" PRIx64, i, got, fr[i].pc, fr[i].sp, name, pc, sp);
  }
}

static NOIPA void run_real(void)
{
  phase = "real stack";
  sink = chain_a(1);
  real.ra[4] = (uint64_t)(uintptr_t)__builtin_return_address(0);
  struct frame fr[MAXF];
  size_t n;
  int rc;
  walk(uw, &real.cap, fr, MAXF, &n, &rc);
  const struct user_regs_struct *r = &real.cap.regs;
  expect_frame(fr, n, 0, r->rip, r->rsp, "capture_here");
  CHECK(fr[0].flags == FRAME_F_EXACT, "real stack #0 flags 0x%x, want EXACT", fr[0].flags);
  expect_frame(fr, n, 1, real.ra[0], real.fa[0] + 16, "chain_c");
  expect_frame(fr, n, 2, real.ra[1], real.fa[1] + 16, "chain_b");
  expect_frame(fr, n, 3, real.ra[2], real.fa[2] + 16, "chain_a");
  expect_frame(fr, n, 4, real.ra[3], real.fa[3] + 16, "run_real");
  for (size_t i = 1; i < 5; i++)
    CHECK(!fr[i].flags, "real stack #%zu flags 0x%x, want 0", i, fr[i].flags);
  size_t mi = 5;
  while (mi < n && strcmp(name_of(&fr[mi]), "main"))
    mi++;
  if (mi == n || fr[mi].pc != real.ra[4]) {
    dump_frames(fr, n);
    FAIL("real stack: no main frame returning to 0x%" PRIx64, real.ra[4]);
  }
  if (rc) {
    dump_frames(fr, n);
    FAIL("real stack: walk ended with %d (%s) after %zu frames, want 0", rc, vms_strerror(rc), n);
  }
  CHECK(n > mi && n < 32, "real stack: %zu frames", n);
}

/* Capture inside a signal handler; checked later (the fuzzer wants the trampoline early). */
static NOIPA void take_signal_capture(void)
{
  phase = "signal capture";
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = sig_handler;
  sigemptyset(&sa.sa_mask);
  CHECK(!sigaction(SIGUSR1, &sa, NULL), "sigaction: %s", strerror(errno));
  sink = raise_sig(1);
  signal(SIGUSR1, SIG_DFL);
}

static void check_signal_stack(void)
{
  phase = "signal stack";
  struct frame fr[MAXF];
  size_t n;
  int rc;
  walk(uw, &sig.cap, fr, MAXF, &n, &rc);
  if (n < 4 || strcmp(name_of(&fr[0]), "capture_here") || fr[1].pc != sig.ra[0] ||
      strcmp(name_of(&fr[1]), "sig_handler") || fr[2].pc != restore_rt ||
      fr[2].sp != sig.fa[1] + 16 || !(fr[2].flags & FRAME_F_SIGNAL)) {
    dump_frames(fr, n);
    FAIL("signal stack: want capture_here, sig_handler, the trampoline 0x%" PRIx64
         " (sp 0x%" PRIx64 ", SIGNAL)", restore_rt, sig.fa[1] + 16);
  }
  if (fr[3].flags != FRAME_F_EXACT) {
    dump_frames(fr, n);
    FAIL("signal stack: the interrupted frame after the trampoline has flags 0x%x, want EXACT",
         fr[3].flags);
  }
  size_t i = 3;
  while (i < n && strcmp(name_of(&fr[i]), "raise_sig"))
    i++;
  if (i == n || i + 1 >= n || strcmp(name_of(&fr[i + 1]), "take_signal_capture") || rc) {
    dump_frames(fr, n);
    FAIL("signal stack: no raise_sig, take_signal_capture after the trampoline, or walk error %d",
         rc);
  }
}

/* A handler on an alternate stack above the interrupted one (which runs on a stack of its
 * own, lower in memory): the trampoline's caller has a lower sp. Walked inside the handler,
 * while the interrupted frames still exist. */
static struct probe alt;
static struct frame alt_fr[MAXF];
static size_t alt_n;
static int alt_rc;
static ucontext_t main_uc, co_uc;

static NOIPA void alt_handler(int signo)
{
  capture_here(&alt, UNWIND_CAPTURE_DEFAULT);
  alt_rc = unwind_stack(uw, mp, mem, &alt.cap, alt_fr, MAXF, &alt_n);
  sink += signo;
}

static NOIPA void co_func(void)
{
  raise(SIGUSR2);
  sink++;
}

static NOIPA void run_altstack(void)
{
  phase = "sigaltstack";
  char onstack[1 << 16];   /* the alternate stack: on the main stack, above the mmap area */
  size_t cosz = 1 << 18;
  char *co = mmap(NULL, cosz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(co != MAP_FAILED, "mmap: %s", strerror(errno));
  if ((uintptr_t)onstack < (uintptr_t)co) {
    fprintf(stderr, "note: no alternate stack above the mmap area, sigaltstack case skipped\n");
    munmap(co, cosz);
    return;
  }
  stack_t ss = { .ss_sp = onstack, .ss_flags = 0, .ss_size = sizeof onstack }, old;
  CHECK(!sigaltstack(&ss, &old), "sigaltstack: %s", strerror(errno));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = alt_handler;
  sa.sa_flags = SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  CHECK(!sigaction(SIGUSR2, &sa, NULL), "sigaction: %s", strerror(errno));
  CHECK(!getcontext(&co_uc), "getcontext: %s", strerror(errno));
  co_uc.uc_stack.ss_sp = co;
  co_uc.uc_stack.ss_size = cosz;
  co_uc.uc_link = &main_uc;
  makecontext(&co_uc, co_func, 0);
  CHECK(!swapcontext(&main_uc, &co_uc), "swapcontext: %s", strerror(errno));
  signal(SIGUSR2, SIG_DFL);
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, NULL);
  munmap(co, cosz);

  size_t t = 0;
  while (t < alt_n && alt_fr[t].pc != restore_rt)
    t++;
  size_t c = t;
  while (c < alt_n && strcmp(name_of(&alt_fr[c]), "co_func"))
    c++;
  if (alt_n < 3 || strcmp(name_of(&alt_fr[1]), "alt_handler") || t == alt_n || c == alt_n ||
      alt_fr[t + 1].sp >= alt_fr[t].sp) {
    dump_frames(alt_fr, alt_n);
    FAIL("sigaltstack: walk from the handler (on a higher stack) did not pass the trampoline "
         "down to co_func: %zu frames, rc %d (%s)", alt_n, alt_rc, vms_strerror(alt_rc));
  }
}

/* -- Deliberate cycles ---------------------------------------------------- */

#define FAKE_BASE 0x7e5500000000ull

static void put64(struct stack_capture *c, uint64_t addr, uint64_t v)
{
  memcpy(c->bytes + (addr - c->base), &v, 8);
}

static void fake_capture(struct stack_capture *c, size_t len)
{
  c->bytes = calloc(1, len);
  c->base = FAKE_BASE;
  c->len = c->cap = len;
  memset(&c->regs, 0, sizeof c->regs);
}

static int has_repeat(const struct frame *fr, size_t n)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (fr[i].pc == fr[j].pc && fr[i].sp == fr[j].sp)
        return 1;
  return 0;
}

static void expect_cycle(const char *what, const struct stack_capture *c, struct unwinder *u,
                         size_t want_n)
{
  struct frame fr[MAXF];
  size_t n;
  int rc;
  walk(u, c, fr, MAXF, &n, &rc);
  /* libunwind itself refuses a step that leaves ip and CFA unchanged (-VMS_E_UNWIND) */
  if ((rc != -VMS_E_CYCLE && rc != -VMS_E_UNWIND) || (want_n && n != want_n) ||
      has_repeat(fr, n)) {
    dump_frames(fr, n);
    FAIL("%s: rc %d (%s) with %zu frames%s, want -VMS_E_CYCLE or -VMS_E_UNWIND with %zu%s",
         what, rc, vms_strerror(rc), n, has_repeat(fr, n) ? " (repeated frames)" : "", want_n,
         want_n ? "" : " or fewer, none repeated");
  }
}

static void run_cycles(void)
{
  phase = "cycles";
  /* a return address inside chain_b, where the CFA is rbp+16 */
  uint64_t in_b = real.ra[1];
  struct stack_capture c;

  /* saved rbp points at itself, its return address slot at the same pc */
  fake_capture(&c, 4096);
  uint64_t x = FAKE_BASE + 1024;
  put64(&c, x, x);
  put64(&c, x + 8, in_b);
  c.regs.rip = in_b;
  c.regs.rsp = FAKE_BASE + 512;
  c.regs.rbp = x;
  expect_cycle("rbp loop of one frame", &c, uw, 2);

  /* two saved rbps pointing at each other */
  uint64_t x2 = FAKE_BASE + 2048;
  put64(&c, x, x2);
  put64(&c, x2, x);
  put64(&c, x2 + 8, in_b);
  expect_cycle("rbp loop of two frames", &c, uw, 3);
  unwind_capture_free(&c);
}

/* The sigreturn trampoline restores a lower sp (allowed: the handler may have run on another
 * stack), whose frame returns to the trampoline again. */
static void run_signal_cycle(void)
{
  phase = "signal cycle";
  struct stack_capture c;
  fake_capture(&c, 8192);
  uint64_t s1 = FAKE_BASE + 2048, s0 = FAKE_BASE + 512, rbp = s1 - 16;
  ucontext_t uc;
  memset(&uc, 0, sizeof uc);
  uc.uc_mcontext.gregs[REG_RIP] = (greg_t)real.ra[1];
  uc.uc_mcontext.gregs[REG_RSP] = (greg_t)s0;
  uc.uc_mcontext.gregs[REG_RBP] = (greg_t)rbp;
  memcpy(c.bytes + (s1 - c.base), &uc, sizeof uc);
  put64(&c, rbp, rbp);
  put64(&c, rbp + 8, restore_rt);
  c.regs.rip = restore_rt;
  c.regs.rsp = s1;
  expect_cycle("loop through a signal frame", &c, uw, 0);
  unwind_capture_free(&c);
}

/* A runtime step that bounces between two frames at the same sp. */
static int bounce_step(void *arg, struct unwind_ctx *ctx, struct unwind_regs *regs)
{
  const uint64_t *pcs = arg;
  (void)ctx;
  regs->ip = regs->ip == pcs[0] ? pcs[1] : pcs[0];
  return 1;
}

static int same_step(void *arg, struct unwind_ctx *ctx, struct unwind_regs *regs)
{
  (void)arg, (void)ctx, (void)regs;
  return 1;
}

static int fail_step(void *arg, struct unwind_ctx *ctx, struct unwind_regs *regs)
{
  uint64_t w = 0;
  (void)arg;
  /* reads through the walk's view: the capture first */
  if (unwind_read(ctx, regs->sp, &w, 8) || w != 0x1122334455667788ull)
    return -EINVAL;
  return -EIO;
}

static void run_steps(void)
{
  phase = "runtime steps";
  struct stack_capture c;
  fake_capture(&c, 4096);
  c.regs.rip = real.ra[1];
  c.regs.rsp = FAKE_BASE + 512;
  put64(&c, c.regs.rsp, 0x1122334455667788ull);
  struct frame fr[MAXF];
  size_t n;
  int rc;

  struct unwinder *u;
  CHECK_INT(unwinder_new(&u), 0, "unwinder_new");
  CHECK_INT(unwinder_add_step(u, fail_step, NULL), 0, "unwinder_add_step");
  walk(u, &c, fr, MAXF, &n, &rc);
  CHECK(rc == -EIO && n == 1, "failing step: rc %d n %zu, want -EIO (%d) and 1", rc, n, -EIO);
  unwinder_free(u);

  CHECK_INT(unwinder_new(&u), 0, "unwinder_new");
  CHECK_INT(unwinder_add_step(u, same_step, NULL), 0, "unwinder_add_step");
  expect_cycle("step returning the same frame", &c, u, 1);
  unwinder_free(u);

  static uint64_t pcs[2];
  pcs[0] = real.ra[1];
  pcs[1] = real.ra[2];
  CHECK_INT(unwinder_new(&u), 0, "unwinder_new");
  CHECK_INT(unwinder_add_step(u, bounce_step, pcs), 0, "unwinder_add_step");
  expect_cycle("step bouncing between two frames", &c, u, 0);
  unwinder_free(u);
  unwind_capture_free(&c);
}

/* -- Random captures ------------------------------------------------------ */

static uint64_t rs;

static uint64_t rnd(void)
{
  /* splitmix64 */
  uint64_t z = (rs += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct range {
  uint64_t lo, hi;
};

static struct range self_text[8], any_text[64];
static size_t nself, nany;

static uint64_t in_range(const struct range *r, size_t n)
{
  const struct range *x = &r[rnd() % n];
  return x->lo + rnd() % (x->hi - x->lo);
}

static uint64_t plausible_pc(void)
{
  switch (rnd() % 10) {
  case 0: case 1: case 2: case 3: return in_range(self_text, nself);
  case 4: case 5: return in_range(any_text, nany);
  case 6: {
    const uint64_t k[] = { real.ra[0], real.ra[1], real.ra[2], real.ra[3], restore_rt,
                           real.cap.regs.rip };
    return k[rnd() % (sizeof k / sizeof *k)];
  }
  case 7: return rnd() % 0x10000;
  case 8: return 0;
  default: return rnd();
  }
}

static uint64_t word(const struct stack_capture *c)
{
  switch (rnd() % 10) {
  case 0: case 1: return rnd();
  case 2: case 3: return c->base + ((rnd() % c->len) & ~7ull);
  case 4: case 5: case 6: return plausible_pc();
  case 7: return 0;
  default: return rnd() % 256;
  }
}

/* Return addresses inside functions whose CFA is rbp+16, and the signal trampoline. */
static uint64_t known_ra(void)
{
  const uint64_t k[] = { real.ra[0], real.ra[1], real.ra[2], real.ra[3], real.ra[4], sig.ra[0] };
  return k[rnd() % (sizeof k / sizeof *k)];
}

static void put_in(struct stack_capture *c, uint64_t addr, uint64_t v)
{
  if (addr >= c->base && addr + 8 <= c->base + c->len)
    memcpy(c->bytes + (addr - c->base), &v, 8);
}

/* A frame-pointer chain up the capture, with detours: loops, garbage, signal frames. */
static void lay_chain(struct stack_capture *c, struct user_regs_struct *r)
{
  uint64_t at = r->rsp + 16 + (rnd() % 64) * 8, end = c->base + c->len;
  r->rbp = at;
  r->rip = known_ra();
  for (int k = 0; k < 64 && at + 16 <= end; k++) {
    uint64_t next = at + 16 + (rnd() % 32) * 8;
    if (rnd() % 16 == 0)
      next = c->base + ((rnd() % c->len) & ~7ull);   /* may point down: a loop */
    put_in(c, at, next);
    put_in(c, at + 8, rnd() % 8 ? known_ra() : plausible_pc());
    if (rnd() % 10 == 0) {
      /* the callee was a signal handler: trampoline, then a ucontext at the CFA */
      uint64_t uc = at + 16, g = offsetof(ucontext_t, uc_mcontext.gregs);
      put_in(c, at + 8, restore_rt);
      put_in(c, uc + g + REG_RIP * 8, rnd() % 4 ? known_ra() : plausible_pc());
      put_in(c, uc + g + REG_RSP * 8, c->base + ((rnd() % c->len) & ~7ull));
      put_in(c, uc + g + REG_RBP * 8, rnd() % 4 ? next : rnd());
      if (next < uc + sizeof(ucontext_t))
        next = uc + sizeof(ucontext_t) + (rnd() % 8) * 8;
    }
    at = next;
  }
}

static int known_rc(int rc)
{
  return rc == 0 || rc == -VMS_E_TRUNCATED || rc == -VMS_E_UNWIND || rc == -VMS_E_NOUNWIND ||
         rc == -VMS_E_CYCLE || rc == -VMS_E_BADRET;
}

static void fuzz_one(struct stack_capture *c, uint8_t *buf, struct frame *fr)
{
  c->len = 64 + ((rnd() % (16384 - 64)) & ~7ull);
  c->bytes = buf;
  c->cap = 16384;
  c->base = rnd() % 2 ? (uint64_t)(uintptr_t)buf : FAKE_BASE + (rnd() % 0x100000) * 4096;
  for (size_t o = 0; o < c->len; o += 8) {
    uint64_t w = word(c);
    memcpy(buf + o, &w, 8);
  }
  struct user_regs_struct *r = &c->regs;
  uint64_t g[sizeof *r / 8];
  for (size_t i = 0; i < sizeof g / 8; i++)
    g[i] = rnd();
  memcpy(r, g, sizeof g);
  r->rip = plausible_pc();
  r->rsp = c->base + ((rnd() % c->len) & ~7ull);
  if (rnd() % 10 == 0)
    r->rsp += 1 + rnd() % 7;
  switch (rnd() % 3) {
  case 0: r->rbp = c->base + ((rnd() % c->len) & ~7ull); break;
  case 1: r->rbp = rnd(); break;
  default: r->rbp = 0;
  }
  if (rnd() % 2)
    lay_chain(c, r);
  size_t max = rnd() % 5 ? MAXF : rnd() % 8;
  for (size_t i = 0; i < MAXF + 4; i++)
    fr[i] = (struct frame){ 0xdeadbeef, 0xdeadbeef, 0xdeadbeef };
  size_t n = 9999;
  int rc = unwind_stack(uw, mp, mem, c, fr, max, &n);
  if (!known_rc(rc))
    FAIL("%s: unexpected rc %d (%s)", seed_msg, rc, vms_strerror(rc));
  if (n > max)
    FAIL("%s: %zu frames, max %zu", seed_msg, n, max);
  if (rc == -VMS_E_TRUNCATED && n != max)
    FAIL("%s: truncated with %zu frames, max %zu", seed_msg, n, max);
  for (size_t i = max; i < MAXF + 4; i++)
    if (fr[i].pc != 0xdeadbeef || fr[i].sp != 0xdeadbeef)
      FAIL("%s: frame %zu written beyond max %zu", seed_msg, i, max);
  if (max && r->rip && (n < 1 || fr[0].pc != r->rip || fr[0].sp != r->rsp ||
                        !(fr[0].flags & FRAME_F_EXACT)))
    FAIL("%s: first frame is not the registers' (n %zu rc %d)", seed_msg, n, rc);
  if (max && !r->rip && (n || rc))
    FAIL("%s: pc 0 gave %zu frames rc %d, want none and 0", seed_msg, n, rc);
  for (size_t i = 1; i < n; i++) {
    const struct frame *p = &fr[i - 1], *f = &fr[i];
    if (f->sp < p->sp && !(p->flags & FRAME_F_SIGNAL))
      FAIL("%s: frame %zu sp 0x%" PRIx64 " below frame %zu sp 0x%" PRIx64, seed_msg, i, f->sp,
           i - 1, p->sp);
    const struct map *xm = maps_find(mp, f->pc - 1);
    if (!f->pc || !xm || !strchr(xm->perms, 'x'))
      FAIL("%s: frame %zu pc 0x%" PRIx64 " is not in code", seed_msg, i, f->pc);
  }
  if (has_repeat(fr, n))
    FAIL("%s: a frame repeats (cycle not detected), %zu frames rc %d", seed_msg, n, rc);
}

static void run_fuzz(unsigned seed, int iters)
{
  phase = "fuzz";
  for (size_t i = 0; i < mp->n; i++) {
    const struct map *m = &mp->v[i];
    if (!strchr(m->perms, 'x') || m->end - m->start < 16)
      continue;
    if (m->mod && m->mod == maps_find(mp, real.cap.regs.rip)->mod && nself < 8)
      self_text[nself++] = (struct range){ m->start, m->end };
    if (nany < 64 && (!m->path || strcmp(m->path, "[vsyscall]")))
      any_text[nany++] = (struct range){ m->start, m->end };
  }
  CHECK(nself && nany, "no executable mappings found in our maps");
  rs = seed;
  uint8_t *buf = malloc(16384);
  struct frame *fr = malloc((MAXF + 4) * sizeof *fr);
  struct stack_capture c;
  for (int it = 0; it < iters; it++) {
    phase_iter = it;
    snprintf(seed_msg, sizeof seed_msg, "VMSTACK_SEED=%u (setarch -R for the same addresses) "
             "iteration %d", seed, it);
    mem_invalidate(mem);   /* buf, read live at times, changes every round */
    fuzz_one(&c, buf, fr);
  }
  free(buf);
  free(fr);
}

int main(void)
{
  const char *se = getenv("VMSTACK_SEED");
  unsigned seed = se ? (unsigned)strtoul(se, NULL, 0) : (unsigned)time(NULL) ^ (unsigned)getpid();
  snprintf(seed_msg, sizeof seed_msg, "VMSTACK_SEED=%u", seed);
  const char *ie = getenv("VMSTACK_FUZZ_ITERS");
  int iters = ie ? atoi(ie) : 2000;
  signal(SIGSEGV, on_fatal);
  signal(SIGBUS, on_fatal);
  signal(SIGFPE, on_fatal);
  signal(SIGILL, on_fatal);
  signal(SIGABRT, on_fatal);
  signal(SIGALRM, on_fatal);
  alarm(50);

  CHECK_INT(maps_load(getpid(), &mp), 0, "maps_load(self)");
  CHECK_INT(mem_open_live(getpid(), &mem), 0, "mem_open_live(self)");
  CHECK_INT(unwinder_new(&uw), 0, "unwinder_new");
  run_real();
  take_signal_capture();
  run_cycles();
  run_fuzz(seed, iters);
  check_signal_stack();
  run_altstack();
  run_steps();
  run_signal_cycle();
  unwind_capture_free(&real.cap);
  unwind_capture_free(&sig.cap);
  unwinder_free(uw);
  mem_close(mem);
  maps_free(mp);
  return 0;
}
