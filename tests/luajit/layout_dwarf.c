/* Check lj_layouts[] against the DWARF (and lj_bc_mode[]) of the -g LuaJIT builds of prepare.sh.
**
** Usage: layout_dwarf [--prepare SCRIPT] DIR
**   --prepare: run "sh SCRIPT DIR" first (fixtures/luajit/prepare.sh; cached in DIR).
** Every DIR/NAME/BUILD_INFO build is checked against the lj_layouts[] entry named NAME.
** Exit 0 all match; 1 a mismatch, a build without entry, or a broken build; 77 skipped
** (prepare.sh could not fetch the sources).
*/

#include <dirent.h>
#include <dwarf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <elfutils/libdw.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lj_layout.h"

extern char **environ;

/* -- DWARF index ---------------------------------------------------------- */

#define MAXTYPES	32
#define MAXENUMS	128

struct dw {
  Dwarf *dbg;
  int ntypes, nenums;
  struct { const char *name; Dwarf_Die die; bool found; } type[MAXTYPES];
  struct { const char *name; long long val; bool found; } en[MAXENUMS];
};

static void want_type(struct dw *dw, const char *name)
{
  if (dw->ntypes < MAXTYPES) dw->type[dw->ntypes++].name = name;
}

static void want_enum(struct dw *dw, const char *name)
{
  if (dw->nenums < MAXENUMS) dw->en[dw->nenums++].name = name;
}

static bool is_decl(Dwarf_Die *die)
{
  Dwarf_Attribute a;
  bool flag = false;
  return dwarf_attr(die, DW_AT_declaration, &a) && dwarf_formflag(&a, &flag) == 0 && flag;
}

/* Remember the first full definition of each wanted struct/union (also via a typedef name). */
static void index_type(struct dw *dw, Dwarf_Die *die)
{
  const char *name = dwarf_diename(die);
  int i, tag = dwarf_tag(die);
  Dwarf_Die t;
  if (!name) return;
  for (i = 0; i < dw->ntypes; i++) {
    if (dw->type[i].found || strcmp(dw->type[i].name, name)) continue;
    if (tag == DW_TAG_typedef) {
      if (dwarf_peel_type(die, &t) != 0) return;
    } else {
      t = *die;
    }
    if ((dwarf_tag(&t) == DW_TAG_structure_type || dwarf_tag(&t) == DW_TAG_union_type) &&
	!is_decl(&t) && dwarf_haschildren(&t)) {
      dw->type[i].die = t;
      dw->type[i].found = true;
    }
  }
}

static void index_enum(struct dw *dw, Dwarf_Die *etype)
{
  Dwarf_Die c;
  if (dwarf_child(etype, &c) != 0) return;
  do {
    const char *name = dwarf_diename(&c);
    Dwarf_Attribute a;
    Dwarf_Sword sv;
    int i;
    if (dwarf_tag(&c) != DW_TAG_enumerator || !name) continue;
    for (i = 0; i < dw->nenums; i++) {
      if (dw->en[i].found || strcmp(dw->en[i].name, name)) continue;
      if (dwarf_attr(&c, DW_AT_const_value, &a) && dwarf_formsdata(&a, &sv) == 0) {
	dw->en[i].val = sv;
	dw->en[i].found = true;
      }
    }
  } while (dwarf_siblingof(&c, &c) == 0);
}

static int index_dwarf(struct dw *dw)
{
  Dwarf_Off off = 0, next;
  size_t hsize;
  while (dwarf_nextcu(dw->dbg, off, &next, &hsize, NULL, NULL, NULL) == 0) {
    Dwarf_Die cu, c;
    if (dwarf_offdie(dw->dbg, off + hsize, &cu) && dwarf_child(&cu, &c) == 0) {
      do {
	int tag = dwarf_tag(&c);
	if (tag == DW_TAG_structure_type || tag == DW_TAG_union_type || tag == DW_TAG_typedef)
	  index_type(dw, &c);
	else if (tag == DW_TAG_enumeration_type)
	  index_enum(dw, &c);
      } while (dwarf_siblingof(&c, &c) == 0);
    }
    off = next;
  }
  return 0;
}

static Dwarf_Die *find_type(struct dw *dw, const char *name)
{
  int i;
  for (i = 0; i < dw->ntypes; i++)
    if (dw->type[i].found && !strcmp(dw->type[i].name, name)) return &dw->type[i].die;
  return NULL;
}

/* Type of member (or array) DIE D, typedefs and qualifiers peeled. */
static int peeled_type(Dwarf_Die *d, Dwarf_Die *ret_t)
{
  Dwarf_Attribute a;
  Dwarf_Die t;
  if (!dwarf_attr_integrate(d, DW_AT_type, &a) || !dwarf_formref_die(&a, &t)) return -1;
  return dwarf_peel_type(&t, ret_t);
}

