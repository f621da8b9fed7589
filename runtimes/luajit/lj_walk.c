/* LuaJIT frame walk: Lua frames of each VM segment, as lj_debug_frame and friends see them.
 *
 * Frame slots (lj_frame.h), FR2 (GC64) layout, TValue = 8 bytes:
 *
 *   base-2  func (GCRef, tagged: mask with gcvmask)
 *   base-1  link: a PC (low 2 bits 0: called from Lua, returns there)
 *                 or delta|type (C 1, CONT 2, VARG 3, CP 5, PCALL 6, PCALLH 7)
 *   base+0  first argument / local ...
 *
 * Without FR2 one slot holds both: func in the low word, link in the high word.
 * The frame "f" is the link slot (base-1); the caller's frame is below it:
 *   frame_prevl(f) = f - (1 + FR2 + A of the CALL before the return PC)   (Lua link)
 *   frame_prevd(f) = f - (delta & ~7) bytes                                 (other links)
 * A segment of one VM native frame ends at a C or CP link (the next segment belongs to the
 * next VM native frame of the same lua_State), or at the stack's bottom.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lj_vm.h"
#include "vmstack/err.h"
#include "vmstack/mem.h"
#include "vmstack/maps.h"
#include "vmstack/runtime.h"
#include "vmstack/target.h"
#include "vmstack/unwind.h"
#include "vmstack/util.h"

#define STACK_READ_MAX (1u << 20)   /* bytes of one Lua stack read at most */
#define FRAMES_SLACK 64             /* frames not shown (the VM's own) passed at most, beyond
                                       the frames asked for */
#define FRAMES_MAX 65536            /* frames of a stack passed at most (lj_each_frame) */
#define SCAN_SLOTS 256              /* slots looked at for a segment's start at most */

/* -- The walk ------------------------------------------------------------- */

/* The lua_State and its stack up to L->top or `high`, whichever is higher (plus the most a
 * frame can use above its base), or the whole stack when high is 0. */
static int read_lstack(struct lj_vm *vm, uint64_t L, struct lstack *s, uint64_t high)
{
  const struct lj_layout *lo = vm->lo;
  uint8_t b[256];
  size_t mw = lo->mref_size;
  if (lo->L.size > sizeof b || mem_read(vm->t->mem, L, b, lo->L.size))
    return -VMS_E_BADDATA;
  s->L = L;
  s->base = rd(b, lo->L.base, mw);
  s->top = rd(b, lo->L.top, mw);
  s->stack = rd(b, lo->L.stack, mw);
  s->cframe = rd(b, lo->L.cframe, 8) & (uint64_t)lo->cf.rawmask;
  uint64_t stacksize = rd(b, lo->L.stacksize, 4) * 8ull;
  if (!s->stack || s->base < s->stack || s->base > s->stack + stacksize || !stacksize)
    return -VMS_E_BADDATA;
  /* a frame uses at most LJ_MAX_SLOTS (250) slots above its base */
  uint64_t used = stacksize;
  if (high && s->top > high)
    high = s->top;
  if (high > s->stack && high - s->stack + 2048 < stacksize)
    used = high - s->stack + 2048;
  s->lo = s->stack;
  s->len = used > STACK_READ_MAX ? STACK_READ_MAX : used;
  if (s->len > s->cap) {
    uint8_t *nb = realloc(s->bytes, s->len);
    if (!nb)
      return -ENOMEM;
    s->bytes = nb;
    s->cap = s->len;
  }
  if (mem_read(vm->t->mem, s->lo, s->bytes, s->len))
    return -VMS_E_BADDATA;
  return 0;
}

/* Function object and link of frame f. */
static int frame_at(const struct lj_vm *vm, const struct lstack *s, uint64_t f, uint64_t *ret_fn,
                    int64_t *ret_link)
{
  const struct lj_layout *lo = vm->lo;
  uint64_t v;
  if (lo->fr2) {
    if (slot(s, f - 8, &v))
      return -VMS_E_BADDATA;
    *ret_fn = v & lo->gcvmask;
    if (slot(s, f, &v))
      return -VMS_E_BADDATA;
    *ret_link = (int64_t)v;
  } else {
    if (slot(s, f, &v))
      return -VMS_E_BADDATA;
    *ret_fn = (uint32_t)v;
    *ret_link = (int32_t)(v >> 32);
  }
  return 0;
}

