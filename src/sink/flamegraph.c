/* Flame graph: one self-contained SVG with hover details, click-to-zoom, search with
 * highlight and matched share, reset; colours by frame kind. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmstack/json.h"
#include "vmstack/profile.h"

#define WIDTH 1200
#define PAD 10
#define FRAME_H 16
#define TOP 60          /* title area */
#define BOTTOM 30       /* details line */
#define MAX_NODES 2000000

struct node {
  char *name;
  uint8_t kind;
  uint64_t count, count2;    /* count2: objects, or the baseline's bytes (meta.second) */
  uint32_t child, sibling;   /* indices + 1; 0 = none */
};

struct tree {
  struct node *v;
  size_t n, cap;
  size_t depth;
};

static int64_t new_node(struct tree *t, const char *name, uint8_t kind)
{
  if (t->n >= MAX_NODES)
    return -E2BIG;
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 1024;
    struct node *nv = realloc(t->v, nc * sizeof *nv);
    if (!nv)
      return -ENOMEM;
    t->v = nv;
    t->cap = nc;
  }
  char *d = strdup(name);
  if (!d)
    return -ENOMEM;
  t->v[t->n] = (struct node){ d, kind, 0, 0, 0, 0 };
  return (int64_t)t->n++;
}

static int add(void *arg, const char *const *names, const uint8_t *kinds, size_t n,
               uint64_t count, uint64_t count2)
{
  struct tree *t = arg;
  size_t cur = 0;   /* the root */
  t->v[0].count += count;
  t->v[0].count2 += count2;
  if (n > t->depth)
    t->depth = n;
  for (size_t i = 0; i < n; i++) {
    uint32_t c = t->v[cur].child;
    while (c && (t->v[c - 1].kind != kinds[i] || strcmp(t->v[c - 1].name, names[i])))
      c = t->v[c - 1].sibling;
    if (!c) {
      int64_t id = new_node(t, names[i], kinds[i]);
      if (id < 0)
        return (int)id;
      t->v[id].sibling = t->v[cur].child;
      t->v[cur].child = (uint32_t)id + 1;
      c = (uint32_t)id + 1;
    }
    cur = c - 1;
    t->v[cur].count += count;
    t->v[cur].count2 += count2;
  }
  return 0;
}

/* Text for XML: escaped, control bytes dropped, invalid UTF-8 (names from a target can
 * be any bytes, and cut anywhere) as U+FFFD. */
static void xml(FILE *f, const char *s)
{
  for (; *s; s++) {
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    default:
      if ((unsigned char)*s >= 0x80) {
        size_t n = utf8_len((const unsigned char *)s);
        if (n) {
          fwrite(s, 1, n, f);
          s += n - 1;
        } else {
          fputs("&#xFFFD;", f);
        }
      } else if ((unsigned char)*s >= 0x20) {
        putc(*s, f);
      }
    }
  }
}