/* Member NAME of struct/union AGG (looking into anonymous members); 1 found, 0 not. */
static int find_member(Dwarf_Die *agg, const char *name, Dwarf_Word *ret_off, Dwarf_Die *ret_m)
{
  Dwarf_Die c;
  if (dwarf_child(agg, &c) != 0) return 0;
  do {
    const char *mn;
    Dwarf_Attribute a;
    Dwarf_Word off = 0;
    if (dwarf_tag(&c) != DW_TAG_member) continue;
    if (dwarf_attr(&c, DW_AT_data_member_location, &a) && dwarf_formudata(&a, &off) != 0)
      continue;  /* Location expressions (DWARF 2) are not used by gcc >= 4.x here. */
    mn = dwarf_diename(&c);
    if (mn && !strcmp(mn, name)) {
      *ret_off = off;
      *ret_m = c;
      return 1;
    }
    if (!mn) {
      Dwarf_Die t;
      Dwarf_Word sub;
      if (peeled_type(&c, &t) == 0 && find_member(&t, name, &sub, ret_m)) {
	*ret_off = off + sub;
	return 1;
      }
    }
  } while (dwarf_siblingof(&c, &c) == 0);
  return 0;
}

/* Dotted PATH inside type TNAME: offset, member DIE. 1 found, 0 missing member, -1 no type. */
static int member_path(struct dw *dw, const char *tname, const char *path, Dwarf_Word *ret_off,
		       Dwarf_Die *ret_m)
{
  Dwarf_Die *agg = find_type(dw, tname), cur, m;
  Dwarf_Word total = 0, off;
  char buf[128], *p, *save = NULL;
  if (!agg) return -1;
  cur = *agg;
  snprintf(buf, sizeof(buf), "%s", path);
  for (p = strtok_r(buf, ".", &save); p; p = strtok_r(NULL, ".", &save)) {
    if (!find_member(&cur, p, &off, &m)) return 0;
    total += off;
    if (peeled_type(&m, &cur) != 0) return 0;
  }
  *ret_off = total;
  *ret_m = m;
  return 1;
}

/* -- Checks --------------------------------------------------------------- */

struct run {
  const char *build;
  int checked, bad, enums_missing;
};

static void mismatch(struct run *r, const char *what, const char *field, long long tab,
		     const char *dwfmt, ...)
{
  va_list ap;
  printf("  MISMATCH %s: %s: table %lld (%s), build ", r->build, what, tab, field);
  va_start(ap, dwfmt);
  vprintf(dwfmt, ap);
  va_end(ap);
  printf("\n");
  r->bad++;
}

static void check_val(struct run *r, const char *what, const char *field, long long tab,
		      long long dwv)
{
  r->checked++;
  if (tab != dwv) mismatch(r, what, field, tab, "%lld", dwv);
}

/* Offset of TNAME.PATH; ABSENT_OK: the build may lack the member, then the table holds 0. */
static void check_off(struct run *r, struct dw *dw, const char *tname, const char *path,
		      long long tab, const char *field, bool absent_ok)
{
  char what[160];
  Dwarf_Word off;
  Dwarf_Die m;
  int rc = member_path(dw, tname, path, &off, &m);
  snprintf(what, sizeof(what), "offsetof(%s, %s)", tname, path);
  r->checked++;
  if (rc < 0)
    mismatch(r, what, field, tab, "has no type %s", tname);
  else if (rc == 0 && !(absent_ok && tab == 0))
    mismatch(r, what, field, tab, "has no member %s", path);
  else if (rc > 0 && (long long)off != tab)
    mismatch(r, what, field, tab, "%llu", (unsigned long long)off);
}

/* Byte width of member TNAME.PATH. */
static void check_width(struct run *r, struct dw *dw, const char *tname, const char *path,
			long long tab, const char *field)
{
  char what[160];
  Dwarf_Word off, sz = 0;
  Dwarf_Die m, t;
  snprintf(what, sizeof(what), "sizeof(%s.%s)", tname, path);
  r->checked++;
  if (member_path(dw, tname, path, &off, &m) <= 0 || peeled_type(&m, &t) != 0 ||
      dwarf_aggregate_size(&t, &sz) != 0)
    mismatch(r, what, field, tab, "has no sized member %s.%s", tname, path);
  else if ((long long)sz != tab)
    mismatch(r, what, field, tab, "%llu", (unsigned long long)sz);
}

