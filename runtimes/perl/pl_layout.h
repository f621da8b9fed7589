/* Perl 5 per-build layouts: offsets, sizes and constants the walker reads through.
 *
 * One table per (major version, flavour). Maintenance releases of a major version keep the
 * binary interface, so "5.36" covers 5.36.0 ... 5.36.x. The flavour is MULTIPLICITY
 * (threaded builds: every interpreter variable lives in struct interpreter) or not (the
 * variables are plain globals such as PL_curcop). A layout is only used when the target's
 * version, flavour and sizeof(struct interpreter) (PL_interp_size) all match.
 *
 * All offsets are in bytes from the start of the object. Fields a build lacks are 0.
 */
#ifndef VMSTACK_PL_LAYOUT_H
#define VMSTACK_PL_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

struct pl_layout {
  /* Identification. */
  const char *name;        /* "perl-5.36-thread" */
  const char *source;      /* where the numbers come from: "Perl/perl5 v5.36.0, Configure ..." */
  uint8_t version;         /* 36 for 5.36.x */
  uint8_t multiplicity;    /* 1: MULTIPLICITY (threaded); 0: interpreter variables are globals */
  uint16_t interp_size;    /* sizeof(struct interpreter), as PL_interp_size says */

  /* struct interpreter (MULTIPLICITY only): the I-variables the walk needs. */
  struct {
    uint16_t curcop, curstackinfo, curstash, defstash, compiling, main_cv, sv_count,
	     sv_root, sv_arenaroot, strtab;
  } interp;
  /* struct stackinfo (PERL_SI). */
  struct {
    uint16_t stack, cxstack, prev, next, cxix, cxmax, type, size;
  } si;
  /* struct context (PERL_CONTEXT): the block part and the sub/format/eval arms. */
  struct {
    uint16_t type, u16, oldcop, sub_cv, sub_retop, format_cv, eval_old_namesv,
	     eval_cur_text, eval_cv, eval_retop, size;
  } cx;
  /* struct cop. file: char * (MULTIPLICITY: cop_file) or GV * (cop_filegv, name "_<file"). */
  struct {
    uint16_t line, file, size;
  } cop;
  /* struct op: the 16-bit word that holds the op_type bitfield (type = word & 0x1ff). */
  struct {
    uint16_t type_word;
  } op;
  /* struct sv head. */
  struct {
    uint16_t any, refcnt, flags, u, size;
  } sv;
  /* XPVCV, the body of a CV. gv is xcv_gv_u (a GV *, or a HEK * when CVf_NAMED). */
  struct {
    uint16_t stash, start, root, gv, file, padlist, outside, flags, depth, size;
  } xcv;
  /* XPVGV, the body of a GV: its name (HEK *) and stash. */
  struct {
    uint16_t namehek, stash;
  } xgv;
  /* struct gp (a GV's GP is at sv.u of the GV); hv is a stash for "Name::" entries. */
  struct {
    uint16_t sv, cv, egv, file_hek, hv;
  } gp;
  /* struct he, a hash entry (a stash's entries: name -> GV). */
  struct {
    uint16_t next, hek, val;
  } he;
  /* XPVHV and its aux (name). aux_in_body: 1 when xpvhv_with_aux holds the aux at
   * xhv.aux (5.35+); 0 when it follows the bucket array (HvARRAY + (HvMAX+1) * 8). */
  struct {
    uint16_t keys, max, aux_in_body, aux;
  } xhv;
  struct {
    uint16_t name_u, name_count;
  } hvaux;
  /* struct hek; the key's bytes start at key. */
  struct {
    uint16_t hash, len, key;
  } hek;

  /* Constants. */
  struct {
    uint8_t pvgv, pvhv, pvcv, pvfm, mask;    /* SVt_* and SVTYPEMASK */
  } svt;
  uint32_t svpgv_gp;                         /* SVpgv_GP */
  uint32_t svf_ook;                          /* SVf_OOK */
  uint32_t svf_rok;                          /* SVf_ROK */
  struct {
    uint32_t isxsub, anon, named, lexical;   /* CVf_* */
  } cvf;
  struct {
    uint8_t mask, null, sub, format, eval, sub_re_fake, evalblock;  /* CXTYPEMASK, CXt_*, CXp_* */
  } cxt;
  struct {
    int8_t main, sort, signal, overload, destroy, warnhook, diehook, require, multicall;
  } si_type;                                 /* PERLSI_* */
  struct {
    uint16_t nextstate, dbstate, entereval;  /* OP_* numbers (they change between versions) */
  } opn;
  /* Heap snapshots. body[t]: the bytes of an SVt t body as sv.c allocates it (0: bodyless,
   * the value lives in the head); body_ofs[t]: how far before that allocation sv_any points
   * (the PV family's bodies leave out the fields the head holds). hv_aux_body: a hash's body
   * when it has its aux struct (5.36+: in the body), else hv_aux is what follows its bucket
   * array. Types: t_* are the SVt_* numbers (t_pvobj 0 before 5.38). */
  struct {
    uint16_t body[20], body_ofs[20];
    uint16_t hv_aux_body, hv_aux;
    uint16_t xpv_cur, xpv_len, xmg_stash, xmg_magic, xav_fill, xav_max, xav_alloc;
    uint16_t mg_next, mg_type, mg_flags, mg_len, mg_obj, mg_ptr, mg_size;
    uint16_t padl_max, padl_arr, padnl_fill, padnl_alloc, padn_pv;
    uint16_t he_size, hek_size, shared_he_key, gp_size, gp_av, gp_io, gp_form;
    uint8_t t_iv, t_nv, t_pv, t_invlist, t_pviv, t_pvnv, t_pvmg, t_regexp, t_pvlv, t_pvav,
            t_pvio, t_pvobj, t_last;
    uint32_t svf_pok, svphv_sharekeys, svs_obj, svp_weakref, svpav_real, svf_iscow,
             svf_readonly, svf_protect;
  } heap;
  /* Locals (dump -l). A sub context's blk_sub.olddepth (its CV's depth before the call);
   * a COP's cop_seq; a PADNAME's scope (xpadn_low < seq <= xpadn_high), our-stash, length
   * and flags (outer: captured from an enclosing sub; its scope fields mean something
   * else); where an IV and an NV sit in a body (read through sv_any, as sv_any points
   * for a bodyless one too); the flags that say which value a scalar holds; where an
   * iterated hash keeps the number that orders its keys. */
  struct {
    uint16_t cx_olddepth, cop_seq, padn_low, padn_high, padn_ourstash, padn_len,
             padn_flags, xiv, xnv, padnl_max, hvaux_rand;
    uint8_t padnf_outer, has_rand;   /* has_rand: PERL_HASH_RANDOMIZE_KEYS (keys() visits
                                        bucket riter ^ xhv_rand of an iterated hash) */
    uint32_t svf_iok, svf_nok, svf_utf8, svf_isuv, seq_intro;
  } loc;
};

extern const struct pl_layout *const pl_layouts[];   /* NULL-terminated */

#endif