/* The PC saved in a CONT frame (frame_contpc). */
static int cont_pc(const struct lj_vm *vm, const struct lstack *s, uint64_t f, uint64_t *ret)
{
  uint64_t v = 0;
  int r = slot(s, f - (vm->lo->fr2 ? 16 : 8), &v);
  *ret = vm->lo->fr2 ? v : v >> 32;
  return r;
}

/* The innermost VM entry with Lua frames (lua_cpcall's have none: the JIT compiler, trace
 * exits and C run protected under one). */
static size_t lj_first_lua(const struct lj_vm *vm)
{
  size_t i = 0;
  while (i + 1 < vm->ncf && vm->cf[i].nolua)
    i++;
  return i;
}

/* Does frame f hold a function (or the dummy frame of L)? */
static int frame_ok(struct lj_vm *vm, const struct lstack *s, uint64_t f)
{
  const struct lj_layout *lo = vm->lo;
  uint64_t fn;
  int64_t link;
  uint8_t gct;
  if (!f || f <= s->stack || f - s->lo >= s->len || frame_at(vm, s, f, &fn, &link))
    return 0;
  if (fn == s->L)
    return 1;
  return fn && !(fn & 7) && !mem_read(vm->t->mem, fn + lo->L.gct, &gct, 1) &&
         gct == lo->gct.func;
}

/* Is L the running lua_State of G? */
int lj_is_curL(struct lj_vm *vm, uint64_t G, uint64_t L)
{
  uint64_t cur = 0;
  if (vm->snap.valid && vm->snap.G == G)
    return vm->snap.s.L == L;
  return !mem_read(vm->t->mem, G + vm->lo->g.cur_L, &cur, vm->lo->gcref_size) && cur == L;
}

struct cursor {
  uint64_t L;
  uint64_t f;          /* next frame to report */
  int done;
  int noline;          /* a Lua frame of this segment had a PC outside its code */
};

