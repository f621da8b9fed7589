/* Consistency of every pl_layouts[] entry: names, flavours and versions agree, each offset lies
 * inside its structure, and the constants are the ones a walker can rely on. Catches a table
 * edited by hand or a generator that read the wrong field; layout_check.sh compares the 5.36
 * entries with real builds.
 */
#include <stdio.h>
#include <string.h>

#include "pl_layout.h"

static int fails;

#define CHECK(l, cond)                                                               \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      printf("FAIL: %s: %s\n", (l)->name, #cond);                                    \
      fails++;                                                                       \
    }                                                                                \
  } while (0)

/* A field of W bytes at offset F lies inside a structure of S bytes. */
#define INSIDE(l, f, w, s) CHECK(l, (unsigned)(f) + (w) <= (unsigned)(s))

static void check(const struct pl_layout *l)
{
  char want[64];

  snprintf(want, sizeof(want), "perl-5.%u-%s", l->version, l->multiplicity ? "thread" : "nothread");
  CHECK(l, strcmp(l->name, want) == 0);
  CHECK(l, l->source && strstr(l->source, "Configure"));
  CHECK(l, l->version >= 32 && l->version % 2 == 0);
  CHECK(l, !!strstr(l->source, "-Dusethreads") == l->multiplicity);

  if (l->multiplicity) {
    CHECK(l, l->interp_size > 0x400);
    INSIDE(l, l->interp.curcop, 8, l->interp_size);
    INSIDE(l, l->interp.curstackinfo, 8, l->interp_size);
    INSIDE(l, l->interp.curstash, 8, l->interp_size);
    INSIDE(l, l->interp.defstash, 8, l->interp_size);
    INSIDE(l, l->interp.compiling, l->cop.size, l->interp_size);
    INSIDE(l, l->interp.main_cv, 8, l->interp_size);
    INSIDE(l, l->interp.sv_count, 8, l->interp_size);
    INSIDE(l, l->interp.sv_root, 8, l->interp_size);
    INSIDE(l, l->interp.sv_arenaroot, 8, l->interp_size);
    INSIDE(l, l->interp.strtab, 8, l->interp_size);
    CHECK(l, l->interp.curcop != l->interp.curstackinfo);
  } else {
    CHECK(l, l->interp_size == 0);
    CHECK(l, l->interp.curcop == 0 && l->interp.curstackinfo == 0 && l->interp.sv_arenaroot == 0);
  }

  INSIDE(l, l->si.stack, 8, l->si.size);
  INSIDE(l, l->si.cxstack, 8, l->si.size);
  INSIDE(l, l->si.prev, 8, l->si.size);
  INSIDE(l, l->si.next, 8, l->si.size);
  INSIDE(l, l->si.cxix, 4, l->si.size);
  INSIDE(l, l->si.cxmax, 4, l->si.size);
  INSIDE(l, l->si.type, 4, l->si.size);

  CHECK(l, l->cx.type == 0);
  INSIDE(l, l->cx.u16, 2, l->cx.size);
  INSIDE(l, l->cx.oldcop, 8, l->cx.size);
  INSIDE(l, l->cx.sub_cv, 8, l->cx.size);
  INSIDE(l, l->cx.sub_retop, 8, l->cx.size);
  INSIDE(l, l->cx.format_cv, 8, l->cx.size);
  INSIDE(l, l->cx.eval_old_namesv, 8, l->cx.size);
  INSIDE(l, l->cx.eval_cur_text, 8, l->cx.size);
  INSIDE(l, l->cx.eval_cv, 8, l->cx.size);
  INSIDE(l, l->cx.eval_retop, 8, l->cx.size);
  CHECK(l, l->cx.oldcop < l->cx.sub_retop);
  CHECK(l, l->cx.sub_cv == l->cx.format_cv && l->cx.sub_retop == l->cx.eval_retop);

  INSIDE(l, l->cop.line, 4, l->cop.size);
  INSIDE(l, l->cop.file, 8, l->cop.size);
  CHECK(l, l->cop.line >= l->op.type_word + 2);
  CHECK(l, l->op.type_word >= 24);  /* after op_next, op_sibparent, op_ppaddr */

  CHECK(l, l->sv.any == 0 && l->sv.size == 24);
  INSIDE(l, l->sv.refcnt, 4, l->sv.size);
  INSIDE(l, l->sv.flags, 4, l->sv.size);
  INSIDE(l, l->sv.u, 8, l->sv.size);

  INSIDE(l, l->xcv.stash, 8, l->xcv.size);
  INSIDE(l, l->xcv.start, 8, l->xcv.size);
  INSIDE(l, l->xcv.root, 8, l->xcv.size);
  INSIDE(l, l->xcv.gv, 8, l->xcv.size);
  INSIDE(l, l->xcv.file, 8, l->xcv.size);
  INSIDE(l, l->xcv.padlist, 8, l->xcv.size);
  INSIDE(l, l->xcv.outside, 8, l->xcv.size);
  INSIDE(l, l->xcv.flags, 4, l->xcv.size);
  INSIDE(l, l->xcv.depth, 4, l->xcv.size);
  CHECK(l, l->xgv.namehek != l->xgv.stash && l->xgv.namehek >= 0x10);
  CHECK(l, l->gp.sv == 0 && l->gp.cv > l->gp.sv && l->gp.egv > l->gp.cv &&
	   l->gp.file_hek > l->gp.egv);

  CHECK(l, l->xhv.aux_in_body == (l->version >= 36));
  CHECK(l, l->xhv.aux_in_body ? l->xhv.aux > l->xhv.max : l->xhv.aux == 0);
  CHECK(l, l->xhv.max > l->xhv.keys);
  CHECK(l, l->hvaux.name_u == 0 && l->hvaux.name_count > 0);
  CHECK(l, l->hek.hash == 0 && l->hek.len == 4 && l->hek.key == 8);

  CHECK(l, l->svt.pvgv == 9 && l->svt.pvhv == 12 && l->svt.pvcv == 13 && l->svt.mask == 0xff);
  CHECK(l, l->svpgv_gp == 0x8000 && l->svf_ook == 0x02000000);
  CHECK(l, l->cvf.isxsub == 0x8 && l->cvf.anon == 0x80 && l->cvf.named == 0x8000 &&
	   l->cvf.lexical == 0x10000);
  CHECK(l, l->cxt.mask == 0xf && l->cxt.null == 0 && l->cxt.sub == 9 && l->cxt.format == 10 &&
	   l->cxt.eval == 11 && l->cxt.sub_re_fake == 0x80 && l->cxt.evalblock == 0x40);
  CHECK(l, l->si_type.main == 1 && l->si_type.sort == 3 && l->si_type.require == 9 &&
	   l->si_type.multicall == 10);
  CHECK(l, l->opn.dbstate == l->opn.nextstate + 1 && l->opn.entereval > l->opn.dbstate);
}

int main(void)
{
  int n = 0, i, j;

  for (i = 0; pl_layouts[i]; i++) {
    check(pl_layouts[i]);
    for (j = 0; j < i; j++)
      if (strcmp(pl_layouts[i]->name, pl_layouts[j]->name) == 0) {
	printf("FAIL: %s twice\n", pl_layouts[i]->name);
	fails++;
      }
    n++;
  }
  if (n == 0) {
    printf("FAIL: pl_layouts[] is empty\n");
    fails++;
  }
  printf("%d layouts, %d failed check(s)\n", n, fails);
  return fails ? 1 : 0;
}