/* Colour by kind, varied by name so neighbours differ. */
static void colour(const struct node *nd, char *buf, size_t cap)
{
  unsigned h = 2166136261u;
  for (const char *s = nd->name; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  unsigned a = h % 55, b = (h >> 8) % 80;
  switch (nd->kind) {
  case FK_FUNCTION: snprintf(buf, cap, "rgb(%u,%u,%u)", 60 + a, 170 + b / 2, 60 + a); break;
  case FK_JIT: snprintf(buf, cap, "rgb(%u,%u,%u)", 60 + a, 190 + b / 3, 200 + a / 2); break;
  case FK_THREAD: snprintf(buf, cap, "rgb(%u,%u,%u)", 160 + a, 160 + a, 170 + a); break;
  case FK_PROCESS: snprintf(buf, cap, "rgb(%u,%u,%u)", 140 + a, 150 + a, 190 + a); break;
  default: snprintf(buf, cap, "rgb(%u,%u,%u)", 200 + a, 80 + b, 40 + a / 2);
  }
}

struct emit {
  FILE *f;
  const struct tree *t;
  double total;
  size_t height;
  const char *unit;        /* "samples" or "bytes" */
  int second;              /* profile_meta.second */
  double maxdelta;         /* a comparison: the largest growth or shrink of a frame */
};

/* A comparison's colour (flamegraph.pl's differential graphs): growth red, shrink blue,
 * as deep as the change is large against the largest change; unchanged white. */
static void diff_colour(const struct emit *e, const struct node *nd, char *buf, size_t cap)
{
  double d = (double)nd->count - (double)nd->count2;
  unsigned v = (unsigned)(225 - 225 * (d < 0 ? -d : d) / (e->maxdelta > 0 ? e->maxdelta : 1));
  if (d > 0)
    snprintf(buf, cap, "rgb(255,%u,%u)", v, v);
  else if (d < 0)
    snprintf(buf, cap, "rgb(%u,%u,255)", v, v);
  else
    snprintf(buf, cap, "rgb(225,225,225)");
}

/* Bytes in the largest binary unit that keeps the figure at 1 or more ("1.2 MiB"). */
static void human(char *buf, size_t cap, double v)
{
  static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  size_t i = 0;
  double a = v < 0 ? -v : v;
  while (a >= 1024 && i + 1 < sizeof u / sizeof *u)
    a /= 1024, v /= 1024, i++;
  snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void details(const struct emit *e, const struct node *nd, double w)
{
  char a[32], b[32], c[32];
  switch (e->second) {
  case PROFILE_SECOND_OBJECTS:
    human(a, sizeof a, (double)nd->count);
    fprintf(e->f, " (%s, %" PRIu64 " %s, %" PRIu64 " objects, %.2f%%)", a, nd->count, e->unit,
            nd->count2, 100.0 * w);
    break;
  case PROFILE_SECOND_BEFORE: {
    double d = (double)nd->count - (double)nd->count2;
    human(a, sizeof a, (double)nd->count);
    human(b, sizeof b, (double)nd->count2);
    human(c, sizeof c, d);
    fprintf(e->f, " (%s, was %s: %s%s", a, b, d > 0 ? "+" : "", c);
    if (nd->count2)
      fprintf(e->f, ", %+.1f%%)", 100.0 * d / (double)nd->count2);
    else
      fputs(", new)", e->f);
    break;
  }
  default:
    fprintf(e->f, " (%" PRIu64 " %s, %.2f%%)", nd->count, e->unit, 100.0 * w);
  }
}

static void emit_node(struct emit *e, size_t id, double x, size_t depth)
{
  const struct node *nd = &e->t->v[id];
  double w = nd->count / e->total;
  if (depth > 0) {
    char fill[32];
    if (e->second == PROFILE_SECOND_BEFORE)
      diff_colour(e, nd, fill, sizeof fill);
    else
      colour(nd, fill, sizeof fill);
    double px = PAD + x * (WIDTH - 2 * PAD), pw = w * (WIDTH - 2 * PAD);
    double y = (double)e->height - BOTTOM - (double)depth * FRAME_H;
    fprintf(e->f, "<g class=\"f\" data-x=\"%.9f\" data-w=\"%.9f\"><title>", x, w);
    xml(e->f, nd->name);
    details(e, nd, w);
    fprintf(e->f, "</title><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" "
            "fill=\"%s\" data-c=\"%s\" rx=\"2\"/><text x=\"%.1f\" y=\"%.1f\"></text></g>\n",
            px, y, pw, FRAME_H - 1, fill, fill, px + 3, y + 11.5);
  }
  /* children in name order, left to right */
  size_t nk = 0;
  for (uint32_t c = nd->child; c; c = e->t->v[c - 1].sibling)
    nk++;
  size_t *kids = malloc((nk ? nk : 1) * sizeof *kids);
  if (!kids)
    return;
  nk = 0;
  for (uint32_t c = nd->child; c; c = e->t->v[c - 1].sibling)
    kids[nk++] = c - 1;
  for (size_t i = 1; i < nk; i++)
    for (size_t j = i; j > 0 && strcmp(e->t->v[kids[j - 1]].name, e->t->v[kids[j]].name) > 0; j--) {
      size_t tmp = kids[j];
      kids[j] = kids[j - 1];
      kids[j - 1] = tmp;
    }
  double cx = x;
  for (size_t i = 0; i < nk; i++) {
    emit_node(e, kids[i], cx, depth + 1);
    cx += e->t->v[kids[i]].count / e->total;
  }
  free(kids);
}

static const char script[] =
  "var W=" "1200" ",PAD=10,frames,details,matchedtxt,resetbtn,zx=0,zw=1,term=null;\n"
  "function init(evt){frames=document.getElementById('frames').children;\n"
  " details=document.getElementById('details');matchedtxt=document.getElementById('matched');\n"
  " resetbtn=document.getElementById('reset');\n"
  " for(var i=0;i<frames.length;i++){var g=frames[i];\n"
  "  g.onclick=function(){zoom(this)};\n"
  "  g.onmouseover=function(){details.textContent=this.querySelector('title').textContent};\n"
  "  g.onmouseout=function(){details.textContent=' '};}\n"
  " update();\n"
  /* a URL fragment can zoom or search at load: file.svg#zoom=REGEX, #search=REGEX */
  " var h=decodeURIComponent(location.hash.substring(1)),m;\n"
  " if((m=/^zoom=(.*)$/.exec(h))){var re=new RegExp(m[1]),best=null;\n"
  "  for(var i=0;i<frames.length;i++)if(re.test(name(frames[i]))&&\n"
  "   (!best||+frames[i].dataset.w>+best.dataset.w))best=frames[i];\n"
  "  if(best)zoom(best);}\n"
  " else if((m=/^search=(.*)$/.exec(h)))search(m[1]);}\n"
  "function fit(t,w){var n=Math.floor((w-6)/7);if(n<3)return '';\n"
  " return t.length<=n?t:t.substring(0,n-2)+'..';}\n"
  "function name(g){var t=g.querySelector('title').textContent;"
  "return t.substring(0,t.lastIndexOf(' ('));}\n"
  "function update(){var a=zx,b=zx+zw;\n"
  " for(var i=0;i<frames.length;i++){var g=frames[i],x=+g.dataset.x,w=+g.dataset.w;\n"
  "  var r=g.querySelector('rect'),tx=g.querySelector('text');\n"
  "  if(x+w<=a+1e-7||x>=b-1e-7){g.style.display='none';continue;}\n"
  "  g.style.display='';var l=Math.max(x,a),h=Math.min(x+w,b);\n"
  "  var px=PAD+(l-a)/(b-a)*(W-2*PAD),pw=(h-l)/(b-a)*(W-2*PAD);\n"
  "  r.setAttribute('x',px);r.setAttribute('width',pw);tx.setAttribute('x',px+3);\n"
  "  tx.textContent=fit(name(g),pw);}\n"
  " resetbtn.style.display=zw<1?'':'none';}\n"
  "function zoom(g){zx=+g.dataset.x;zw=+g.dataset.w;update();}\n"
  "function unzoom(){zx=0;zw=1;update();}\n"
  "function search_prompt(){var t=prompt('Search for (regular expression):',term||'');\n"
  " if(t===null)return;search(t);}\n"
  "function search(t){term=t;var re=null;try{re=t?new RegExp(t):null}catch(e){re=null}\n"
  " var spans=[];\n"
  " for(var i=0;i<frames.length;i++){var g=frames[i],r=g.querySelector('rect');\n"
  "  if(re&&re.test(name(g))){r.setAttribute('fill','rgb(230,0,230)');\n"
  "   spans.push([+g.dataset.x,+g.dataset.x+(+g.dataset.w)]);}\n"
  "  else r.setAttribute('fill',r.dataset.c);}\n"
  " spans.sort(function(p,q){return p[0]-q[0]});var sum=0,end=-1;\n"
  " for(var j=0;j<spans.length;j++){var s=Math.max(spans[j][0],end);\n"
  "  if(spans[j][1]>s)sum+=spans[j][1]-s;end=Math.max(end,spans[j][1]);}\n"
  " matchedtxt.textContent=re?'Matched: '+(100*sum).toFixed(1)+'%':' ';}\n"
  "function reset_all(){search('');unzoom();}\n";

int output_flamegraph(FILE *f, struct profile *p, const struct profile_meta *m)
{
  const char *title = m->title, *subtitle = m->subtitle;
  struct tree t = { 0 };
  int r = (int)new_node(&t, "all", FK_THREAD);
  if (r >= 0)
    r = profile_each(p, m->with_threads, add, &t);
  if (r < 0)
    goto out;
  struct emit e = { f, &t, t.v[0].count ? (double)t.v[0].count : 1.0,
                    TOP + BOTTOM + (t.depth + 1) * FRAME_H, m->bytes ? "bytes" : "samples",
                    m->second, 0 };
  for (size_t i = 1; i < t.n; i++) {
    double d = (double)t.v[i].count - (double)t.v[i].count2;
    if ((d < 0 ? -d : d) > e.maxdelta)
      e.maxdelta = d < 0 ? -d : d;
  }
  fprintf(f, "<?xml version=\"1.0\" standalone=\"no\"?>\n"
          "<svg version=\"1.1\" width=\"%d\" height=\"%zu\" viewBox=\"0 0 %d %zu\" "
          "onload=\"init(evt)\" xmlns=\"http://www.w3.org/2000/svg\">\n"
          "<style>text{font-family:monospace;font-size:12px;fill:#000}"
          ".f:hover rect{stroke:#000;stroke-width:0.5;cursor:pointer}"
          ".btn{cursor:pointer;fill:#33c}</style>\n"
          "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n"
          "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%zu\" fill=\"#f8f8f4\"/>\n"
          "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" style=\"font-size:17px\">",
          WIDTH, e.height, WIDTH, e.height, script, WIDTH, e.height, WIDTH / 2);
  xml(f, title);
  fprintf(f, "</text>\n<text x=\"%d\" y=\"44\" text-anchor=\"middle\">", WIDTH / 2);
  xml(f, subtitle);
  fprintf(f, "</text>\n<text id=\"reset\" class=\"btn\" x=\"%d\" y=\"24\" onclick=\"unzoom()\" "
          "style=\"display:none\">Reset zoom</text>\n"
          "<text id=\"search\" class=\"btn\" x=\"%d\" y=\"24\" text-anchor=\"end\" "
          "onclick=\"search_prompt()\">Search</text>\n"
          "<text id=\"clear\" class=\"btn\" x=\"%d\" y=\"44\" text-anchor=\"end\" "
          "onclick=\"reset_all()\">Reset</text>\n"
          "<text id=\"details\" x=\"%d\" y=\"%zu\"> </text>\n"
          "<text id=\"matched\" x=\"%d\" y=\"%zu\" text-anchor=\"end\"> </text>\n"
          "<g id=\"frames\">\n", PAD, WIDTH - PAD, WIDTH - PAD, PAD, e.height - 10,
          WIDTH - PAD, e.height - 10);
  emit_node(&e, 0, 0.0, 0);
  fputs("</g>\n</svg>\n", f);
  r = ferror(f) ? -EIO : 0;
out:
  for (size_t i = 0; i < t.n; i++)
    free(t.v[i].name);
  free(t.v);
  return r;
}