/* Emit the frames of one segment, from frame f with the leaf PC pc, until a C/CP link. */
static int walk_segment(struct lj_vm *vm, const struct lstack *s, struct cursor *cur, uint64_t pc,
                        size_t anchor, struct vm_frames *out)
{
  const struct lj_layout *lo = vm->lo;
  uint64_t bot = s->stack + 8ull * lo->fr2;
  uint64_t f = cur->f, next_link_pc = pc;
  uint64_t top = 0;   /* where the frame's slots end: the frame above's function (0: unknown) */
  int have_pc = pc != 0;
  size_t max = out->max ? out->max : VM_FRAMES_DEFAULT;
  for (size_t guard = 0; f > bot; guard++) {
    if (guard > max + FRAMES_SLACK || out->n >= max) {
      cur->f = f;
      return -VMS_E_TRUNCATED;
    }
    uint64_t fn;
    int64_t link;
    if (frame_at(vm, s, f, &fn, &link))
      return -VMS_E_BADDATA;
    uint64_t nf = f;
    unsigned type = (unsigned)(link & lo->frame.typep);
    if ((link & lo->frame.type) != lo->frame.lua && type == lo->frame.varg) {
      /* vararg frame: the real link is in the frame below */
      nf = f - (uint64_t)(link & ~(int64_t)7);
      if (nf >= f || frame_at(vm, s, nf, &fn, &link))
        return -VMS_E_BADDATA;
      type = (unsigned)(link & lo->frame.typep);
    }
    int islua = (link & lo->frame.type) == lo->frame.lua;
    uint64_t prev;
    if (islua) {
      uint32_t ins;
      if (mem_read(vm->t->mem, (uint64_t)link - 4, &ins, 4))
        return -VMS_E_BADDATA;
      prev = nf - 8ull * (1 + lo->fr2 + ((ins >> 8) & 0xff));
    } else {
      prev = nf - (uint64_t)(link & ~(int64_t)7);
    }
    if (prev >= f && f > bot)
      return -VMS_E_CYCLE;
    if (fn != s->L) {
      /* the function object of this frame */
      uint8_t fb[64];
      if (lo->fn.csize > sizeof fb || mem_read(vm->t->mem, fn, fb, lo->fn.csize))
        return -VMS_E_BADDATA;
      if (fb[lo->L.gct] != lo->gct.func)
        return -VMS_E_BADDATA;
      uint8_t ffid = fb[lo->fn.ffid];
      struct vm_frame *vf = vm_frames_push(out, anchor, ffid == lo->ff_lua ? FK_FUNCTION
                                           : ffid == lo->ff_c ? FK_CFUNC : FK_BUILTIN);
      if (!vf)
        return -ENOMEM;
      /* for the locals hook: lua_State, frame slot, function, PC (0: unknown), slots' end */
      vf->ctx[0] = s->L;
      vf->ctx[1] = f;
      vf->ctx[2] = fn;
      vf->ctx[3] = have_pc ? next_link_pc : 0;
      vf->ctx[4] = top;
      if (ffid == lo->ff_lua) {
        struct proto p;
        uint64_t fpc = rd(fb, lo->fn.pc, lo->mref_size);
        if (lj_read_proto(vm, fpc - lo->pt.size, &p))
          return -VMS_E_BADDATA;
        char file[STR_MAX + 16];
        lj_chunk_name(vm, &p, file, sizeof file);
        vm_frames_setf(out, &vf->file, "%s", file);
        if (have_pc) {
          vf->line = lj_proto_line(vm, &p, lj_proto_pos(&p, next_link_pc));
          cur->noline |= !vf->line && p.lineinfo;
        }
        if (p.firstline == 0 && p.numline)
          vf->func = "main chunk";
        else
          vm_frames_setf(out, &vf->func, "function <%s:%d>", vf->file, p.firstline);
      } else if (ffid == lo->ff_c) {
        /* a Lua C module's function as package.loaded names it ("cjson.encode"), else as
         * its caller does (below); empty: the consumer names it by symbol */
        vf->pc = rd(fb, lo->fn.c_f, 8);
        const char *cn = lj_func_name(vm, fn);
        if (cn)
          vm_frames_setf(out, &vf->func, "%s", cn);
      } else {
        const char *bn = lj_func_name(vm, fn);
        if (bn)
          vm_frames_setf(out, &vf->func, "%s", bn);
        else
          vm_frames_setf(out, &vf->func, "builtin#%u", ffid);
      }
      /* a better name from the caller's call instruction */
      uint64_t cpc = 0;
      if (islua)
        cpc = (uint64_t)link;
      else if (type == lo->frame.cont)
        cont_pc(vm, s, nf, &cpc);
      uint64_t cfn;
      int64_t clink;
      /* (a C function keeps its package.loaded name or none: a caller's local name would
       * merge different functions in a profile) */
      if (ffid != lo->ff_c && cpc && prev > bot && !frame_at(vm, s, prev, &cfn, &clink)) {
        uint8_t cb[64];
        struct proto cp;
        char nm[STR_MAX];
        if (lo->fn.lsize <= sizeof cb && !mem_read(vm->t->mem, cfn, cb, lo->fn.lsize) &&
            cb[lo->fn.ffid] == lo->ff_lua &&
            !lj_read_proto(vm, rd(cb, lo->fn.pc, lo->mref_size) - lo->pt.size, &cp) &&
            !lj_call_name(vm, &cp, cpc, nm, sizeof nm))
          vm_frames_setf(out, &vf->func, "%s", nm);
      }
    }
    /* the PC of the frame below: this frame's return address, when it was called from Lua */
    have_pc = 1;
    top = nf - 8ull * lo->fr2;
    if (islua)
      next_link_pc = (uint64_t)link;
    else if (type == lo->frame.cont && !cont_pc(vm, s, nf, &next_link_pc))
      ;
    else
      have_pc = 0;
    f = prev;
    if (!islua && (type == lo->frame.c || type == lo->frame.cp)) {
      cur->f = f;
      return 0;
    }
  }
  cur->f = f;
  cur->done = 1;
  return 0;
}