static void check_size(struct run *r, struct dw *dw, const char *tname, long long tab,
		       const char *field)
{
  char what[96];
  Dwarf_Die *t = find_type(dw, tname);
  Dwarf_Word sz;
  snprintf(what, sizeof(what), "sizeof(%s)", tname);
  r->checked++;
  if (!t || dwarf_aggregate_size(t, &sz) != 0)
    mismatch(r, what, field, tab, "has no sized type %s", tname);
  else if ((long long)sz != tab)
    mismatch(r, what, field, tab, "%llu", (unsigned long long)sz);
}

/* Element count of array member TNAME.PATH. */
static void check_count(struct run *r, struct dw *dw, const char *tname, const char *path,
			long long tab, const char *field)
{
  char what[160];
  Dwarf_Word off, asz = 0, esz = 0;
  Dwarf_Die m, t, et;
  snprintf(what, sizeof(what), "countof(%s.%s)", tname, path);
  r->checked++;
  if (member_path(dw, tname, path, &off, &m) <= 0 || peeled_type(&m, &t) != 0 ||
      dwarf_tag(&t) != DW_TAG_array_type || dwarf_aggregate_size(&t, &asz) != 0 ||
      peeled_type(&t, &et) != 0 || dwarf_aggregate_size(&et, &esz) != 0 || esz == 0)
    mismatch(r, what, field, tab, "has no array member %s.%s", tname, path);
  else if ((long long)(asz / esz) != tab)
    mismatch(r, what, field, tab, "%llu", (unsigned long long)(asz / esz));
}

/* Enumerator value, when the compiler kept the enum type (unused ones are dropped). */
static void check_enum(struct run *r, struct dw *dw, const char *name, long long tab,
		       const char *field)
{
  int i;
  for (i = 0; i < dw->nenums; i++) {
    if (strcmp(dw->en[i].name, name)) continue;
    if (!dw->en[i].found) { r->enums_missing++; return; }
    check_val(r, name, field, tab, dw->en[i].val);
    return;
  }
  r->enums_missing++;
}

/* Symbol NAME from .symtab; 0 found. */
static int find_sym(Elf *elf, const char *name, GElf_Sym *ret_sym)
{
  Elf_Scn *scn = NULL;
  while ((scn = elf_nextscn(elf, scn))) {
    GElf_Shdr sh;
    Elf_Data *d;
    size_t i, n;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB) continue;
    d = elf_getdata(scn, NULL);
    n = d && sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
    for (i = 0; i < n; i++) {
      const char *sn;
      if (!gelf_getsym(d, (int)i, ret_sym)) continue;
      sn = elf_strptr(elf, sh.sh_link, ret_sym->st_name);
      if (sn && !strcmp(sn, name)) return 0;
    }
  }
  return -1;
}

/* lj_bc_mode[0..BC__MAX-1] as linked into the binary (.symtab + section data). */
static void check_bcmode(struct run *r, Elf *elf, const struct lj_layout *lay)
{
  GElf_Sym sym;
  GElf_Shdr dsh;
  Elf_Scn *ds;
  Elf_Data *dd;
  unsigned op;
  if (find_sym(elf, "lj_bc_mode", &sym) != 0) {
    mismatch(r, "lj_bc_mode[]", "bcmode", lay->bc.max, "no lj_bc_mode in .symtab");
    return;
  }
  ds = elf_getscn(elf, sym.st_shndx);
  dd = ds ? elf_getdata(ds, NULL) : NULL;
  if (!dd || !gelf_getshdr(ds, &dsh) || dsh.sh_type == SHT_NOBITS || sym.st_value < dsh.sh_addr ||
      sym.st_value - dsh.sh_addr + 2u * lay->bc.max > dd->d_size) {
    mismatch(r, "lj_bc_mode[]", "bcmode", lay->bc.max, "unreadable lj_bc_mode");
    return;
  }
  for (op = 0; op < lay->bc.max; op++) {
    uint16_t v;
    char what[32];
    memcpy(&v, (const char *)dd->d_buf + (sym.st_value - dsh.sh_addr) + 2 * op, 2);
    snprintf(what, sizeof(what), "lj_bc_mode[%u]", op);
    check_val(r, what, "bcmode[]", lay->bcmode[op], v);
  }
}

/* CFRAME_SIZE: the interpreter's CFI (buildvm's .eh_frame) says CFA = rsp + CFRAME_SIZE. */
static void check_cframe(struct run *r, Elf *elf, const struct lj_layout *lay)
{
  GElf_Sym sym;
  Dwarf_CFI *cfi = dwarf_getcfi_elf(elf);
  Dwarf_Frame *fr = NULL;
  Dwarf_Op *ops;
  size_t nops;
  const char *what = "CFA of lj_vm_asm_begin (rsp + CFRAME_SIZE)";
  if (find_sym(elf, "lj_vm_asm_begin", &sym) != 0 || !cfi ||
      dwarf_cfi_addrframe(cfi, sym.st_value, &fr) != 0 || dwarf_frame_cfa(fr, &ops, &nops) != 0 ||
      nops != 1 || ops[0].atom != DW_OP_bregx || ops[0].number != 7 /* rsp */)
    mismatch(r, what, "cf.size", lay->cf.size, "has no rsp-based CFA for lj_vm_asm_begin");
  else
    check_val(r, what, "cf.size", lay->cf.size, (long long)ops[0].number2);
  free(fr);
  if (cfi) dwarf_cfi_end(cfi);
}

