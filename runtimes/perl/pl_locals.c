/* Perl locals: the my/state variables of a frame the walk emitted, from its sub's pad at
 * the call's depth, those in scope at the statement it is at (as PadWalker's peek_my
 * sees them), and a sub's @_; each value written as Perl would write it. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_vm.h"
#include "vmstack/elf.h"
#include "vmstack/frames.h"
#include "vmstack/maps.h"
#include "vmstack/mem.h"
#include "vmstack/target.h"
#include "vmstack/vartext.h"

#define VARS_MAX 300          /* variables of one frame shown at most */
#define PAD_MAX 100000        /* pad entries looked at at most */
#define SCAN_MAX 1000000      /* buckets looked at for a preview's entries */

struct pctx {
  struct pl_vm *vm;
  const struct pl_layout *lo;
  const struct vm_locals_opts *opts;
  struct vtext text;          /* the value being written (vt_value_room of them) */
  uint8_t *str;               /* a string's bytes being read: max_string + 8 */
};

static int r32(struct pl_vm *vm, uint64_t addr, uint32_t *ret)
{
  return mem_read(vm->t->mem, addr, ret, 4);
}

/* -- Values ----------------------------------------------------------------------- */

static void put_sv(struct pctx *c, struct vtext *o, uint64_t sv, int depth, int64_t *ret_len);

/* A number as Perl prints it (%.15g; Inf, -Inf, NaN). */
static void put_nv(struct vtext *o, double d)
{
  if (isnan(d))
    vt_puts(o, "NaN");
  else if (isinf(d))
    vt_puts(o, d < 0 ? "-Inf" : "Inf");
  else
    vt_putf(o, "%.15g", d);
}

/* A string's bytes: the PV and its length (SvCUR). */
static int read_pv(struct pctx *c, const struct svh *h, uint8_t *buf, size_t want, size_t *ret_n,
                   size_t *ret_len)
{
  uint64_t cur = 0;
  if (!h->u || rptr(c->vm, h->any + c->lo->heap.xpv_cur, &cur) || cur > (1ull << 40))
    return -1;
  size_t n = cur < want ? (size_t)cur : want;
  if (n && mem_read(c->vm->t->mem, h->u, buf, n))
    return -1;
  *ret_n = n;
  *ret_len = (size_t)cur;
  return 0;
}

/* "(1, 2, 3, … (+N more))" of an AV's elements, in order. */
static void put_av_items(struct pctx *c, struct vtext *o, const struct svh *h, int depth,
                         int64_t *ret_len)
{
  int64_t fill = -1;
  if (mem_read(c->vm->t->mem, h->any + c->lo->heap.xav_fill, &fill, 8) || fill < -1 ||
      fill > ((int64_t)1 << 40))
    fill = -1;
  size_t total = (size_t)(fill + 1), shown = total < c->opts->preview ? total : c->opts->preview;
  for (size_t i = 0; i < shown; i++) {
    uint64_t e = 0;
    if (i)
      vt_puts(o, ", ");
    if (rptr(c->vm, h->u + i * 8, &e) && h->u) {
      vt_puts(o, "?");
      continue;
    }
    if (e)
      put_sv(c, o, e, depth + 1, NULL);
    else
      vt_puts(o, "undef");
  }
  if (total > shown)
    vt_putf(o, "%s\xe2\x80\xa6 (+%zu more)", shown ? ", " : "", total - shown);
  if (ret_len)
    *ret_len = (int64_t)total;
}

/* A hash key: a bareword when Perl would take it as one, else quoted. */
static void put_key(struct pctx *c, struct vtext *o, uint64_t hek)
{
  int32_t len = 0;
  uint8_t k[128];
  if (!hek || mem_read(c->vm->t->mem, hek + c->lo->hek.len, &len, 4) || len < 0) {
    vt_puts(o, "?");
    return;
  }
  size_t n = (size_t)len < sizeof k ? (size_t)len : sizeof k;
  if (n && mem_read(c->vm->t->mem, hek + c->lo->hek.key, k, n)) {
    vt_puts(o, "?");
    return;
  }
  int bare = n == (size_t)len && n && !(k[0] >= '0' && k[0] <= '9');
  for (size_t i = 0; bare && i < n; i++)
    bare = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
           (k[i] >= '0' && k[i] <= '9') || k[i] == '_';
  if (bare)
    vt_put(o, (const char *)k, n);
  else
    vt_string(o, k, n, (size_t)len, 40, VT_PERL, 1);
}