static int lj_walk_L(struct lj_vm *vm, const struct lj_cframe *cf, size_t ncf, size_t i0,
                     const struct stack_capture *cap, const struct frame *native, size_t nnative,
                     struct vm_frames *out)
{
  const struct lj_layout *lo = vm->lo;
  struct lstack own = { 0 }, *sp = &own;
  int r = 0;
  if (vm->snap.valid && vm->snap.s.L == cf[i0].L)
    sp = &vm->snap.s;   /* copied while the thread was stopped */
  else if ((r = read_lstack(vm, cf[i0].L, &own, 0)))
    return r;
  struct lstack s = *sp;
  struct cursor cur = { .L = cf[i0].L };
  int started = 0;
  for (size_t i = i0; i < ncf && !r && !cur.done; i++) {
    if (cf[i].L != cf[i0].L)
      continue;
    size_t anchor = 0;
    while (anchor < nnative && !(native[anchor].sp == cf[i].sp && native[anchor].pc == cf[i].ip))
      anchor++;
    if (anchor == nnative && cf[i].ip)
      continue;   /* (ip 0: a VM entry below the native frames found, shown unplaced) */
    if (cf[i].nolua)
      continue;   /* lua_cpcall's entry has no Lua frame: they belong to the next one */
    uint64_t pc = 0;
    if (!started++) {
      /* where the innermost frames of this lua_State start: candidates, best first; the
       * first whose frame holds a function is taken */
      uint64_t f[3] = { 0, 0, 0 }, p[3] = { 0, 0, 0 };
      uint64_t jit_base = 0;
      if (cf[i].L == s.L && vm->snap.valid && vm->snap.s.L == s.L)
        jit_base = vm->snap.jit_base;
      else if (vm->G && !lj_is_curL(vm, vm->G, s.L))
        jit_base = 0;
      else if (vm->G)
        mem_read(vm->t->mem, vm->G + lo->g.jit_base, &jit_base, lo->mref_size);
      uint64_t save_pc = cf[i].save_pc == cf[i].L ? 0 : cf[i].save_pc;
      switch (cf[i].kind) {
      case LJ_CF_TRACE:
        /* on a trace: the frames from jit_base down are exact; the trace's own position
         * is only known as its start */
        f[0] = jit_base ? jit_base - 8 : 0, p[0] = cf[i].startpc + 4;
        f[1] = s.base - 8, p[1] = cf[i].startpc + 4;
        break;
      case LJ_CF_GUESS:
        /* the exit handler has moved jit_base to L->base; elsewhere L->base is current */
        f[0] = jit_base ? jit_base - 8 : 0;
        f[1] = s.base - 8, p[1] = jit_base ? 0 : save_pc;
        break;
      case LJ_CF_INTERP:
        if (anchor == 0) {
          /* stopped in the interpreter: BASE in rdx, PC (next instruction) in rbx */
          f[0] = cap->regs.rdx - 8, p[0] = cap->regs.rbx;
          f[1] = s.base - 8, p[1] = save_pc;
          /* a call being entered (lua_call's vm_call): the frame's link is written, its
           * function not yet; the frame below it is whole */
          uint64_t fn0;
          int64_t link0;
          if (!frame_at(vm, &s, f[0], &fn0, &link0) && (link0 & lo->frame.type) != lo->frame.lua &&
              (link0 & ~(int64_t)7) > 0 && (uint64_t)(link0 & ~(int64_t)7) < f[0] - s.stack)
            f[2] = f[0] - (uint64_t)(link0 & ~(int64_t)7), p[2] = 0;
        } else {
          /* in C called from the VM: L->base is current; rbx still holds the VM's PC */
          f[0] = s.base - 8, p[0] = cf[i].bx;
          f[1] = s.base - 8, p[1] = save_pc;
        }
        break;
      }
      /* the first candidate whose segment reads to its end; if none does, the first
       * with a function, with what it gave */
      size_t first = out->n, k0 = 3;
      for (size_t k = 0; k < 3; k++) {
        if (!frame_ok(vm, &s, f[k]) || f[k] >= s.stack + s.len)
          continue;
        if (k0 == 3)
          k0 = k;
        cur = (struct cursor){ .L = s.L, .f = f[k] };
        out->n = first;
        r = walk_segment(vm, &s, &cur, p[k], anchor, out);
        if (!r || r == -VMS_E_TRUNCATED) {   /* (cut at the frames asked for: it reads) */
          if ((k || cur.noline) && cf + i == vm->cf + lj_first_lua(vm))
            vm->start_alt = 1;
          break;
        }
      }
      if (k0 == 3 || (r && r != -VMS_E_TRUNCATED)) {
        /* no candidate reads to its end (the instructions of a return or call moving
         * BASE): the nearest slot below them that starts a segment reading to its end,
         * its innermost line unknown */
        uint64_t g = 0;
        for (size_t k = 0; k < 3; k++)
          if (f[k] > g && f[k] < s.stack + s.len)
            g = f[k];
        if (!g || g >= s.stack + s.len)
          g = s.base - 8;
        int found = 0;
        for (int tries = 0; tries < SCAN_SLOTS && g > s.stack && !found; tries++, g -= 8) {
          if (!frame_ok(vm, &s, g))
            continue;
          cur = (struct cursor){ .L = s.L, .f = g };
          out->n = first;
          if (!walk_segment(vm, &s, &cur, 0, anchor, out)) {
            found = 1;
            r = 0;
            k0 = 0;
            if (cf + i == vm->cf + lj_first_lua(vm))
              vm->start_alt = 1;
          }
        }
        if (!found)
          out->n = first;
      }
      if (k0 == 3) {
        r = -VMS_E_BADDATA;
        break;
      }
      if (r && r != -VMS_E_TRUNCATED && k0 < 3) {
        cur = (struct cursor){ .L = s.L, .f = f[k0] };
        out->n = first;
        r = walk_segment(vm, &s, &cur, p[k0], anchor, out);
      }
      if (cf[i].kind == LJ_CF_TRACE && out->n > first)
        out->v[first].trace = cf[i].trace;
      continue;
    }
    pc = cf[i].save_pc == cf[i].L ? 0 : cf[i].save_pc;
    r = walk_segment(vm, &s, &cur, pc, anchor, out);
  }
  (void)lo;
  free(own.bytes);
  return r;
}

