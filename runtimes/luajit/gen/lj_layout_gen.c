/* Print one struct lj_layout initializer, from a LuaJIT tree's own headers (offsetof/sizeof).
**
** Build against a built tree's src/ with the tree's defines, e.g.
**   cc -I TREE/src [-DLUAJIT_DISABLE_GC64] [-DLJ_GEN_OPENRESTY] lj_layout_gen.c
** Run: ./a.out NAME SOURCE   (gen/generate.sh does both).
*/

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "luajit.h"
#include "lj_obj.h"
#include "lj_bc.h"
#include "lj_frame.h"
#include "lj_jit.h"
#include "lj_dispatch.h"
#include "lj_ctype.h"

#if !LJ_TARGET_X64
#error "lj_layout_gen: x86_64 trees only"
#endif
#ifndef LJ_GEN_OPENRESTY
#define LJ_GEN_OPENRESTY	0
#endif

/* -- Emitter -------------------------------------------------------------- */

static int col;

static void open_group(const char *name)
{
  col = printf("  .%s = {", name);
}

static void fld(const char *name, long long v)
{
  char buf[64];
  int n = snprintf(buf, sizeof(buf), " .%s = %lld,", name, v);
  if (col + n > 98) { printf("\n   "); col = 3; }
  col += printf("%s", buf);
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
#define FSZ(T, f)	((long long)sizeof(((T *)0)->f))

/* The marked bit cdataisv() tests (a literal in lj_obj.h, not a named constant): found by
** asking the build's own macro about each bit. */
static int cdata_vbit(void)
{
  GCcdata cd;
  int b;
  for (b = 0; b < 8; b++) {
    memset(&cd, 0, sizeof(cd));
    cd.marked = (uint8_t)(1u << b);
    if (cdataisv(&cd)) return 1 << b;
  }
  return 0;
}

/* -- Layout --------------------------------------------------------------- */

_Static_assert(BC__MAX <= 128 && MM__MAX <= 24, "grow LJ_LAYOUT_BC_MAX/LJ_LAYOUT_MM_MAX");

static const uint16_t bcmode[] = { BCDEF(BCMODE) };
#define MMNAME(name)	#name,
static const char *const mmnames[] = { MMDEF(MMNAME) };

int main(int argc, char **argv)
{
  unsigned i;
  if (argc != 3) {
    fprintf(stderr, "usage: %s NAME SOURCE\n", argv[0]);
    return 64;
  }

  printf("{\n");
  str("name", argv[1]);
  str("source", argv[2]);
  str("version", LUAJIT_VERSION);
  printf("  .flavour = %s, .gc64 = %d, .fr2 = %d,\n",
	 LJ_GEN_OPENRESTY ? "LJ_FLAVOUR_OPENRESTY" : "LJ_FLAVOUR_UPSTREAM", LJ_GC64, LJ_FR2);
  printf("  .gcref_size = %zu, .mref_size = %zu, .tv_size = %zu, .bcins_size = %zu,\n",
	 sizeof(GCRef), sizeof(MRef), sizeof(TValue), sizeof(BCIns));
#ifdef LJ_GCVMASK
  printf("  .gcvmask = 0x%llxull,\n", (unsigned long long)LJ_GCVMASK);
#else
  printf("  .gcvmask = 0,\n");
#endif

  open_group("L");
  fld("gct", OFS(lua_State, gct));
  fld("dummy_ffid", OFS(lua_State, dummy_ffid));
  fld("status", OFS(lua_State, status));
  fld("glref", OFS(lua_State, glref));
  fld("gclist", OFS(lua_State, gclist));
  fld("base", OFS(lua_State, base));
  fld("top", OFS(lua_State, top));
  fld("maxstack", OFS(lua_State, maxstack));
  fld("stack", OFS(lua_State, stack));
  fld("openupval", OFS(lua_State, openupval));
  fld("env", OFS(lua_State, env));
  fld("cframe", OFS(lua_State, cframe));
  fld("stacksize", OFS(lua_State, stacksize));
#if LJ_GEN_OPENRESTY
  fld("exdata", OFS(lua_State, exdata));
  fld("exdata2", OFS(lua_State, exdata2));
#else
  fld("exdata", 0);
  fld("exdata2", 0);
#endif
  fld("size", sizeof(lua_State));
  close_group();

  open_group("g");
  fld("gc_total", OFS(global_State, gc.total));
  fld("gc_total_size", FSZ(global_State, gc.total));
  fld("gc_root", OFS(global_State, gc.root));
  fld("gc_mmudata", OFS(global_State, gc.mmudata));
  fld("strempty", OFS(global_State, strempty));
  fld("str_tab", OFS(global_State, str.tab));
  fld("str_mask", OFS(global_State, str.mask));
  fld("vmstate", OFS(global_State, vmstate));
  fld("mainthref", OFS(global_State, mainthref));
  fld("registrytv", OFS(global_State, registrytv));
  fld("bc_cfunc_int", OFS(global_State, bc_cfunc_int));
  fld("bc_cfunc_ext", OFS(global_State, bc_cfunc_ext));
  fld("cur_L", OFS(global_State, cur_L));
  fld("jit_base", OFS(global_State, jit_base));
#if LJ_GEN_OPENRESTY
  fld("saved_jit_base", OFS(global_State, saved_jit_base));
#else
  fld("saved_jit_base", 0);
#endif
  fld("ctype_state", OFS(global_State, ctype_state));
  fld("gcroot", OFS(global_State, gcroot));
  fld("size", sizeof(global_State));
  close_group();

  open_group("gg");
  fld("g", GG_OFS(g));
  fld("J", GG_OFS(J));
  fld("hotcount", GG_OFS(hotcount));
  fld("dispatch", GG_OFS(dispatch));
  fld("bcff", GG_OFS(bcff));
  fld("size", sizeof(GG_State));
  fld("g2disp", GG_G2DISP);
  fld("g2j", GG_G2J);
  fld("len_disp", GG_LEN_DISP);
  close_group();

  open_group("J");
  fld("trace", OFS(jit_State, trace));
  fld("freetrace", OFS(jit_State, freetrace));
  fld("sizetrace", OFS(jit_State, sizetrace));
  close_group();

  open_group("pt");
  fld("numparams", OFS(GCproto, numparams));
  fld("framesize", OFS(GCproto, framesize));
  fld("sizebc", OFS(GCproto, sizebc));
  fld("k", OFS(GCproto, k));
  fld("uv", OFS(GCproto, uv));
  fld("sizekgc", OFS(GCproto, sizekgc));
  fld("sizekn", OFS(GCproto, sizekn));
  fld("sizept", OFS(GCproto, sizept));
  fld("sizeuv", OFS(GCproto, sizeuv));
  fld("flags", OFS(GCproto, flags));
  fld("trace", OFS(GCproto, trace));
  fld("chunkname", OFS(GCproto, chunkname));
  fld("firstline", OFS(GCproto, firstline));
  fld("numline", OFS(GCproto, numline));
  fld("lineinfo", OFS(GCproto, lineinfo));
  fld("uvinfo", OFS(GCproto, uvinfo));
  fld("varinfo", OFS(GCproto, varinfo));
  fld("size", sizeof(GCproto));
  close_group();

  open_group("fn");
  fld("ffid", OFS(GCfunc, c.ffid));
  fld("nupvalues", OFS(GCfunc, c.nupvalues));
  fld("env", OFS(GCfunc, c.env));
  fld("pc", OFS(GCfunc, c.pc));
  fld("c_f", OFS(GCfunc, c.f));
  fld("c_upvalue", OFS(GCfunc, c.upvalue));
  fld("l_uvptr", OFS(GCfunc, l.uvptr));
  fld("csize", sizeof(GCfuncC));
  fld("lsize", sizeof(GCfuncL));
  close_group();

  open_group("str");
  fld("hash", OFS(GCstr, hash));
  fld("len", OFS(GCstr, len));
  fld("size", sizeof(GCstr));
  close_group();

  open_group("tab");
  fld("nomm", OFS(GCtab, nomm));
  fld("colo", OFS(GCtab, colo));
  fld("array", OFS(GCtab, array));
  fld("metatable", OFS(GCtab, metatable));
  fld("node", OFS(GCtab, node));
  fld("asize", OFS(GCtab, asize));
  fld("hmask", OFS(GCtab, hmask));
  fld("size", sizeof(GCtab));
  close_group();

  open_group("node");
  fld("val", OFS(Node, val));
  fld("key", OFS(Node, key));
  fld("next", OFS(Node, next));
  fld("size", sizeof(Node));
  close_group();

  open_group("uv");
  fld("closed", OFS(GCupval, closed));
  fld("tv", OFS(GCupval, tv));
  fld("v", OFS(GCupval, v));
  fld("size", sizeof(GCupval));
  close_group();

  open_group("ud");
  fld("udtype", OFS(GCudata, udtype));
  fld("env", OFS(GCudata, env));
  fld("len", OFS(GCudata, len));
  fld("metatable", OFS(GCudata, metatable));
  fld("size", sizeof(GCudata));
  close_group();

  open_group("cd");
  fld("marked", OFS(GCcdata, marked));
  fld("ctypeid", OFS(GCcdata, ctypeid));
  fld("size", sizeof(GCcdata));
  fld("vbit", cdata_vbit());
  fld("v_offset", OFS(GCcdataVar, offset));
  fld("v_extra", OFS(GCcdataVar, extra));
  fld("v_len", OFS(GCcdataVar, len));
  fld("v_size", sizeof(GCcdataVar));
  close_group();

  open_group("ct");
  fld("tab", OFS(CTState, tab));
  fld("top", OFS(CTState, top));
  fld("sizetab", OFS(CTState, sizetab));
  fld("cbid", OFS(CTState, cb.cbid));
  fld("sizeid", OFS(CTState, cb.sizeid));
  fld("state_size", sizeof(CTState));
  fld("id1_size", sizeof(CTypeID1));
  fld("info", OFS(CType, info));
  fld("ctsize", OFS(CType, size));
  fld("name", OFS(CType, name));
  fld("size", sizeof(CType));
  fld("size_ptr", CTSIZE_PTR);
  fld("shift_num", CTSHIFT_NUM);
  fld("mask_cid", CTMASK_CID);
  fld("attrib", CT_ATTRIB);
  fld("hassize", CT_HASSIZE);
  close_group();

  open_group("tr");
  fld("nsnap", OFS(GCtrace, nsnap));
  fld("nsnap_w", FSZ(GCtrace, nsnap));
  fld("nins", OFS(GCtrace, nins));
  fld("ir", OFS(GCtrace, ir));
  fld("nk", OFS(GCtrace, nk));
  fld("nsnapmap", OFS(GCtrace, nsnapmap));
  fld("nsnapmap_w", FSZ(GCtrace, nsnapmap));
  fld("snap", OFS(GCtrace, snap));
  fld("snapmap", OFS(GCtrace, snapmap));
  fld("startpt", OFS(GCtrace, startpt));
  fld("startpc", OFS(GCtrace, startpc));
  fld("startins", OFS(GCtrace, startins));
  fld("szmcode", OFS(GCtrace, szmcode));
  fld("mcode", OFS(GCtrace, mcode));
  fld("mcloop", OFS(GCtrace, mcloop));
  fld("nchild", OFS(GCtrace, nchild));
  fld("spadjust", OFS(GCtrace, spadjust));
  fld("traceno", OFS(GCtrace, traceno));
  fld("link", OFS(GCtrace, link));
  fld("root", OFS(GCtrace, root));
  fld("size", sizeof(GCtrace));
  close_group();

  open_group("cf");
  fld("ofs_l", CFRAME_OFS_L);
  fld("ofs_pc", CFRAME_OFS_PC);
  fld("ofs_prev", CFRAME_OFS_PREV);
  fld("ofs_nres", CFRAME_OFS_NRES);
  fld("ofs_errf", CFRAME_OFS_ERRF);
  fld("ofs_multres", CFRAME_OFS_MULTRES);
  fld("size", CFRAME_SIZE);
  fld("size_jit", CFRAME_SIZE_JIT);
  fld("rawmask", (long long)CFRAME_RAWMASK);
  close_group();

  open_group("frame");
  fld("lua", FRAME_LUA);
  fld("c", FRAME_C);
  fld("cont", FRAME_CONT);
  fld("varg", FRAME_VARG);
  fld("luap", FRAME_LUAP);
  fld("cp", FRAME_CP);
  fld("pcall", FRAME_PCALL);
  fld("pcallh", FRAME_PCALLH);
  fld("type", FRAME_TYPE);
  fld("typep", FRAME_TYPEP);
  close_group();

  open_group("vmst");
  fld("interp", LJ_VMST_INTERP);
  fld("c", LJ_VMST_C);
  fld("gc", LJ_VMST_GC);
  fld("exit", LJ_VMST_EXIT);
  fld("record", LJ_VMST_RECORD);
  fld("opt", LJ_VMST_OPT);
  fld("asm_", LJ_VMST_ASM);
  fld("max", LJ_VMST__MAX);
  close_group();

  open_group("gct");
  fld("str", (uint8_t)~LJ_TSTR);
  fld("upval", (uint8_t)~LJ_TUPVAL);
  fld("thread", (uint8_t)~LJ_TTHREAD);
  fld("proto", (uint8_t)~LJ_TPROTO);
  fld("func", (uint8_t)~LJ_TFUNC);
  fld("trace", (uint8_t)~LJ_TTRACE);
  fld("cdata", (uint8_t)~LJ_TCDATA);
  fld("tab", (uint8_t)~LJ_TTAB);
  fld("udata", (uint8_t)~LJ_TUDATA);
  close_group();

  open_group("bc");
  fld("mov", BC_MOV);
  fld("knil", BC_KNIL);
  fld("gget", BC_GGET);
  fld("tgets", BC_TGETS);
  fld("uget", BC_UGET);
  fld("fnew", BC_FNEW);
  fld("tnew", BC_TNEW);
  fld("tdup", BC_TDUP);
  fld("callm", BC_CALLM);
  fld("call", BC_CALL);
  fld("callmt", BC_CALLMT);
  fld("callt", BC_CALLT);
  fld("iterc", BC_ITERC);
  fld("itern", BC_ITERN);
  fld("varg", BC_VARG);
  fld("retm", BC_RETM);
  fld("ret", BC_RET);
  fld("ret0", BC_RET0);
  fld("ret1", BC_RET1);
  fld("jloop", BC_JLOOP);
  fld("funcf", BC_FUNCF);
  fld("ifuncf", BC_IFUNCF);
  fld("jfuncf", BC_JFUNCF);
  fld("funcv", BC_FUNCV);
  fld("ifuncv", BC_IFUNCV);
  fld("jfuncv", BC_JFUNCV);
  fld("funcc", BC_FUNCC);
  fld("funccw", BC_FUNCCW);
  fld("max", BC__MAX);
  close_group();

  open_group("bcm");
  fld("none", BCMnone);
  fld("dst", BCMdst);
  fld("base", BCMbase);
  fld("var", BCMvar);
  fld("rbase", BCMrbase);
  fld("uv", BCMuv);
  close_group();

  printf("  .bcmode = {");
  for (i = 0; i < BC__MAX; i++)
    printf("%s0x%04x,", i % 10 ? " " : "\n    ", bcmode[i]);
  printf("\n  },\n");

  printf("  .mm_max = %d, .mm_index = %d, .mm_call = %d,\n", MM__MAX, MM_index, MM_call);
  printf("  .gcroot_mmname = %d, .gcroot_basemt = %d, .gcroot_max = %d,\n",
	 GCROOT_MMNAME, GCROOT_BASEMT, GCROOT_MAX);
  col = printf("  .mm_names = {");
  for (i = 0; i < MM__MAX; i++) {
    int n = (int)strlen(mmnames[i]) + 4;
    if (col + n > 98) { printf("\n   "); col = 3; }
    col += printf(" \"%s\",", mmnames[i]);
  }
  printf(" },\n");

  open_group("proto");
  fld("child", PROTO_CHILD);
  fld("vararg", PROTO_VARARG);
  fld("ffi", PROTO_FFI);
  fld("nojit", PROTO_NOJIT);
  fld("iloop", PROTO_ILOOP);
  close_group();
  printf("  .ff_lua = %d, .ff_c = %d,\n", FF_LUA, FF_C);
  printf("},\n");
  return 0;
}