/* "(name => "api", timeout => 30, … (+N more))": a hash's entries in the order keys()
 * gives them: bucket by bucket, from the one its iterator's number picks (a hash that was
 * iterated has one; else bucket 0). */
static void put_hv_items(struct pctx *c, struct vtext *o, const struct svh *h, int depth,
                         int64_t *ret_len)
{
  const struct pl_layout *lo = c->lo;
  uint64_t max = 0, keys = 0;
  if (rptr(c->vm, h->any + lo->xhv.max, &max) || max >= (1ull << 40) ||
      rptr(c->vm, h->any + lo->xhv.keys, &keys) || keys >= (1ull << 40))
    return;
  uint32_t rnd = 0;
  if (lo->loc.has_rand && (h->flags & lo->svf_ook)) {
    uint64_t aux = lo->xhv.aux_in_body ? h->any + lo->xhv.aux : h->u + (max + 1) * 8;
    if (r32(c->vm, aux + lo->loc.hvaux_rand, &rnd))
      rnd = 0;
  }
  size_t shown = 0;
  /* (the preview's entries are looked for in the first SCAN_MAX buckets; keys counts them
   * all) */
  for (uint64_t riter = 0; h->u && riter <= max && riter < SCAN_MAX && shown < c->opts->preview;
       riter++) {
    uint64_t he = 0, b = (riter ^ rnd) & max;
    if (rptr(c->vm, h->u + b * 8, &he))
      break;
    for (int hops = 0; he && hops < 1000 && shown < c->opts->preview; hops++) {
      uint64_t next = 0, hek = 0, val = 0;
      if (rptr(c->vm, he + lo->he.next, &next) || rptr(c->vm, he + lo->he.hek, &hek) ||
          rptr(c->vm, he + lo->he.val, &val))
        break;
      if (shown++)
        vt_puts(o, ", ");
      put_key(c, o, hek);
      vt_puts(o, " => ");
      if (val)
        put_sv(c, o, val, depth + 1, NULL);
      else
        vt_puts(o, "undef");
      he = next;
    }
  }
  if (keys > shown)
    vt_putf(o, "%s\xe2\x80\xa6 (+%" PRIu64 " more)", shown ? ", " : "", keys - shown);
  if (ret_len)
    *ret_len = (int64_t)keys;
}

/* What a reference points at: "Cart::Item=HASH(0x…) {sku => 7}", "ARRAY(0x…) [1, 2]",
 * "SCALAR(0x…)", "CODE(0x…)"; contents only at the first level. */
static void put_ref(struct pctx *c, struct vtext *o, uint64_t r, int depth)
{
  const struct pl_layout *lo = c->lo;
  struct svh h;
  if (pl_sv_head(c->vm, r, &h)) {
    vt_putf(o, "REF(0x%" PRIx64 ")", r);
    return;
  }
  uint32_t t = h.flags & lo->svt.mask;
  const char *kind = t == lo->heap.t_pvav ? "ARRAY" : t == lo->svt.pvhv ? "HASH"
                   : t == lo->svt.pvcv ? "CODE" : t == lo->svt.pvgv ? "GLOB"
                   : t == lo->heap.t_regexp ? "REGEXP" : t == lo->heap.t_pvio ? "IO"
                   : (h.flags & lo->svf_rok) ? "REF" : "SCALAR";
  if (h.flags & lo->heap.svs_obj) {
    uint64_t stash = 0;
    char cls[128];
    if (!rptr(c->vm, h.any + lo->heap.xmg_stash, &stash) && stash &&
        !pl_hv_name(c->vm, stash, cls, sizeof cls))
      vt_putf(o, "%s=", cls);
    else
      vt_puts(o, "?=");
  }
  vt_putf(o, "%s(0x%" PRIx64 ")", kind, r);
  if (depth > 0)
    return;
  if (t == lo->heap.t_pvav) {
    vt_puts(o, " [");
    put_av_items(c, o, &h, depth, NULL);
    vt_puts(o, "]");
  } else if (t == lo->svt.pvhv) {
    vt_puts(o, " {");
    put_hv_items(c, o, &h, depth, NULL);
    vt_puts(o, "}");
  }
}

