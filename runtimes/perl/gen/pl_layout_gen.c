/* Print one struct pl_layout initializer from a Perl build's own headers (offsetof/sizeof and
 * the real macros), for runtimes/perl/pl_layouts.c.
 *
 * Build against a configured Perl tree (config.h present) or an installed CORE directory,
 * with that build's ccflags, e.g.
 *   cc -O2 -I TREE $(ccflags of TREE/config.sh) pl_layout_gen.c
 *   cc -O2 $(perl -MExtUtils::Embed -e ccopts) pl_layout_gen.c
 * Optimise (-O1 or more): from 5.38 perlstatic.h defines an unused static function that calls
 * into libperl, and only the optimiser drops it (nothing here links libperl).
 * Run: ./a.out NAME SOURCE   (gen/generate.sh does both).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "EXTERN.h"
#include "perl.h"

#if !defined(__x86_64__)
#error "pl_layout_gen: x86_64 only"
#endif
#if PERL_REVISION != 5
#error "pl_layout_gen: Perl 5 only"
#endif

/* -- Emitter -------------------------------------------------------------- */

static int col;
static int bad;

static void open_group(const char *name)
{
  col = printf("  .%s = {", name);
}

static void put(const char *text)
{
  if (col + (int)strlen(text) > 98) { printf("\n   "); col = 3; }
  col += printf("%s", text);
}

/* An offset or size: hex, and it must fit the uint16_t it goes into. */
static void ofs(const char *name, long long v)
{
  char buf[64];
  if (v < 0 || v > 0xffff) {
    fprintf(stderr, "pl_layout_gen: %s = %lld does not fit 16 bits\n", name, v);
    bad = 1;
  }
  snprintf(buf, sizeof(buf), " .%s = 0x%llx,", name, v);
  put(buf);
}

/* A number (type codes, op numbers): decimal. */
static void num(const char *name, long long v)
{
  char buf[64];
  snprintf(buf, sizeof(buf), " .%s = %lld,", name, v);
  put(buf);
}

/* A flag bit: hex. */
static void flag(const char *name, unsigned long long v)
{
  char buf[64];
  snprintf(buf, sizeof(buf), " .%s = 0x%llx,", name, v);
  put(buf);
}

static void close_group(void)
{
  printf(" },\n");
}

/* C string literal. */
static void str(const char *name, const char *s)
{
  printf("  .%s = \"", name);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    putchar(*s);
  }
  printf("\",\n");
}

#define OFS(T, f)	((long long)offsetof(T, f))

/* -- Derived values ------------------------------------------------------- */

/* op_type is a 9-bit bitfield: find the 16-bit little-endian word that holds it in its low bits,
 * by setting it in a zeroed op and looking at the bytes. */
static long long op_type_word(void)
{
  static const unsigned probe[] = { 0x1ff, 0x155, 0xaa, 0x100, 1 };
  struct op o;
  unsigned char *p = (unsigned char *)&o;
  size_t off, i, first = sizeof(o);

  memset(&o, 0, sizeof(o));
  o.op_type = 0x1ff;
  for (i = 0; i < sizeof(o); i++)
    if (p[i]) { first = i; break; }
  if (first == sizeof(o)) return -1;
  off = first;
  for (i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
    uint16_t w;
    memset(&o, 0, sizeof(o));
    o.op_type = probe[i];
    memcpy(&w, p + off, 2);
    if ((w & 0x1ff) != probe[i] || (w & ~0x1ff)) return -1;
  }
  return (long long)off;
}

/* -- Layout --------------------------------------------------------------- */

#if PERL_VERSION >= 35
/* 5.35.x+: the hash aux struct lives in the body (struct xpvhv_with_aux) when SvOOK. */
#  define AUX_IN_BODY	1
#  define AUX_OFS	OFS(struct xpvhv_with_aux, xhv_aux)
#else
/* Before: it follows the bucket array, HvARRAY + (HvMAX + 1) * sizeof(HE *). */
#  define AUX_IN_BODY	0
#  define AUX_OFS	0LL
#endif