/* -- Frames of a thread, from memory alone ------------------------------------ */

int lj_each_frame(struct lj_vm *vm, uint64_t L, lj_frame_fn cb, void *arg)
{
  const struct lj_layout *lo = vm->lo;
  struct lstack s = { 0 };
  int r = read_lstack(vm, L, &s, 0);
  if (r)
    return r;
  uint64_t bot = s.stack + 8ull * lo->fr2;
  uint64_t f = s.base - 8, top = s.top, pc = 0;
  for (size_t guard = 0; !r && f > bot; guard++) {
    uint64_t fn;
    int64_t link;
    if (guard > FRAMES_MAX) {
      r = -VMS_E_TRUNCATED;
      break;
    }
    if (frame_at(vm, &s, f, &fn, &link)) {
      r = -VMS_E_BADDATA;
      break;
    }
    uint64_t nf = f;
    unsigned type = (unsigned)(link & lo->frame.typep);
    if ((link & lo->frame.type) != lo->frame.lua && type == lo->frame.varg) {
      /* a vararg frame: the function was called from the frame below it */
      nf = f - (uint64_t)(link & ~(int64_t)7);
      if (nf >= f || frame_at(vm, &s, nf, &fn, &link)) {
        r = -VMS_E_BADDATA;
        break;
      }
      type = (unsigned)(link & lo->frame.typep);
    }
    int islua = (link & lo->frame.type) == lo->frame.lua;
    uint64_t prev;
    if (islua) {
      uint32_t ins;
      if (mem_read(vm->t->mem, (uint64_t)link - 4, &ins, 4)) {
        r = -VMS_E_BADDATA;
        break;
      }
      prev = nf - 8ull * (1 + lo->fr2 + ((ins >> 8) & 0xff));
    } else {
      prev = nf - (uint64_t)(link & ~(int64_t)7);
    }
    if (prev >= f) {
      r = -VMS_E_CYCLE;
      break;
    }
    if (fn != s.L && (r = cb(arg, fn, f + 8, top > f + 8 ? top : f + 8, pc)))
      break;
    /* the frame below: its slots end at this frame's function; its PC is this frame's
     * return address when Lua called it */
    top = nf - 8ull * lo->fr2;
    if (islua)
      pc = (uint64_t)link;
    else if (type != lo->frame.cont || cont_pc(vm, &s, nf, &pc))
      pc = 0;
    f = prev;
  }
  free(s.bytes);
  return r;
}