#define OFF(T, path, fld)	check_off(r, dw, T, path, lay->fld, #fld, false)
#define OFF_OPT(T, path, fld)	check_off(r, dw, T, path, lay->fld, #fld, true)
#define WID(T, path, fld)	check_width(r, dw, T, path, lay->fld, #fld)
#define SIZE(T, fld)		check_size(r, dw, T, lay->fld, #fld)
#define ENUM(name, fld)		check_enum(r, dw, name, lay->fld, #fld)

static const char *const wanted_types[] = {
  "lua_State", "global_State", "GG_State", "jit_State", "GCproto", "GCfunc", "GCfuncC",
  "GCfuncL", "GCstr", "GCtab", "Node", "GCupval", "GCudata", "GCtrace", "TValue", "GCcdata",
  "GCcdataVar", "CTState", "CType",
};

static void check_layout(struct run *r, struct dw *dw, Elf *elf, const struct lj_layout *lay)
{
  Dwarf_Word gofs = 0, dofs = 0, jofs = 0;
  Dwarf_Die m;
  char en[64];
  unsigned i;
  bool orr = lay->flavour == LJ_FLAVOUR_OPENRESTY, mms_kept = false;

  /* Modes and widths. */
  WID("lua_State", "gclist", gcref_size);
  WID("lua_State", "glref", mref_size);
  SIZE("TValue", tv_size);
  WID("GCtrace", "startins", bcins_size);
  r->checked++;
  if (lay->gc64 != (lay->gcref_size == 8))
    mismatch(r, "gc64 vs GCRef width", "gc64", lay->gc64, "GCRef is %d bytes", lay->gcref_size);

  OFF("lua_State", "gct", L.gct);
  OFF("lua_State", "dummy_ffid", L.dummy_ffid);
  OFF("lua_State", "status", L.status);
  OFF("lua_State", "glref", L.glref);
  OFF("lua_State", "gclist", L.gclist);
  OFF("lua_State", "base", L.base);
  OFF("lua_State", "top", L.top);
  OFF("lua_State", "maxstack", L.maxstack);
  OFF("lua_State", "stack", L.stack);
  OFF("lua_State", "openupval", L.openupval);
  OFF("lua_State", "env", L.env);
  OFF("lua_State", "cframe", L.cframe);
  OFF("lua_State", "stacksize", L.stacksize);
  OFF_OPT("lua_State", "exdata", L.exdata);
  OFF_OPT("lua_State", "exdata2", L.exdata2);
  SIZE("lua_State", L.size);

  OFF("global_State", "gc.total", g.gc_total);
  WID("global_State", "gc.total", g.gc_total_size);
  OFF("global_State", "gc.root", g.gc_root);
  OFF("global_State", "gc.mmudata", g.gc_mmudata);
  OFF("global_State", "strempty", g.strempty);
  OFF("global_State", "str.tab", g.str_tab);
  OFF("global_State", "str.mask", g.str_mask);
  OFF("global_State", "vmstate", g.vmstate);
  OFF("global_State", "mainthref", g.mainthref);
  OFF("global_State", "registrytv", g.registrytv);
  OFF("global_State", "bc_cfunc_int", g.bc_cfunc_int);
  OFF("global_State", "bc_cfunc_ext", g.bc_cfunc_ext);
  OFF("global_State", "cur_L", g.cur_L);
  OFF("global_State", "jit_base", g.jit_base);
  OFF_OPT("global_State", "saved_jit_base", g.saved_jit_base);
  OFF("global_State", "ctype_state", g.ctype_state);
  OFF("global_State", "gcroot", g.gcroot);
  SIZE("global_State", g.size);
  r->checked++;
  if (orr != (lay->g.saved_jit_base != 0 && lay->L.exdata != 0))
    mismatch(r, "flavour vs saved_jit_base/exdata", "flavour", lay->flavour,
	     "saved_jit_base %d exdata %d", lay->g.saved_jit_base, lay->L.exdata);

  OFF("GG_State", "g", gg.g);
  OFF("GG_State", "J", gg.J);
  OFF("GG_State", "hotcount", gg.hotcount);
  OFF("GG_State", "dispatch", gg.dispatch);
  OFF("GG_State", "bcff", gg.bcff);
  SIZE("GG_State", gg.size);
  check_count(r, dw, "GG_State", "dispatch", lay->gg.len_disp, "gg.len_disp");
  if (member_path(dw, "GG_State", "g", &gofs, &m) > 0 &&
      member_path(dw, "GG_State", "dispatch", &dofs, &m) > 0 &&
      member_path(dw, "GG_State", "J", &jofs, &m) > 0) {
    check_val(r, "GG_G2DISP (dispatch - g)", "gg.g2disp", lay->gg.g2disp,
	      (long long)(dofs - gofs));
    check_val(r, "GG_G2J (J - g)", "gg.g2j", lay->gg.g2j, (long long)(jofs - gofs));
  }

  OFF("jit_State", "trace", J.trace);
  OFF("jit_State", "freetrace", J.freetrace);
  OFF("jit_State", "sizetrace", J.sizetrace);

  OFF("GCproto", "numparams", pt.numparams);
  OFF("GCproto", "framesize", pt.framesize);
  OFF("GCproto", "sizebc", pt.sizebc);
  OFF("GCproto", "k", pt.k);
  OFF("GCproto", "uv", pt.uv);
  OFF("GCproto", "sizekgc", pt.sizekgc);
  OFF("GCproto", "sizekn", pt.sizekn);
  OFF("GCproto", "sizept", pt.sizept);
  OFF("GCproto", "sizeuv", pt.sizeuv);
  OFF("GCproto", "flags", pt.flags);
  OFF("GCproto", "trace", pt.trace);
  OFF("GCproto", "chunkname", pt.chunkname);
  OFF("GCproto", "firstline", pt.firstline);
  OFF("GCproto", "numline", pt.numline);
  OFF("GCproto", "lineinfo", pt.lineinfo);
  OFF("GCproto", "uvinfo", pt.uvinfo);
  OFF("GCproto", "varinfo", pt.varinfo);
  SIZE("GCproto", pt.size);

  OFF("GCfunc", "c.ffid", fn.ffid);
  OFF("GCfunc", "c.nupvalues", fn.nupvalues);
  OFF("GCfunc", "c.env", fn.env);
  OFF("GCfunc", "c.pc", fn.pc);
  OFF("GCfunc", "c.f", fn.c_f);
  OFF("GCfunc", "c.upvalue", fn.c_upvalue);
  OFF("GCfunc", "l.uvptr", fn.l_uvptr);
  OFF("GCfuncL", "ffid", fn.ffid);
  OFF("GCfuncL", "pc", fn.pc);
  SIZE("GCfuncC", fn.csize);
  SIZE("GCfuncL", fn.lsize);

  OFF("GCstr", "hash", str.hash);
  OFF("GCstr", "len", str.len);
  SIZE("GCstr", str.size);

  OFF("GCtab", "nomm", tab.nomm);
  OFF("GCtab", "colo", tab.colo);
  OFF("GCtab", "array", tab.array);
  OFF("GCtab", "metatable", tab.metatable);
  OFF("GCtab", "node", tab.node);
  OFF("GCtab", "asize", tab.asize);
  OFF("GCtab", "hmask", tab.hmask);
  SIZE("GCtab", tab.size);

  OFF("Node", "val", node.val);
  OFF("Node", "key", node.key);
  OFF("Node", "next", node.next);
  SIZE("Node", node.size);

  OFF("GCupval", "closed", uv.closed);
  OFF("GCupval", "tv", uv.tv);
  OFF("GCupval", "v", uv.v);
  SIZE("GCupval", uv.size);

  OFF("GCudata", "udtype", ud.udtype);
  OFF("GCudata", "env", ud.env);
  OFF("GCudata", "len", ud.len);
  OFF("GCudata", "metatable", ud.metatable);
  SIZE("GCudata", ud.size);

  OFF("GCcdata", "marked", cd.marked);
  OFF("GCcdata", "ctypeid", cd.ctypeid);
  SIZE("GCcdata", cd.size);
  OFF("GCcdataVar", "offset", cd.v_offset);
  OFF("GCcdataVar", "extra", cd.v_extra);
  OFF("GCcdataVar", "len", cd.v_len);
  SIZE("GCcdataVar", cd.v_size);
  /* (the header's marked byte is the one every GC object has) */
  OFF("lua_State", "marked", cd.marked);
  OFF("CTState", "tab", ct.tab);
  OFF("CTState", "top", ct.top);
  OFF("CTState", "sizetab", ct.sizetab);
  OFF("CTState", "cb.cbid", ct.cbid);
  OFF("CTState", "cb.sizeid", ct.sizeid);
  SIZE("CTState", ct.state_size);
  WID("CType", "sib", ct.id1_size);
  OFF("CType", "info", ct.info);
  OFF("CType", "size", ct.ctsize);
  OFF("CType", "name", ct.name);
  SIZE("CType", ct.size);
  /* CTSIZE_PTR is a pointer's size: the C type table's; CTMASK_CID spans a CTypeID1 */
  WID("CTState", "tab", ct.size_ptr);
  {
    Dwarf_Word off, sz = 0;
    Dwarf_Die t;
    r->checked++;
    if (member_path(dw, "CType", "sib", &off, &m) <= 0 || peeled_type(&m, &t) != 0 ||
	dwarf_aggregate_size(&t, &sz) != 0 || sz >= 8)
      mismatch(r, "CTMASK_CID (CTypeID1 CType.sib)", "ct.mask_cid", lay->ct.mask_cid,
	       "has no sized CType.sib");
    else if ((1ull << (8 * sz)) - 1 != lay->ct.mask_cid)
      mismatch(r, "CTMASK_CID (CTypeID1 CType.sib)", "ct.mask_cid", lay->ct.mask_cid, "%llu",
	       (1ull << (8 * sz)) - 1);
  }
  ENUM("CT_ATTRIB", ct.attrib);
  ENUM("CT_HASSIZE", ct.hassize);

  OFF("GCtrace", "nsnap", tr.nsnap);
  WID("GCtrace", "nsnap", tr.nsnap_w);
  OFF("GCtrace", "nins", tr.nins);
  OFF("GCtrace", "ir", tr.ir);
  OFF("GCtrace", "nk", tr.nk);
  OFF("GCtrace", "nsnapmap", tr.nsnapmap);
  WID("GCtrace", "nsnapmap", tr.nsnapmap_w);
  OFF("GCtrace", "snap", tr.snap);
  OFF("GCtrace", "snapmap", tr.snapmap);
  OFF("GCtrace", "startpt", tr.startpt);
  OFF("GCtrace", "startpc", tr.startpc);
  OFF("GCtrace", "startins", tr.startins);
  OFF("GCtrace", "szmcode", tr.szmcode);
  OFF("GCtrace", "mcode", tr.mcode);
  OFF("GCtrace", "mcloop", tr.mcloop);
  OFF("GCtrace", "nchild", tr.nchild);
  OFF("GCtrace", "spadjust", tr.spadjust);
  OFF("GCtrace", "traceno", tr.traceno);
  OFF("GCtrace", "link", tr.link);
  OFF("GCtrace", "root", tr.root);
  SIZE("GCtrace", tr.size);

  /* Enumerators: checked where the compiler kept the enum type. */
  ENUM("FRAME_LUA", frame.lua); ENUM("FRAME_C", frame.c); ENUM("FRAME_CONT", frame.cont);
  ENUM("FRAME_VARG", frame.varg); ENUM("FRAME_LUAP", frame.luap); ENUM("FRAME_CP", frame.cp);
  ENUM("FRAME_PCALL", frame.pcall); ENUM("FRAME_PCALLH", frame.pcallh);
  ENUM("LJ_VMST_INTERP", vmst.interp); ENUM("LJ_VMST_C", vmst.c); ENUM("LJ_VMST_GC", vmst.gc);
  ENUM("LJ_VMST_EXIT", vmst.exit); ENUM("LJ_VMST_RECORD", vmst.record);
  ENUM("LJ_VMST_OPT", vmst.opt); ENUM("LJ_VMST_ASM", vmst.asm_); ENUM("LJ_VMST__MAX", vmst.max);
  ENUM("BC_MOV", bc.mov); ENUM("BC_KNIL", bc.knil); ENUM("BC_GGET", bc.gget);
  ENUM("BC_TGETS", bc.tgets); ENUM("BC_UGET", bc.uget); ENUM("BC_FNEW", bc.fnew);
  ENUM("BC_TNEW", bc.tnew); ENUM("BC_TDUP", bc.tdup); ENUM("BC_CALLM", bc.callm);
  ENUM("BC_CALL", bc.call); ENUM("BC_CALLMT", bc.callmt); ENUM("BC_CALLT", bc.callt);
  ENUM("BC_ITERC", bc.iterc); ENUM("BC_ITERN", bc.itern); ENUM("BC_VARG", bc.varg);
  ENUM("BC_RETM", bc.retm); ENUM("BC_RET", bc.ret); ENUM("BC_RET0", bc.ret0);
  ENUM("BC_RET1", bc.ret1); ENUM("BC_JLOOP", bc.jloop); ENUM("BC_FUNCF", bc.funcf);
  ENUM("BC_IFUNCF", bc.ifuncf); ENUM("BC_JFUNCF", bc.jfuncf); ENUM("BC_FUNCV", bc.funcv);
  ENUM("BC_IFUNCV", bc.ifuncv); ENUM("BC_JFUNCV", bc.jfuncv); ENUM("BC_FUNCC", bc.funcc);
  ENUM("BC_FUNCCW", bc.funccw); ENUM("BC__MAX", bc.max);
  ENUM("BCMnone", bcm.none); ENUM("BCMdst", bcm.dst); ENUM("BCMbase", bcm.base);
  ENUM("BCMvar", bcm.var); ENUM("BCMrbase", bcm.rbase); ENUM("BCMuv", bcm.uv);
  ENUM("MM__MAX", mm_max); ENUM("MM_index", mm_index); ENUM("MM_call", mm_call);
  ENUM("GCROOT_MMNAME", gcroot_mmname); ENUM("GCROOT_BASEMT", gcroot_basemt);
  ENUM("GCROOT_MAX", gcroot_max);
  for (i = 0; i < (unsigned)dw->nenums; i++)
    if (!strcmp(dw->en[i].name, "MM__MAX") && dw->en[i].found) mms_kept = true;
  for (i = 0; i < lay->mm_max && i < LJ_LAYOUT_MM_MAX; i++) {
    int j;
    snprintf(en, sizeof(en), "MM_%s", lay->mm_names[i] ? lay->mm_names[i] : "?");
    for (j = 0; j < dw->nenums; j++)
      if (!strcmp(dw->en[j].name, en) && dw->en[j].found) break;
    if (j == dw->nenums) {
      if (mms_kept)
	mismatch(r, "mm_names[]", "mm_names", (long long)i, "has no enumerator %s", en);
      else
	r->enums_missing++;
      continue;
    }
    check_val(r, en, "mm_names[] index", (long long)i, dw->en[j].val);
  }
  check_bcmode(r, elf, lay);
  check_cframe(r, elf, lay);
}