#ifdef CXp_EVALBLOCK
#  define EVALBLOCK	CXp_EVALBLOCK
#else
#  define EVALBLOCK	CXp_TRYBLOCK	/* its name before 5.33.7 */
#endif

#ifdef SVphv_HasAUX
_Static_assert(SVphv_HasAUX == SVf_OOK, "the hash aux flag is no longer SVf_OOK");
#endif

/* The walker reads a frame's fields through the sub arm for sub and format contexts, and the
 * shared head (retop) for all three. */
_Static_assert(offsetof(PERL_CONTEXT, blk_sub.cv) == offsetof(PERL_CONTEXT, blk_format.cv),
	       "sub and format cv differ");
_Static_assert(offsetof(PERL_CONTEXT, blk_sub.retop) == offsetof(PERL_CONTEXT, blk_eval.retop),
	       "sub and eval retop differ");
_Static_assert(offsetof(PERL_CONTEXT, cx_type) == offsetof(PERL_CONTEXT, cx_u.cx_blk.blku_type),
	       "cx_type is not blku_type");
_Static_assert(sizeof(((COP *)0)->cop_line) == 4, "cop_line is not 32 bits");
_Static_assert(sizeof(((struct xpvhv_aux *)0)->xhv_name_count) == 4, "name_count not I32");

/* SV bodies as sv.c's bodies_by_type allocates them, for x86_64 (NVs fit in the head). */
_Static_assert(NVSIZE <= IVSIZE, "NV bodies are not bodyless here");

static void body(int t, long long size, long long offset)
{
  static long long sizes[20], offsets[20];
  static int last = -1;
  if (t < 0) {
    /* flush: body = { ... }, body_ofs = { ... } */
    char buf[64];
    put(" .body = {");
    for (int i = 0; i <= last; i++) {
      snprintf(buf, sizeof(buf), " 0x%llx,", sizes[i]);
      put(buf);
    }
    put(" },");
    put(" .body_ofs = {");
    for (int i = 0; i <= last; i++) {
      snprintf(buf, sizeof(buf), " 0x%llx,", offsets[i]);
      put(buf);
    }
    put(" },");
    return;
  }
  if (t >= 20 || size > 0xffff) {
    fprintf(stderr, "pl_layout_gen: SV type %d does not fit the table\n", t);
    bad = 1;
    return;
  }
  sizes[t] = size;
  offsets[t] = offset;
  if (t > last)
    last = t;
}