/* -- Suspended coroutines ------------------------------------------------ */

#define GCOBJ_MAX 20000000   /* objects of gc.root's list visited at most */
#define COROS_MS 200         /* and for at most this long (a thread is held meanwhile) */
#define LUA_YIELD 1

static int walk_suspended(struct lj_vm *vm, uint64_t L, struct vm_frames *out)
{
  struct lstack s = { 0 };
  int r = read_lstack(vm, L, &s, 0);
  if (r)
    return r;
  /* a yielded coroutine keeps L->base at the frame that yielded (coroutine.yield or the C
   * function that called lua_yield); the PC of that frame is not needed */
  struct cursor cur = { .L = L, .f = s.base - 8 };
  for (int seg = 0; !r && !cur.done && seg < 64; seg++) {
    uint64_t before = cur.f;
    r = walk_segment(vm, &s, &cur, 0, 0, out);
    if (cur.f >= before)
      break;
  }
  free(s.bytes);
  return r;
}

int lj_coroutines(void *vmv, struct target *t, struct vm_coroutines *out)
{
  struct lj_vm *vm = vmv;
  const struct lj_layout *lo = vm->lo;
  (void)t;
  uint64_t Gs[16];
  size_t nG = 0;
  if (vm->G)
    Gs[nG++] = vm->G;
  else
    nG = lj_scan_G(vm, Gs, sizeof Gs / sizeof *Gs);
  for (size_t g = 0; g < nG; g++) {
    uint64_t obj = 0;
    if (mem_read(vm->t->mem, Gs[g] + lo->g.gc_root, &obj, lo->gcref_size))
      return out->err = -VMS_E_BADDATA;
    uint64_t mainL = 0;
    mem_read(vm->t->mem, Gs[g] + lo->g.mainthref, &mainL, lo->gcref_size);
    /* a thread is held stopped meanwhile: bounded in time, and a corrupt list that loops
     * is caught (Brent: compare with a marker moved at powers of two) */
    uint64_t t0 = clock_ms();
    uint64_t mark = obj;
    size_t power = 1;
    int walked = 0;   /* a coroutine's stack was read since the clock was looked at */
    for (size_t n = 0; obj; n++) {
      uint8_t h[16];
      if (n > GCOBJ_MAX)
        return out->err = -VMS_E_TRUNCATED;
      if (!(n & 4095) || walked) {
        walked = 0;
        if (clock_ms() - t0 > COROS_MS)
          return out->err = -VMS_E_TRUNCATED;
      }
      if (n == power) {
        mark = obj;
        power *= 2;
      } else if (n && obj == mark) {
        return out->err = -VMS_E_CYCLE;
      }
      if (mem_read(vm->t->mem, obj, h, sizeof h))
        return out->err = -VMS_E_BADDATA;
      uint64_t next = rd(h, 0, lo->gcref_size);
      if (h[lo->L.gct] == lo->gct.thread && obj != mainL) {
        uint8_t status;
        if (!mem_read(vm->t->mem, obj + lo->L.status, &status, 1) && status == LUA_YIELD) {
          struct vm_coroutine *co = vm_coroutines_push(out);
          if (!co)
            return out->err = -ENOMEM;
          co->id = obj;
          fmt(co->state, sizeof co->state, "suspended");
          co->vf.err = walk_suspended(vm, obj, &co->vf);
          walked = 1;
        }
      }
      if (next == obj)
        return out->err = -VMS_E_CYCLE;
      obj = next;
    }
  }
  return 0;
}