/* Enumerators looked up: fixed ones plus MM_<name> for the layout's names. */
static const char *const wanted_enums[] = {
  "FRAME_LUA", "FRAME_C", "FRAME_CONT", "FRAME_VARG", "FRAME_LUAP", "FRAME_CP", "FRAME_PCALL",
  "FRAME_PCALLH", "LJ_VMST_INTERP", "LJ_VMST_C", "LJ_VMST_GC", "LJ_VMST_EXIT",
  "LJ_VMST_RECORD", "LJ_VMST_OPT", "LJ_VMST_ASM", "LJ_VMST__MAX", "BC_MOV", "BC_KNIL",
  "BC_GGET", "BC_TGETS", "BC_UGET", "BC_FNEW", "BC_TNEW", "BC_TDUP", "BC_CALLM", "BC_CALL",
  "BC_CALLMT", "BC_CALLT", "BC_ITERC", "BC_ITERN", "BC_VARG", "BC_RETM", "BC_RET", "BC_RET0",
  "BC_RET1", "BC_JLOOP", "BC_FUNCF", "BC_IFUNCF", "BC_JFUNCF", "BC_FUNCV", "BC_IFUNCV",
  "BC_JFUNCV", "BC_FUNCC", "BC_FUNCCW", "BC__MAX", "BCMnone", "BCMdst", "BCMbase", "BCMvar",
  "BCMrbase", "BCMuv", "MM__MAX", "MM_index", "MM_call", "GCROOT_MMNAME", "GCROOT_BASEMT",
  "GCROOT_MAX", "CT_ATTRIB", "CT_HASSIZE",
};