/* A scalar: undef, a number, a quoted string, a reference. */
static void put_sv(struct pctx *c, struct vtext *o, uint64_t sv, int depth, int64_t *ret_len)
{
  const struct pl_layout *lo = c->lo;
  struct svh h;
  if (pl_sv_head(c->vm, sv, &h)) {
    vt_putf(o, "SV(0x%" PRIx64 ", unreadable)", sv);
    return;
  }
  uint32_t t = h.flags & lo->svt.mask;
  if (t == lo->heap.t_pvav || t == lo->svt.pvhv) {
    /* (an array or hash as an element: as Perl would show its reference) */
    put_ref(c, o, sv, 1);
    return;
  }
  if (h.flags & lo->svf_rok) {
    put_ref(c, o, h.u, depth);
    return;
  }
  if (h.flags & lo->heap.svf_pok) {
    uint8_t sb[48], *s = depth ? sb : c->str;
    size_t n, len, want = depth ? 40 : c->opts->max_string;
    if (read_pv(c, &h, s, want + 4, &n, &len)) {
      vt_puts(o, "\"?\"");
      return;
    }
    if (h.flags & (lo->loc.svf_iok | lo->loc.svf_nok)) {
      /* a number that is also its string ("3" read as a number): as the number */
      int plain = n == len && n > 0 && n < 40;
      for (size_t i = 0; plain && i < n; i++)
        plain = (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' || s[i] == 'e' ||
                s[i] == 'E' || s[i] == '+';
      if (plain) {
        vt_put(o, (const char *)s, n);
        return;
      }
    }
    vt_string(o, s, n, len, want, VT_PERL, !!(h.flags & lo->loc.svf_utf8));
    if (ret_len)
      *ret_len = (int64_t)len;
    return;
  }
  if (h.flags & lo->loc.svf_iok) {
    int64_t iv = 0;
    if (mem_read(c->vm->t->mem, h.any + lo->loc.xiv, &iv, 8))
      vt_puts(o, "?");
    else if (h.flags & lo->loc.svf_isuv)
      vt_putf(o, "%" PRIu64, (uint64_t)iv);
    else
      vt_putf(o, "%" PRId64, iv);
    return;
  }
  if (h.flags & lo->loc.svf_nok) {
    double nv = 0;
    if (mem_read(c->vm->t->mem, h.any + lo->loc.xnv, &nv, 8))
      vt_puts(o, "?");
    else
      put_nv(o, nv);
    return;
  }
  if (t == lo->svt.pvcv)
    vt_putf(o, "CODE(0x%" PRIx64 ")", sv);
  else if (t == lo->svt.pvgv)
    vt_putf(o, "GLOB(0x%" PRIx64 ")", sv);
  else
    vt_puts(o, "undef");
}

/* -- Frames ----------------------------------------------------------------------- */

/* One variable, a pad entry named with its sigil ("$n", "@a", "%h"), put at i (vs->n: a
 * new one). */
static int set_var(struct pctx *c, struct vt_vars *vs, size_t i, enum vm_var_kind kind,
                   const char *name, uint64_t sv)
{
  const struct pl_layout *lo = c->lo;
  if (i > vs->n || i == VARS_MAX)
    return 0;
  struct vm_var v = { kind, name, "", "", sv, -1 };
  struct vtext *o = &c->text;
  struct svh h;
  o->n = 0;
  o->b[0] = 0;
  if (!sv || pl_sv_head(c->vm, sv, &h)) {
    vt_puts(o, sv ? "(unreadable)" : "undef");
  } else if (name[0] == '@' && (h.flags & lo->svt.mask) == lo->heap.t_pvav) {
    v.type = "ARRAY";
    vt_puts(o, "(");
    put_av_items(c, o, &h, 0, &v.len);
    vt_puts(o, ")");
  } else if (name[0] == '%' && (h.flags & lo->svt.mask) == lo->svt.pvhv) {
    v.type = "HASH";
    vt_puts(o, "(");
    put_hv_items(c, o, &h, 0, &v.len);
    vt_puts(o, ")");
  } else {
    v.type = h.flags & lo->svf_rok ? "REF" : "SCALAR";
    put_sv(c, o, sv, 0, &v.len);
  }
  vt_mark_cut(o);   /* (a value longer than its room ends in "…") */
  v.value = o->b;
  return vt_vars_put(vs, i, &v);
}

static int add_var(struct pctx *c, struct vt_vars *vs, enum vm_var_kind kind, const char *name,
                   uint64_t sv)
{
  return set_var(c, vs, vs->n, kind, name, sv);
}

static int note(struct vt_vars *vs, const char *what)
{
  struct vm_var v = { VAR_NOTE, "", "", what, 0, -1 };
  return vt_vars_put(vs, vs->n, &v);
}

/* PL_main_cv of the interpreter (a global without MULTIPLICITY). */
static uint64_t main_cv(struct pl_vm *vm, uint64_t interp)
{
  uint64_t at = 0, cv = 0;
  if (vm->lo->multiplicity) {
    at = interp ? interp + vm->lo->interp.main_cv : 0;
  } else {
    struct module *m = vm->mod;
    if (m && m->elf && !elf_file_lookup(m->elf, "PL_main_cv", &at, NULL))
      at += m->bias;
    else
      at = 0;
  }
  return at && !rptr(vm, at, &cv) ? cv : 0;
}

struct pad_name {
  char name[64];
  uint32_t low, high;
  int outer, our;
};

static int read_pad_name(struct pctx *c, uint64_t pn, struct pad_name *p)
{
  const struct pl_layout *lo = c->lo;
  uint8_t b[64];
  size_t want = (size_t)lo->loc.padn_flags + 1;
  if (!pn || (pn & 7) || want > sizeof b || mem_read(c->vm->t->mem, pn, b, want))
    return -1;
  uint64_t pv = rd(b, lo->heap.padn_pv, 8), ours = rd(b, lo->loc.padn_ourstash, 8);
  uint8_t len = b[lo->loc.padn_len], flags = b[lo->loc.padn_flags];
  if (!pv || !len || len >= sizeof p->name || mem_read(c->vm->t->mem, pv, p->name, len))
    return -1;
  p->name[len] = 0;
  p->low = (uint32_t)rd(b, lo->loc.padn_low, 4);
  p->high = (uint32_t)rd(b, lo->loc.padn_high, 4);
  p->outer = !!(flags & lo->loc.padnf_outer);
  p->our = ours != 0;
  return 0;
}

/* The variables of CV cv at depth that are in scope at sequence number seq (and, of an
 * anonymous sub, those it captured); with only_new, leave out those in scope at outer_seq
 * already (an eval block's own). */
static int pad_vars(struct pctx *c, struct vt_vars *vs, uint64_t cv, uint32_t depth, uint32_t seq,
                    int args, uint32_t outer_seq, int only_new)
{
  const struct pl_layout *lo = c->lo;
  struct pl_vm *vm = c->vm;
  struct svh h;
  uint64_t padlist = 0, arr = 0, names = 0, pad = 0, nl_arr = 0;
  int64_t max = 0, nfill = -1;
  if (pl_sv_head(vm, cv, &h) || (h.flags & lo->svt.mask) != lo->svt.pvcv ||
      rptr(vm, h.any + lo->xcv.padlist, &padlist) || !padlist ||
      mem_read(vm->t->mem, padlist + lo->heap.padl_max, &max, 8) ||
      rptr(vm, padlist + lo->heap.padl_arr, &arr) || !arr || depth < 1 || depth > max ||
      rptr(vm, arr, &names) || rptr(vm, arr + 8ull * depth, &pad) || !names || !pad)
    return -VMS_E_BADDATA;
  /* what a named sub uses from outside it is the file's (or package's) own, shown with
   * the frame that declares it; what a closure captured is part of it */
  uint32_t cvflags = 0;
  int anon = !r32(vm, h.any + lo->xcv.flags, &cvflags) && (cvflags & lo->cvf.anon);
  if (mem_read(vm->t->mem, names + lo->heap.padnl_fill, &nfill, 8) ||
      rptr(vm, names + lo->heap.padnl_alloc, &nl_arr) || nfill < 0 || nfill > PAD_MAX)
    return -VMS_E_BADDATA;
  struct svh ph;
  int64_t pfill = -1;
  if (pl_sv_head(vm, pad, &ph) || (ph.flags & lo->svt.mask) != lo->heap.t_pvav ||
      mem_read(vm->t->mem, ph.any + lo->heap.xav_fill, &pfill, 8) || pfill > PAD_MAX)
    return -VMS_E_BADDATA;
  /* @_: the pad's first entry (a sub's) */
  if (args && pfill >= 0) {
    uint64_t av = 0;
    if (!rptr(vm, ph.u, &av) && av)
      add_var(c, vs, VAR_ARGUMENT, "@_", av);
  }
  /* the names in scope, in the pad's order; of two of one name the later wins (a my that
   * hides an earlier one), in the earlier's place */
  size_t first = vs->n;
  for (int64_t k = 1; k <= nfill && k <= pfill; k++) {
    uint64_t pn = 0, sv = 0;
    struct pad_name p;
    if (rptr(vm, nl_arr + 8ull * (uint64_t)k, &pn) || !pn || read_pad_name(c, pn, &p))
      continue;
    if (p.our || (p.name[0] != '$' && p.name[0] != '@' && p.name[0] != '%') || !p.name[1])
      continue;
    if (p.outer && !anon)
      continue;
    int in = p.outer || (seq > p.low && seq <= p.high && p.high != lo->loc.seq_intro);
    if (!in)
      continue;
    if (only_new && (p.outer || (outer_seq > p.low && outer_seq <= p.high)))
      continue;
    if (rptr(vm, ph.u + 8ull * (uint64_t)k, &sv))
      continue;
    size_t at = vs->n;
    for (size_t j = first; j < vs->n; j++)
      if (vs->v[j].kind == VAR_LOCAL && !strcmp(vs->v[j].name, p.name))
        at = j;
    set_var(c, vs, at, VAR_LOCAL, p.name, sv);
  }
  return 0;
}

int pl_locals(void *vmv, struct target *t, struct vm_frames *vf, size_t i,
              const struct vm_locals_opts *opts)
{
  struct pl_vm *vm = vmv;
  const struct pl_layout *lo = vm->lo;
  struct vm_frame *fr = &vf->v[i];
  (void)t;
  if (fr->kind != FK_FUNCTION || !fr->ctx[3])
    return 0;
  size_t room = vt_value_room(opts->max_string);
  struct pctx c = { vm, lo, opts, { malloc(room), 0, room }, malloc(opts->max_string + 8) };
  struct vt_vars vars = { 0 }, *vs = &vars;
  if (!c.text.b || !c.str) {
    free(c.text.b);
    free(c.str);
    return -ENOMEM;
  }
  uint64_t cv = fr->ctx[0], cop = fr->ctx[2], kind = fr->ctx[3], interp = fr->ctx[4];
  uint32_t depth = (uint32_t)fr->ctx[1], seq = 0;
  int r = 0;
  if (!cop || r32(vm, cop + lo->loc.cop_seq, &seq)) {
    note(vs, "the statement it is at is not known: no variables");
  } else if (kind == PL_FRAME_SUB) {
    r = pad_vars(&c, vs, cv, depth, seq, 1, 0, 0);
  } else if (kind == PL_FRAME_MAIN) {
    uint64_t m = main_cv(vm, interp);
    r = m ? pad_vars(&c, vs, m, 1, seq, 0, 0, 0) : -VMS_E_BADDATA;
  } else {
    /* an eval: its own variables, from the pad of the sub (or main program) it runs in,
     * those in scope here that were not where it was entered */
    size_t k = i + 1;
    while (k < vf->n && (vf->v[k].kind != FK_FUNCTION || vf->v[k].ctx[3] == PL_FRAME_EVAL ||
                         !vf->v[k].ctx[3]))
      k++;
    uint32_t oseq = 0;
    if (k == vf->n || !vf->v[k].ctx[2] || r32(vm, vf->v[k].ctx[2] + lo->loc.cop_seq, &oseq)) {
      note(vs, "the frame it runs in is not known: no variables");
    } else if (vf->v[k].ctx[3] == PL_FRAME_MAIN) {
      uint64_t m = main_cv(vm, vf->v[k].ctx[4]);
      r = m ? pad_vars(&c, vs, m, 1, seq, 0, oseq, 1) : -VMS_E_BADDATA;
    } else {
      r = pad_vars(&c, vs, vf->v[k].ctx[0], (uint32_t)vf->v[k].ctx[1], seq, 0, oseq, 1);
    }
  }
  if (r && !vs->n)
    note(vs, "its pad could not be read: no variables");
  if (vs->n && vm_frames_set_vars(vf, i, vs->v, vs->n))
    r = -ENOMEM;
  vt_vars_free(vs);
  free(c.text.b);
  free(c.str);
  return r;
}