int lj_capture(void *vmv, struct target *t, struct thread *th, const struct stack_capture *cap)
{
  struct lj_vm *vm = vmv;
  const struct lj_layout *lo = vm->lo;
  (void)t;
  vm->snap.valid = 0;
  vm->snap_L = 0;
  const size_t slots = sizeof vm->tidG / sizeof *vm->tidG;
  size_t k = (size_t)th->tid % slots;
  if (vm->tidG[k].tid != th->tid)
    return -EAGAIN;   /* not walked yet: walk it while it is stopped */
  uint64_t G = vm->tidG[k].G;
  if (!G)
    return 0;         /* it ran no Lua last time: nothing to copy, walk it after release */
  /* one batch for the VM's state, then the running lua_State and its stack */
  uint64_t curL = 0, jit_base = 0;
  int32_t vmstate = 0;
  struct mem_iov v[3] = {
    { G + lo->g.cur_L, &curL, lo->gcref_size, 0 },
    { G + lo->g.vmstate, &vmstate, 4, 0 },
    { G + lo->g.jit_base, &jit_base, lo->mref_size, 0 },
  };
  if (mem_readv(vm->t->mem, v, 3) || !curL)
    return -EAGAIN;
  /* the frames in use end below L->top, or BASE (rdx) in the interpreter, or jit_base */
  uint64_t high = cap->regs.rdx > jit_base ? cap->regs.rdx : jit_base;
  if (read_lstack(vm, curL, &vm->snap.s, high ? high : 1))
    return -EAGAIN;
  vm->snap.G = G;
  vm->snap.vmstate = vmstate;
  vm->snap.jit_base = jit_base;
  vm->snap.valid = 1;
  return 0;
}

/* The G whose running lua_State has a VM entry on this thread's stack below the last
 * native frame found (recorded as a guessed, unplaced VM frame), or 0. */
static uint64_t lua_below(struct lj_vm *vm, const struct stack_capture *cap,
                          const struct frame *native, size_t nnative)
{
  const struct lj_layout *lo = vm->lo;
  uint64_t G = vm->snap.valid ? vm->snap.G : vm->G, L = 0, cf = 0, pc = 0, sL = 0;
  int32_t st = 0;
  if (vm->snap.valid) {
    L = vm->snap.s.L;
    cf = vm->snap.s.cframe;
    st = vm->snap.vmstate;
  } else {
    uint64_t raw = 0;
    struct mem_iov v[2] = {
      { G + lo->g.cur_L, &L, lo->gcref_size, 0 },
      { G + lo->g.vmstate, &st, 4, 0 },
    };
    if (mem_readv(vm->t->mem, v, 2) || !L || mem_read(vm->t->mem, L + lo->L.cframe, &raw, 8))
      return 0;
    cf = raw & (uint64_t)lo->cf.rawmask;
  }
  /* the entry must lie in this thread's stack, below (outside) the frames found */
  if (!L || !cf || cf < cap->base || cf + lo->cf.size > cap->base + cap->len ||
      cf <= native[nnative - 1].sp)
    return 0;
  memcpy(&sL, cap->bytes + (cf + lo->cf.ofs_l - cap->base), lo->gcref_size);
  memcpy(&pc, cap->bytes + (cf + lo->cf.ofs_pc - cap->base), lo->gcref_size);
  if (sL != L)
    return 0;
  vm->cf[0] = (struct lj_cframe){ 0, 0, cf, L, pc, 0, LJ_CF_GUESS, st > 0 ? st : 0, 0, 0 };
  vm->ncf = 1;
  return G;
}

/* The header's account of what the VM was doing: g->vmstate, and where the innermost VM
 * frame was found (interpreter, a trace, or a guess) with what native code above it. */