/* -- Builds --------------------------------------------------------------- */

static char *build_info(const char *path, const char *key, char *buf, size_t len)
{
  FILE *f = fopen(path, "r");
  char line[512];
  size_t kl = strlen(key);
  if (!f) return NULL;
  while (fgets(line, sizeof(line), f)) {
    if (!strncmp(line, key, kl) && line[kl] == '=') {
      line[strcspn(line, "\n")] = 0;
      snprintf(buf, len, "%s", line + kl + 1);
      fclose(f);
      return buf;
    }
  }
  fclose(f);
  return NULL;
}

/* Check one build directory; returns the number of mismatches (or 1 on error). */
static int check_build(const char *dir, const char *name, const struct lj_layout *lay)
{
  static char mmenum[LJ_LAYOUT_MM_MAX][40];
  struct run r = { .build = name };
  struct dw dw;
  char bin[4096];
  Elf *elf;
  int fd;
  unsigned i;

  memset(&dw, 0, sizeof(dw));
  snprintf(bin, sizeof(bin), "%s/%s/src/luajit", dir, name);
  fd = open(bin, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    printf("FAIL %s: cannot open %s: %s\n", name, bin, strerror(errno));
    return 1;
  }
  elf = elf_begin(fd, ELF_C_READ, NULL);
  dw.dbg = elf ? dwarf_begin_elf(elf, DWARF_C_READ, NULL) : NULL;
  if (!dw.dbg) {
    printf("FAIL %s: no DWARF in %s: %s\n", name, bin, dwarf_errmsg(-1));
    if (elf) elf_end(elf);
    close(fd);
    return 1;
  }
  for (i = 0; i < sizeof(wanted_types) / sizeof(wanted_types[0]); i++)
    want_type(&dw, wanted_types[i]);
  for (i = 0; i < sizeof(wanted_enums) / sizeof(wanted_enums[0]); i++)
    want_enum(&dw, wanted_enums[i]);
  for (i = 0; i < lay->mm_max && i < LJ_LAYOUT_MM_MAX && lay->mm_names[i]; i++) {
    snprintf(mmenum[i], sizeof(mmenum[i]), "MM_%s", lay->mm_names[i]);
    want_enum(&dw, mmenum[i]);
  }
  index_dwarf(&dw);
  check_layout(&r, &dw, elf, lay);
  printf("%s %s: %d values checked against %s, %d mismatches (%d enumerators not in DWARF)\n",
	 r.bad ? "FAIL" : "ok", name, r.checked, bin, r.bad, r.enums_missing);
  dwarf_end(dw.dbg);
  elf_end(elf);
  close(fd);
  return r.bad;
}

