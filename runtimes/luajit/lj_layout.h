/* LuaJIT 2.1 per-build layouts: offsets, sizes and VM constants the walker reads through. */

#ifndef VMSTACK_LJ_LAYOUT_H
#define VMSTACK_LJ_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define LJ_LAYOUT_BC_MAX	128	/* Room in bcmode[] (BC__MAX is 97, 104 since 2026-07). */
#define LJ_LAYOUT_MM_MAX	24	/* Room in mm_names[] (MM__MAX is 22 with FFI). */

enum { LJ_FLAVOUR_UPSTREAM, LJ_FLAVOUR_OPENRESTY };

/* All offsets are in bytes from the start of the object; sizes are sizeof(). Fields a build
** lacks are 0 (e.g. g.saved_jit_base outside OpenResty's branch).
*/
struct lj_layout {
  /* Identification: table name, origin (package, version, flags), LUAJIT_VERSION, modes. */
  const char *name;
  const char *source;
  const char *version;
  uint8_t flavour;		/* LJ_FLAVOUR_* */
  uint8_t gc64, fr2;
  /* Widths of GCRef, MRef, TValue, BCIns; GC64 pointer mask of a tagged TValue. */
  uint8_t gcref_size, mref_size, tv_size, bcins_size;
  uint64_t gcvmask;

  /* lua_State. */
  struct {
    uint16_t gct, dummy_ffid, status, glref, gclist, base, top, maxstack, stack,
	     openupval, env, cframe, stacksize, exdata, exdata2, size;
  } L;
  /* global_State (gcroot is the start of GCRef gcroot[GCROOT_MAX]). */
  struct {
    uint16_t gc_total, gc_total_size, gc_root, gc_mmudata, strempty, str_tab, str_mask,
	     vmstate, mainthref, registrytv, bc_cfunc_int, bc_cfunc_ext, cur_L, jit_base,
	     saved_jit_base, ctype_state, gcroot, size;
  } g;
  /* GG_State: one allocation holding L, g, J and the dispatch table. */
  struct {
    uint32_t g, J, hotcount, dispatch, bcff, size;
    uint32_t g2disp, g2j, len_disp;	/* GG_G2DISP, GG_G2J, GG_LEN_DISP */
  } gg;
  /* jit_State (relative to J). */
  struct {
    uint16_t trace, freetrace, sizetrace;
  } J;
  /* GCproto; bytecode starts at +size. */
  struct {
    uint16_t numparams, framesize, sizebc, k, uv, sizekgc, sizekn, sizept, sizeuv, flags,
	     trace, chunkname, firstline, numline, lineinfo, uvinfo, varinfo, size;
  } pt;
  /* GCfunc (GCfuncC c, GCfuncL l); csize/lsize are sizeof(GCfuncC)/sizeof(GCfuncL). */
  struct {
    uint16_t ffid, nupvalues, env, pc, c_f, c_upvalue, l_uvptr, csize, lsize;
  } fn;
  /* GCstr; string data follows at +size. */
  struct {
    uint16_t hash, len, size;
  } str;
  /* GCtab and Node. */
  struct {
    uint16_t nomm, colo, array, metatable, node, asize, hmask, size;
  } tab;
  struct {
    uint16_t val, key, next, size;
  } node;
  /* GCupval (tv: the closed value, v: MRef to the live value). */
  struct {
    uint16_t closed, tv, v, size;
  } uv;
  /* GCudata; payload follows at +size. */
  struct {
    uint16_t udtype, env, len, metatable, size;
  } ud;
  /* GCcdata (a fixed-size payload follows at +size); vbit: the marked bit of a variable-sized
  ** or realigned one, whose GCcdataVar (v_*) sits just before it. */
  struct {
    uint16_t marked, ctypeid, size, vbit, v_offset, v_extra, v_len, v_size;
  } cd;
  /* The FFI's C types: CTState (at g.ctype_state; state_size its sizeof) tab/top/sizetab and
  ** its callbacks' cb.cbid/cb.sizeid (CTypeID1 of id1_size bytes); CType info/size (ctsize)/
  ** name and sizeof(CType); CTSIZE_PTR, CTSHIFT_NUM, CTMASK_CID and the CT_ATTRIB and
  ** CT_HASSIZE type numbers (a C type's number is info >> shift_num, its child's id
  ** info & mask_cid). */
  struct {
    uint16_t tab, top, sizetab, cbid, sizeid, state_size, id1_size, info, ctsize, name, size,
	     size_ptr, shift_num, attrib, hassize;
    uint32_t mask_cid;
  } ct;
  /* GCtrace; *_w are field widths in bytes where builds differ (nsnap u16, nsnapmap u16/u32). */
  struct {
    uint16_t nsnap, nsnap_w, nins, ir, nk, nsnapmap, nsnapmap_w, snap, snapmap, startpt,
	     startpc, startins, szmcode, mcode, mcloop, nchild, spadjust, traceno, link, root,
	     size;
  } tr;
  /* VM C frame (cframe) slots, relative to the cframe (rsp of the VM frame). */
  struct {
    uint16_t ofs_l, ofs_pc, ofs_prev, ofs_nres, ofs_errf, ofs_multres, size, size_jit;
    int64_t rawmask;
  } cf;
  /* Frame link types (low bits of the frame's PC/delta slot). */
  struct {
    uint8_t lua, c, cont, varg, luap, cp, pcall, pcallh, type, typep;
  } frame;
  /* VM states; g->vmstate holds ~value (or a trace number > 0). */
  struct {
    uint8_t interp, c, gc, exit, record, opt, asm_, max;
  } vmst;
  /* gct byte of the GC header (~LJ_Txxx). */
  struct {
    uint8_t str, upval, thread, proto, func, trace, cdata, tab, udata;
  } gct;
  /* Opcode numbers. */
  struct {
    uint8_t mov, knil, gget, tgets, uget, fnew, tnew, tdup, callm, call, callmt, callt, iterc,
	    itern, varg, retm, ret, ret0, ret1, jloop, funcf, ifuncf, jfuncf, funcv, ifuncv,
	    jfuncv, funcc, funccw, max;
  } bc;
  /* BCMode values used inside bcmode[]. */
  struct {
    uint8_t none, dst, base, var, rbase, uv;
  } bcm;
  /* lj_bc_mode[op]: a = m & 7, b = (m >> 3) & 15, c/d = (m >> 7) & 15, mm = m >> 11. */
  uint16_t bcmode[LJ_LAYOUT_BC_MAX];
  /* Metamethods in ORDER MM; names without "__"; gcroot[] slots of the MM names and base MTs. */
  uint8_t mm_max, mm_index, mm_call;
  uint8_t gcroot_mmname, gcroot_basemt, gcroot_max;
  const char *mm_names[LJ_LAYOUT_MM_MAX];
  /* GCproto flags and the ffid of Lua and C functions. */
  struct {
    uint8_t child, vararg, ffi, nojit, iloop;
  } proto;
  uint8_t ff_lua, ff_c;
};

extern const struct lj_layout lj_layouts[];
extern const size_t lj_layouts_count;

#endif