static void describe_state(struct lj_vm *vm, int32_t st, const struct frame *native,
                           size_t nnative, char *buf, size_t cap, size_t *ret_sym)
{
  static const char *const names[] = { "interpreted", "in C", "in GC", "exiting a trace",
                                       "JIT recording", "JIT optimising", "JIT assembling" };
  const struct lj_cframe *c = &vm->cf[lj_first_lua(vm)];
  const char *nm = st < 0 && (uint32_t)~st < sizeof names / sizeof *names ? names[~st] : "";
  size_t anchor = 0;
  while (anchor < nnative && !(native[anchor].sp == c->sp && native[anchor].pc == c->ip))
    anchor++;
  if (!vm->ncf) {
    if (st > 0)
      fmt(buf, cap, "JIT trace %d", st);
    else
      fmt(buf, cap, "%s", nm);
    return;
  }
  if (c->kind == LJ_CF_GUESS) {
    const char *tail = anchor < nnative ? "innermost frames not known"
                                        : "native frames between not unwound";
    if (st == ~(int32_t)vm->lo->vmst.exit)
      fmt(buf, cap, "exiting a trace, %s", tail);
    else if (st > 0)
      fmt(buf, cap, "JIT trace %d, %s", st, tail);
    else
      fmt(buf, cap, "%s, %s", nm, tail);
    return;
  }
  if (c->kind == LJ_CF_INTERP || anchor == 0 || anchor >= nnative) {
    if (c->kind == LJ_CF_TRACE)
      fmt(buf, cap, "JIT trace %d", c->trace);
    else if (st > 0)   /* a trace's vmstate while the interpreter runs: exit in progress */
      fmt(buf, cap, "JIT trace %d", st);
    else if (c->kind == LJ_CF_INTERP && anchor > 0 && st == ~(int32_t)vm->lo->vmst.interp)
      fmt(buf, cap, "in C");   /* a C helper of the interpreter (tables, strings, ...) */
    else
      fmt(buf, cap, "%s", nm);
    if (vm->start_alt) {
      size_t l = strlen(buf);
      fmt(buf + l, cap - l, ", innermost frame not exact");
    }
    return;
  }
  /* native code called from a trace: what is right above the trace's frame */
  uint64_t above = native[anchor - 1].pc;
  if (st == ~(int32_t)vm->lo->vmst.gc) {
    fmt(buf, cap, "GC step in trace %d", c->trace);
    return;
  }
  if (above >= vm->vm_start && above < vm->vm_end) {
    fmt(buf, cap, "VM helper from trace %d", c->trace);
    return;
  }
  /* (whether it is an FFI call or a helper the JIT calls, libm's sin as much as
   * lj_str_new, the code does not say; the consumer names the frame) */
  fmt(buf, cap, "C ({}) from trace %d", c->trace);
  *ret_sym = anchor;
}

int lj_walk(void *vmv, struct target *t, struct thread *th, const struct stack_capture *cap,
            const struct frame *native, size_t nnative, struct vm_frames *out)
{
  struct lj_vm *vm = vmv;
  (void)t;
  (void)th;
  int r = 0;
  /* the native walk stopped before it met any VM frame (code without unwind information
   * called from Lua, e.g. an FFI library built without it), while this thread's VM runs
   * Lua deeper in the stack: its Lua frames are still shown, unplaced */
  uint64_t unplaced = 0;
  if (!vm->ncf && nnative && cap && (vm->snap.valid || vm->G))
    unplaced = lua_below(vm, cap, native, nnative);
  /* one pass per lua_State, innermost first (a coroutine's frames come before its resumer's) */
  for (size_t i = 0; i < vm->ncf && !r; i++) {
    int seen = 0;
    for (size_t j = 0; j < i; j++)
      seen |= vm->cf[j].L == vm->cf[i].L;
    if (!seen)
      r = lj_walk_L(vm, vm->cf, vm->ncf, i, cap, native, nnative, out);
  }
  /* what the VM was doing, from g->vmstate (~LJ_VMST_* or a trace number) */
  int32_t st;
  if (vm->snap.valid && vm->snap.G == vm->G)
    st = vm->snap.vmstate;
  else if (!vm->G || mem_read(vm->t->mem, vm->G + vm->lo->g.vmstate, &st, 4))
    st = 0;
  if (out->n && st)
    describe_state(vm, st, native, nnative, out->state, sizeof out->state, &out->state_sym);
  if (vm->layout_bad && !r)
    r = -VMS_E_UNSUPPORTED;
  /* remember this thread's VM (or that it ran none): the next capture can copy its state
   * right away (a table indexed by tid; a collision only costs a walk while stopped) */
  if (th) {
    size_t k = (size_t)th->tid % (sizeof vm->tidG / sizeof *vm->tidG);
    vm->tidG[k].tid = th->tid;
    vm->tidG[k].G = vm->ncf ? vm->G : 0;
    if (unplaced)
      vm->tidG[k].G = unplaced;
  }
  vm->snap_L = vm->snap.valid ? vm->snap.s.L : 0;
  vm->snap.valid = 0;
  vm->ncf = 0;
  vm->start_alt = 0;
  out->err = r;
  return r;
}