static int run_prepare(const char *script, const char *dir)
{
  char *argv[] = { "sh", (char *)script, (char *)dir, NULL };
  pid_t pid;
  int st, rc;
  fflush(stdout);
  rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
  if (rc) {
    printf("FAIL: cannot run %s: %s\n", script, strerror(rc));
    return 1;
  }
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return 1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(int argc, char **argv)
{
  const char *prepare = NULL, *dir;
  int argi = 1, bad = 0, nbuilds = 0, rc;
  size_t i;
  bool *seen;
  DIR *d;
  struct dirent *de;

  if (argc == 4 && !strcmp(argv[1], "--prepare")) {
    prepare = argv[2];
    argi = 3;
  }
  if (argi != argc - 1) {
    fprintf(stderr, "usage: %s [--prepare SCRIPT] DIR\n", argv[0]);
    return 64;
  }
  dir = argv[argi];
  if (prepare) {
    rc = run_prepare(prepare, dir);
    if (rc == 77) {
      printf("SKIP: %s could not fetch the LuaJIT sources (see its message above)\n", prepare);
      return 77;
    }
    if (rc) {
      printf("FAIL: %s %s exited %d\n", prepare, dir, rc);
      return 1;
    }
  }
  elf_version(EV_CURRENT);
  seen = calloc(lj_layouts_count + 1, sizeof(*seen));
  d = opendir(dir);
  if (!d || !seen) {
    printf("SKIP: no prepared builds in %s (run fixtures/luajit/prepare.sh %s)\n", dir, dir);
    return 77;
  }
  while ((de = readdir(d))) {
    char bi[4096], name[256];
    if (de->d_name[0] == '.') continue;
    snprintf(bi, sizeof(bi), "%s/%s/BUILD_INFO", dir, de->d_name);
    if (access(bi, R_OK) != 0) continue;
    if (!build_info(bi, "name", name, sizeof(name))) snprintf(name, sizeof(name), "%s", de->d_name);
    nbuilds++;
    for (i = 0; i < lj_layouts_count; i++)
      if (!strcmp(lj_layouts[i].name, name)) break;
    if (i == lj_layouts_count) {
      printf("FAIL %s: no lj_layouts[] entry of that name; regenerate runtimes/luajit/lj_layouts.c"
	     " with runtimes/luajit/gen/generate.sh %s\n", name, dir);
      bad++;
      continue;
    }
    seen[i] = true;
    {
      char ver[256];
      if (build_info(bi, "version", ver, sizeof(ver)) && !strstr(lj_layouts[i].source, ver))
	printf("note %s: built from version %s, table from \"%s\"\n", name, ver,
	       lj_layouts[i].source);
    }
    bad += check_build(dir, name, &lj_layouts[i]);
  }
  closedir(d);
  for (i = 0; i < lj_layouts_count; i++)
    if (!seen[i]) printf("note: lj_layouts[] entry %s has no build in %s, not checked\n",
			 lj_layouts[i].name, dir);
  free(seen);
  if (!nbuilds) {
    printf("SKIP: no DIR/*/BUILD_INFO builds in %s (run fixtures/luajit/prepare.sh %s)\n", dir,
	   dir);
    return 77;
  }
  printf("%s: %d builds, %d mismatches\n", bad ? "FAIL" : "PASS", nbuilds, bad);
  return bad ? 1 : 0;
}