static void heap_group(void)
{
  long long cur = OFS(XPV, xpv_cur);
  open_group("heap");
  body(SVt_NULL, 0, 0); body(SVt_IV, 0, 0); body(SVt_NV, 0, 0);
  body(SVt_PV, sizeof(XPV) - cur, cur);
  body(SVt_INVLIST, sizeof(XINVLIST) - cur, cur);
  body(SVt_PVIV, sizeof(XPVIV) - cur, cur);
  body(SVt_PVNV, sizeof(XPVNV) - cur, cur);
  body(SVt_PVMG, sizeof(XPVMG), 0); body(SVt_REGEXP, sizeof(regexp), 0);
  body(SVt_PVGV, sizeof(XPVGV), 0); body(SVt_PVLV, sizeof(XPVLV), 0);
  body(SVt_PVAV, sizeof(XPVAV), 0); body(SVt_PVHV, sizeof(XPVHV), 0);
  body(SVt_PVCV, sizeof(XPVCV), 0); body(SVt_PVFM, sizeof(XPVFM), 0);
  body(SVt_PVIO, sizeof(XPVIO), 0);
#if PERL_VERSION >= 38
  body(SVt_PVOBJ, sizeof(XPVOBJ), 0);
#endif
  body(-1, 0, 0);
#if PERL_VERSION >= 35
  ofs("hv_aux_body", sizeof(struct xpvhv_with_aux));
#else
  ofs("hv_aux_body", 0);
#endif
  ofs("hv_aux", sizeof(struct xpvhv_aux));
  ofs("xpv_cur", cur); ofs("xpv_len", OFS(XPV, xpv_len_u));
  ofs("xmg_stash", OFS(XPVMG, xmg_stash)); ofs("xmg_magic", OFS(XPVMG, xmg_u));
  ofs("xav_fill", OFS(XPVAV, xav_fill)); ofs("xav_max", OFS(XPVAV, xav_max));
  ofs("xav_alloc", OFS(XPVAV, xav_alloc));
  ofs("mg_next", OFS(MAGIC, mg_moremagic)); ofs("mg_type", OFS(MAGIC, mg_type));
  ofs("mg_flags", OFS(MAGIC, mg_flags)); ofs("mg_len", OFS(MAGIC, mg_len));
  ofs("mg_obj", OFS(MAGIC, mg_obj)); ofs("mg_ptr", OFS(MAGIC, mg_ptr));
  ofs("mg_size", sizeof(MAGIC));
  ofs("padl_max", OFS(PADLIST, xpadl_max)); ofs("padl_arr", OFS(PADLIST, xpadl_arr));
  ofs("padnl_fill", OFS(PADNAMELIST, xpadnl_fill));
  ofs("padnl_alloc", OFS(PADNAMELIST, xpadnl_alloc));
  ofs("padn_pv", OFS(PADNAME, xpadn_pv));
  ofs("he_size", sizeof(HE)); ofs("hek_size", OFS(HEK, hek_key));
  ofs("shared_he_key", OFS(struct shared_he, shared_he_hek.hek_key));
  ofs("gp_size", sizeof(GP)); ofs("gp_av", OFS(GP, gp_av)); ofs("gp_io", OFS(GP, gp_io));
  ofs("gp_form", OFS(GP, gp_form));
  num("t_iv", SVt_IV); num("t_nv", SVt_NV); num("t_pv", SVt_PV); num("t_invlist", SVt_INVLIST);
  num("t_pviv", SVt_PVIV); num("t_pvnv", SVt_PVNV); num("t_pvmg", SVt_PVMG);
  num("t_regexp", SVt_REGEXP); num("t_pvlv", SVt_PVLV); num("t_pvav", SVt_PVAV);
  num("t_pvio", SVt_PVIO);
#if PERL_VERSION >= 38
  num("t_pvobj", SVt_PVOBJ);
#else
  num("t_pvobj", 0);
#endif
  num("t_last", SVt_LAST);
  flag("svf_pok", SVf_POK); flag("svphv_sharekeys", SVphv_SHAREKEYS);
  flag("svs_obj", SVs_OBJECT);
  flag("svp_weakref", SVprv_WEAKREF); flag("svpav_real", SVpav_REAL);
  flag("svf_iscow", SVf_IsCOW);
  flag("svf_readonly", SVf_READONLY); flag("svf_protect", SVf_PROTECT);
  close_group();
}

/* The bit PadnameOUTER tests (PADNAMEt_OUTER before 5.38, PADNAMEf_OUTER since): asked of
 * the macro itself, one bit at a time. */
static int padname_outer_bit(void)
{
  for (int b = 0; b < 8; b++) {
    PADNAME pn;
    memset(&pn, 0, sizeof pn);
    pn.xpadn_flags = (U8)(1u << b);
    if (PadnameOUTER(&pn))
      return 1 << b;
  }
  return -1;
}

static void locals_group(void)
{
  open_group("loc");
  ofs("cx_olddepth", OFS(PERL_CONTEXT, blk_sub.olddepth));
  ofs("cop_seq", OFS(COP, cop_seq));
  ofs("padn_low", OFS(PADNAME, xpadn_low)); ofs("padn_high", OFS(PADNAME, xpadn_high));
  ofs("padn_ourstash", OFS(PADNAME, xpadn_ourstash));
  ofs("padn_len", OFS(PADNAME, xpadn_len)); ofs("padn_flags", OFS(PADNAME, xpadn_flags));
  ofs("xiv", OFS(XPVIV, xiv_u.xivu_iv)); ofs("xnv", OFS(XPVNV, xnv_u.xnv_nv));
  ofs("padnl_max", OFS(PADNAMELIST, xpadnl_max));
#ifdef PERL_HASH_RANDOMIZE_KEYS
  ofs("hvaux_rand", OFS(struct xpvhv_aux, xhv_rand)); num("has_rand", 1);
#else
  ofs("hvaux_rand", 0); num("has_rand", 0);
#endif
  int outer = padname_outer_bit();
  if (outer < 0) {
    fprintf(stderr, "pl_layout_gen: no flag bit makes PadnameOUTER true\n");
    bad = 1;
  }
  num("padnf_outer", outer);
  flag("svf_iok", SVf_IOK); flag("svf_nok", SVf_NOK); flag("svf_utf8", SVf_UTF8);
  flag("svf_isuv", SVf_IVisUV);
  flag("seq_intro", PERL_PADSEQ_INTRO);
  close_group();
}

int main(int argc, char **argv)
{
  long long tw = op_type_word();

  if (argc != 3) {
    fprintf(stderr, "usage: %s NAME SOURCE\n", argv[0]);
    return 64;
  }
  if (tw < 0) {
    fprintf(stderr, "pl_layout_gen: op_type is not the low 9 bits of a 16-bit word\n");
    return 1;
  }

  printf("{\n");
  str("name", argv[1]);
  str("source", argv[2]);
  col = printf(" ");
  num("version", PERL_VERSION);
#ifdef MULTIPLICITY
  num("multiplicity", 1);
  /* perl.h: EXTCONST U16 PL_interp_size INIT(sizeof(struct interpreter)). */
  num("interp_size", (long long)sizeof(struct interpreter));
#else
  num("multiplicity", 0);
  /* perl.h declares no PL_interp_size without MULTIPLICITY: the binary exports none. */
  num("interp_size", 0);
#endif
  printf("\n");

  open_group("interp");
#ifdef MULTIPLICITY
#  define IOFS(f)	ofs(#f, OFS(struct interpreter, I##f))
#else
#  define IOFS(f)	ofs(#f, 0)	/* plain globals PL_<f> */
#endif
  IOFS(curcop); IOFS(curstackinfo); IOFS(curstash); IOFS(defstash); IOFS(compiling);
  IOFS(main_cv); IOFS(sv_count); IOFS(sv_root); IOFS(sv_arenaroot); IOFS(strtab);
  close_group();

  open_group("si");
  ofs("stack", OFS(PERL_SI, si_stack)); ofs("cxstack", OFS(PERL_SI, si_cxstack));
  ofs("prev", OFS(PERL_SI, si_prev)); ofs("next", OFS(PERL_SI, si_next));
  ofs("cxix", OFS(PERL_SI, si_cxix)); ofs("cxmax", OFS(PERL_SI, si_cxmax));
  ofs("type", OFS(PERL_SI, si_type)); ofs("size", sizeof(PERL_SI));
  close_group();

  open_group("cx");
  ofs("type", OFS(PERL_CONTEXT, cx_type)); ofs("u16", OFS(PERL_CONTEXT, blk_u16));
  ofs("oldcop", OFS(PERL_CONTEXT, blk_oldcop));
  ofs("sub_cv", OFS(PERL_CONTEXT, blk_sub.cv)); ofs("sub_retop", OFS(PERL_CONTEXT, blk_sub.retop));
  ofs("format_cv", OFS(PERL_CONTEXT, blk_format.cv));
  ofs("eval_old_namesv", OFS(PERL_CONTEXT, blk_eval.old_namesv));
  ofs("eval_cur_text", OFS(PERL_CONTEXT, blk_eval.cur_text));
  ofs("eval_cv", OFS(PERL_CONTEXT, blk_eval.cv));
  ofs("eval_retop", OFS(PERL_CONTEXT, blk_eval.retop));
  ofs("size", sizeof(PERL_CONTEXT));
  close_group();

  open_group("cop");
  ofs("line", OFS(COP, cop_line));
#ifdef USE_ITHREADS
  ofs("file", OFS(COP, cop_file));	/* char * (5.38+: a refcounted RCPV char *) */
#else
  ofs("file", OFS(COP, cop_filegv));	/* GV * named "_<file" */
#endif
  ofs("size", sizeof(COP));
  close_group();

  open_group("op");
  ofs("type_word", tw);
  close_group();

  open_group("sv");
  ofs("any", OFS(SV, sv_any)); ofs("refcnt", OFS(SV, sv_refcnt)); ofs("flags", OFS(SV, sv_flags));
  ofs("u", OFS(SV, sv_u)); ofs("size", sizeof(SV));
  close_group();

  open_group("xcv");
  ofs("stash", OFS(XPVCV, xcv_stash)); ofs("start", OFS(XPVCV, xcv_start_u));
  ofs("root", OFS(XPVCV, xcv_root_u)); ofs("gv", OFS(XPVCV, xcv_gv_u));
  ofs("file", OFS(XPVCV, xcv_file)); ofs("padlist", OFS(XPVCV, xcv_padlist_u));
  ofs("outside", OFS(XPVCV, xcv_outside)); ofs("flags", OFS(XPVCV, xcv_flags));
  ofs("depth", OFS(XPVCV, xcv_depth)); ofs("size", sizeof(XPVCV));
  close_group();

  open_group("xgv");
  ofs("namehek", OFS(XPVGV, xiv_u.xivu_namehek)); ofs("stash", OFS(XPVGV, xnv_u.xgv_stash));
  close_group();

  open_group("gp");
  ofs("sv", OFS(GP, gp_sv)); ofs("cv", OFS(GP, gp_cv)); ofs("egv", OFS(GP, gp_egv));
  ofs("file_hek", OFS(GP, gp_file_hek)); ofs("hv", OFS(GP, gp_hv));
  close_group();

  open_group("he");
  ofs("next", OFS(HE, hent_next)); ofs("hek", OFS(HE, hent_hek)); ofs("val", OFS(HE, he_valu));
  close_group();

  open_group("xhv");
  ofs("keys", OFS(XPVHV, xhv_keys)); ofs("max", OFS(XPVHV, xhv_max));
  num("aux_in_body", AUX_IN_BODY); ofs("aux", AUX_OFS);
  close_group();

  open_group("hvaux");
  ofs("name_u", OFS(struct xpvhv_aux, xhv_name_u));
  ofs("name_count", OFS(struct xpvhv_aux, xhv_name_count));
  close_group();

  open_group("hek");
  ofs("hash", OFS(HEK, hek_hash)); ofs("len", OFS(HEK, hek_len)); ofs("key", OFS(HEK, hek_key));
  close_group();

  open_group("svt");
  num("pvgv", SVt_PVGV); num("pvhv", SVt_PVHV); num("pvcv", SVt_PVCV); num("pvfm", SVt_PVFM);
  flag("mask", SVTYPEMASK);
  close_group();
  col = printf(" ");
  flag("svpgv_gp", SVpgv_GP); flag("svf_ook", SVf_OOK); flag("svf_rok", SVf_ROK);
  printf("\n");

  open_group("cvf");
  flag("isxsub", CVf_ISXSUB); flag("anon", CVf_ANON); flag("named", CVf_NAMED);
  flag("lexical", CVf_LEXICAL);
  close_group();

  open_group("cxt");
  flag("mask", CXTYPEMASK); num("null", CXt_NULL); num("sub", CXt_SUB);
  num("format", CXt_FORMAT); num("eval", CXt_EVAL); flag("sub_re_fake", CXp_SUB_RE_FAKE);
  flag("evalblock", EVALBLOCK);
  close_group();

  open_group("si_type");
  num("main", PERLSI_MAIN); num("sort", PERLSI_SORT); num("signal", PERLSI_SIGNAL);
  num("overload", PERLSI_OVERLOAD); num("destroy", PERLSI_DESTROY);
  num("warnhook", PERLSI_WARNHOOK); num("diehook", PERLSI_DIEHOOK);
  num("require", PERLSI_REQUIRE); num("multicall", PERLSI_MULTICALL);
  close_group();

  open_group("opn");
  num("nextstate", OP_NEXTSTATE); num("dbstate", OP_DBSTATE); num("entereval", OP_ENTEREVAL);
  close_group();

  heap_group();
  locals_group();

  printf("},\n");
  return bad;
}
