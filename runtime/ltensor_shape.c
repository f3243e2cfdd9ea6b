/* Lua binding of the tensor methods for shapes and linear algebra (repeatTensor, chunk, split, tril, triu, diag, trace, mv, addmv, addr, bmm, baddbmm, addbmm, addcmul, addcdiv, range, linspace, ...); their core is
 * runtime/tensor_shape.c. Torch7's names and argument orders; where a Torch7 form would be read
 * two ways, or writes into a tensor blua does not take as a destination, it is refused with an
 * error rather than guessed. */
#include <math.h>
#include <string.h>

#include "lblua.h"

#define SHAPE_LEN 160
/* chunk and split make one view per piece (a userdata and a header, a few hundred bytes): more
 * than this many is refused rather than filling the memory with a list of views. */
#define MAX_PIECES ((int64_t)1 << 20)

static const char *shape(const blua_tensor *t, char *buf) { return blua_tensor_shape(t, buf, SHAPE_LEN); }

/* Integral values come back as Lua integers, as t:sum() does. */
static void push_value(lua_State *L, double v) {
  if (isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0)
    lua_pushinteger(L, (lua_Integer)v);
  else
    lua_pushnumber(L, v);
}

/* A tensor, open or closed (a closed one is refused when it is fetched). */
static int is_tensor(lua_State *L, int i) { return luaL_testudata(L, i, LBLUA_TENSOR_MT) != NULL; }

/* A number argument; strings and other values are errors naming what it is. */
static double checknum(lua_State *L, int arg, const char *what, const char *fname) {
  if (lua_type(L, arg) != LUA_TNUMBER)
    luaL_error(L, "bad %s in '%s': number expected, got %s", what, fname,
               is_tensor(L, arg) ? "a tensor" : luaL_typename(L, arg));
  return lua_tonumber(L, arg);
}

/* The kinds of the arguments from..top, "number, tensor, ...", for a refused form. */
static const char *kinds(lua_State *L, int from, int top, char *buf, size_t len) {
  buf[0] = 0;
  for (int i = from; i <= top; i++) {
    const char *k = is_tensor(L, i) ? "tensor" : luaL_typename(L, i);
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", i > from ? ", " : "", k);
  }
  return buf;
}

/* Reads t:name([beta,] [alpha,] u, v) (or without beta for addcmul): Torch7's numbers before
 * two tensors, one number being alpha (the scale of the product), two being beta, alpha. Returns
 * the argument of u. Torch7's forms with a source tensor before the scales are refused. */
static int scaled_pair(lua_State *L, int most_numbers, const char *fname, const char *usage, double *beta,
                       double *alpha) {
  int top = lua_gettop(L), nnum = 0;
  while (2 + nnum <= top && lua_type(L, 2 + nnum) == LUA_TNUMBER) nnum++;
  int u = 2 + nnum;
  if (nnum > most_numbers || top != u + 1 || !is_tensor(L, u) || !is_tensor(L, u + 1)) {
    char got[128];
    int source = top >= 4 && is_tensor(L, 2) && is_tensor(L, top) && is_tensor(L, top - 1);
    luaL_error(L, "t:%s: (%s) expected, got (%s)%s", fname, usage, kinds(L, 2, top, got, sizeof got),
               source ? "; Torch7's form with a source tensor first is not taken (copy it into t first)" : "");
  }
  *beta = 1.0;
  *alpha = nnum ? lua_tonumber(L, u - 1) : 1.0;
  if (nnum == 2) *beta = lua_tonumber(L, 2);
  return u;
}

/* ---- elementwise products ---- */

static int addc(lua_State *L, int divide, const char *fname) {
  lblua_checktensor(L, 1);
  double beta, v;
  int u = scaled_pair(L, 1, fname, "[v,] a, b", &beta, &v);
  blua_tensor *t = lblua_checktensor(L, 1), *a = lblua_readtensor(L, u), *b = lblua_readtensor(L, u + 1);
  blua_err err;
  lblua_check(L, blua_tensor_addcmul(t, v, a, b, divide, &err), fname, &err);
  lua_settop(L, 1);
  return 1;
}

static int t_addcmul(lua_State *L) { return addc(L, 0, "addcmul"); }
static int t_addcdiv(lua_State *L) { return addc(L, 1, "addcdiv"); }

/* ---- matrix-vector products ---- */

/* A new m·x from the tensors at arguments im and ix. */
static int new_mv(lua_State *L, int im, int ix) {
  blua_tensor *m = lblua_readtensor(L, im), *x = lblua_readtensor(L, ix);
  char sm[SHAPE_LEN], sx[SHAPE_LEN];
  if (m->dim != 2 || x->dim != 1 || m->size[1] != x->size[0])
    return luaL_error(L, "size mismatch in 'mv': %s * %s (a matrix times a vector)", shape(m, sm), shape(x, sx));
  blua_err err;
  blua_tensor *y = lblua_pushresult(L, blua_tensor_empty(1, m->size[0], 1, &err), "mv", &err);
  lblua_check(L, blua_addmv(y, 0.0f, 1.0f, m, x, &err), "mv", &err);
  return 1;
}

/* m:mv(x): a new m·x (as t:mm(u)); y:mv(m, x): m·x written into y (Torch7), returns y. */
static int t_mv(lua_State *L) {
  lblua_readtensor(L, 1);
  if (lua_isnone(L, 3)) return new_mv(L, 1, 2); /* (y:mv(m, nil), a nil by mistake: not m's product) */
  blua_tensor *y = lblua_checktensor(L, 1), *m = lblua_readtensor(L, 2), *x = lblua_readtensor(L, 3);
  char sy[SHAPE_LEN], sm[SHAPE_LEN], sx[SHAPE_LEN];
  if (m->dim != 2 || x->dim != 1 || y->dim != 1 || m->size[1] != x->size[0] || y->size[0] != m->size[0])
    return luaL_error(L, "size mismatch in 'mv': %s * %s -> %s (a matrix times a vector into a vector)", shape(m, sm),
                      shape(x, sx), shape(y, sy));
  blua_err err;
  lblua_check(L, blua_addmv(y, 0.0f, 1.0f, m, x, &err), "mv", &err);
  lua_settop(L, 1);
  return 1;
}

static int l_mv(lua_State *L) { return new_mv(L, 1, 2); }

/* y:addmv([beta,] [alpha,] m, x): y = beta·y + alpha·m·x; a:addr([beta,] [alpha,] x, y):
 * a = beta·a + alpha·x·yᵀ. One number is alpha, as in Torch7. */
typedef int (*scaled_product)(blua_tensor *t, float beta, float alpha, const blua_tensor *u, const blua_tensor *v,
                              blua_err *err);

static int scaled(lua_State *L, scaled_product product, const char *fname, const char *usage) {
  lblua_checktensor(L, 1);
  double beta, alpha;
  int u = scaled_pair(L, 2, fname, usage, &beta, &alpha);
  blua_tensor *t = lblua_checktensor(L, 1), *a = lblua_readtensor(L, u), *b = lblua_readtensor(L, u + 1);
  blua_err err;
  lblua_check(L, product(t, (float)beta, (float)alpha, a, b, &err), fname, &err);
  lua_settop(L, 1);
  return 1;
}

static int t_addmv(lua_State *L) { return scaled(L, blua_addmv, "addmv", "[beta,] [alpha,] m, x"); }
static int t_addr(lua_State *L) { return scaled(L, blua_addr, "addr", "[beta,] [alpha,] x, y"); }

/* ---- batched matrix products ---- */

/* A new a·b for each batch entry, from the 3-D tensors at arguments ia and ib. */
static int new_bmm(lua_State *L, int ia, int ib) {
  blua_tensor *a = lblua_readtensor(L, ia), *b = lblua_readtensor(L, ib);
  char sa[SHAPE_LEN], sb[SHAPE_LEN];
  if (a->dim != 3 || b->dim != 3 || a->size[0] != b->size[0] || a->size[2] != b->size[1])
    return luaL_error(L, "size mismatch in 'bmm': %s * %s (n x p x q * n x q x r expected)", shape(a, sa),
                      shape(b, sb));
  int64_t size[3] = {a->size[0], a->size[1], b->size[2]};
  blua_err err;
  blua_tensor *c = lblua_pushresult(L, blua_tensor_empty_nd(3, size, &err), "bmm", &err);
  lblua_check(L, blua_baddbmm(c, 0.0f, 1.0f, a, b, 0, &err), "bmm", &err);
  return 1;
}

/* a:bmm(b): a new batched product (as t:mm(u)); c:bmm(a, b): written into c (Torch7). */
static int t_bmm(lua_State *L) {
  lblua_readtensor(L, 1);
  if (lua_isnone(L, 3)) return new_bmm(L, 1, 2); /* (as t_mv) */
  blua_tensor *c = lblua_checktensor(L, 1), *a = lblua_readtensor(L, 2), *b = lblua_readtensor(L, 3);
  blua_err err;
  lblua_check(L, blua_baddbmm(c, 0.0f, 1.0f, a, b, 0, &err), "bmm", &err);
  lua_settop(L, 1);
  return 1;
}

static int l_bmm(lua_State *L) { return new_bmm(L, 1, 2); }

/* c:baddbmm([beta,] [alpha,] a, b): c[i] = beta·c[i] + alpha·a[i]·b[i]; c:addbmm(...): c =
 * beta·c + alpha·Σ a[i]·b[i]. One number is alpha, as in Torch7. */
static int baddbmm(lua_State *L, int sum, const char *fname) {
  lblua_checktensor(L, 1);
  double beta, alpha;
  int u = scaled_pair(L, 2, fname, "[beta,] [alpha,] a, b", &beta, &alpha);
  blua_tensor *c = lblua_checktensor(L, 1), *a = lblua_readtensor(L, u), *b = lblua_readtensor(L, u + 1);
  blua_err err;
  lblua_check(L, blua_baddbmm(c, (float)beta, (float)alpha, a, b, sum, &err), fname, &err);
  lua_settop(L, 1);
  return 1;
}

static int t_baddbmm(lua_State *L) { return baddbmm(L, 0, "baddbmm"); }
static int t_addbmm(lua_State *L) { return baddbmm(L, 1, "addbmm"); }

/* ---- sequences ---- */

static int l_range(lua_State *L) {
  double a = checknum(L, 1, "start", "range"), b = checknum(L, 2, "end", "range");
  double step = lua_isnoneornil(L, 3) ? 1.0 : checknum(L, 3, "step", "range");
  blua_err err;
  lblua_pushresult(L, blua_tensor_range(a, b, step, &err), "range", &err);
  return 1;
}

static int spaced(lua_State *L, int log10, const char *fname) {
  double a = checknum(L, 1, "start", fname), b = checknum(L, 2, "end", fname);
  int64_t n = lua_isnoneornil(L, 3) ? 100 : lblua_checksize(L, 3, fname);
  blua_err err;
  lblua_pushresult(L, blua_tensor_linspace(a, b, n, log10, &err), fname, &err);
  return 1;
}

static int l_linspace(lua_State *L) { return spaced(L, 0, "linspace"); }
static int l_logspace(lua_State *L) { return spaced(L, 1, "logspace"); }

/* ---- diagonals and triangles ---- */

/* The diagonal number k at arg (default 0); a tensor there is Torch7's y:name(x) form. */
static int64_t checkdiagonal(lua_State *L, int arg, const char *fname, const char *who) {
  if (lua_isnoneornil(L, arg)) return 0;
  if (is_tensor(L, arg))
    luaL_error(L, "%s: ([k]) expected, got a tensor (Torch7's y:%s(x) form is not taken: x:%s() makes a new tensor)",
               who, fname, fname);
  return (int64_t)lblua_checkint(L, arg, "diagonal", fname);
}

static int diag(lua_State *L, int it, int ik, const char *who) {
  lblua_readtensor(L, it);
  int64_t k = checkdiagonal(L, ik, "diag", who);
  blua_tensor *t = lblua_readtensor(L, it);
  blua_err err;
  lblua_pushresult(L, blua_tensor_diag(t, k, &err), "diag", &err);
  return 1;
}

static int t_diag(lua_State *L) { return diag(L, 1, 2, "t:diag"); }
static int l_diag(lua_State *L) { return diag(L, 1, 2, "blua.diag"); }

static int t_trace(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  double sum;
  blua_err err;
  lblua_check(L, blua_tensor_trace(t, &sum, &err), "trace", &err);
  push_value(L, sum);
  return 1;
}

static int tri(lua_State *L, int upper, const char *fname, const char *who) {
  lblua_readtensor(L, 1);
  int64_t k = checkdiagonal(L, 2, fname, who);
  blua_tensor *t = lblua_readtensor(L, 1);
  blua_err err;
  lblua_pushresult(L, blua_tensor_tri(t, k, upper, &err), fname, &err);
  return 1;
}

static int t_tril(lua_State *L) { return tri(L, 0, "tril", "t:tril"); }
static int t_triu(lua_State *L) { return tri(L, 1, "triu", "t:triu"); }

/* ---- tiling and pieces ---- */

/* The counts n1, n2, ... from the arguments after self or from one table {n1, n2, ...}, each
 * in 0..BLUA_MAX_ELEMENTS; returns how many. Errors call them what (all) and unit (each). */
static int read_counts(lua_State *L, int64_t *counts, const char *what, const char *unit, const char *fname) {
  int top = lua_gettop(L), from_table = lua_istable(L, 2);
  lua_Integer n = from_table ? (lua_Integer)lua_rawlen(L, 2) : top - 1;
  if (from_table && top > 2)
    luaL_error(L, "t:%s: (n1, n2, ... | {n1, n2, ...}) expected, got a table and %d more argument%s", fname, top - 2,
               top > 3 ? "s" : "");
  if (n < 1 || n > BLUA_MAX_DIM)
    luaL_error(L, "bad %s in '%s': %I %s given (1..%d)", what, fname, (LUAI_UACINT)n, unit, BLUA_MAX_DIM);
  for (int d = 0; d < (int)n; d++) {
    int arg = 2 + d;
    if (from_table) {
      lua_rawgeti(L, 2, d + 1);
      arg = lua_gettop(L);
    }
    counts[d] = lblua_checksize(L, arg, fname);
    if (from_table) lua_pop(L, 1);
  }
  return (int)n;
}

/* t:repeatTensor(n1, n2, ...) or t:repeatTensor{n1, n2, ...}. */
static int t_repeatTensor(lua_State *L) {
  lblua_readtensor(L, 1);
  int64_t reps[BLUA_MAX_DIM];
  int n = read_counts(L, reps, "repetitions", "counts", "repeatTensor");
  blua_tensor *t = lblua_readtensor(L, 1); /* (fetched again: reading a table may run Lua code) */
  blua_err err;
  lblua_pushresult(L, blua_tensor_repeat(t, n, reps, &err), "repeatTensor", &err);
  return 1;
}

/* t:expand(n1, n2, ...) or t:expand{n1, n2, ...}: a view repeating t's size-1 dimensions by a
 * step of 0 (blua_tensor_expand); it may be read but not written. */
static int t_expand(lua_State *L) {
  lblua_readtensor(L, 1);
  int64_t size[BLUA_MAX_DIM];
  int n = read_counts(L, size, "sizes", "sizes", "expand");
  blua_tensor *t = lblua_readtensor(L, 1);
  blua_err err;
  lblua_pushresult(L, blua_tensor_expand(t, n, size, &err), "expand", &err);
  return 1;
}

/* t:expandAs(u): t:expand with u's sizes. */
static int t_expandAs(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1), *u = lblua_readtensor(L, 2);
  blua_err err;
  lblua_pushresult(L, blua_tensor_expand(t, u->dim, u->size, &err), "expandAs", &err);
  return 1;
}

/* A list of views of t along d, each `piece` long (the last one shorter). */
static int pieces(lua_State *L, int d, int64_t piece, const char *fname) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int64_t size = t->size[d], count = size == 0 ? 0 : (size - 1) / piece + 1;
  char s[SHAPE_LEN];
  if (count > MAX_PIECES)
    luaL_error(L, "too many pieces in '%s': %I of dimension %d of %s (at most 2^20)", fname, (LUAI_UACINT)count, d + 1,
               shape(t, s));
  lua_createtable(L, (int)count, 0);
  for (int64_t k = 0; k < count; k++) {
    t = lblua_readtensor(L, 1); /* (fetched again: making the list and the views allocates) */
    int64_t first = k * piece, len = size - first < piece ? size - first : piece;
    blua_err err;
    lblua_pushresult(L, blua_tensor_narrow(t, d, first, len, &err), fname, &err);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
  return 1;
}

/* t:split(size [, d]) and t:chunk(n [, d]): d defaults to 1, as in Torch7; chunk cuts pieces
 * of ceil(size(d) / n), so it may give fewer than n. */
static int t_split(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  lua_Integer piece = lblua_checkint(L, 2, "piece size", "split");
  int d = lua_isnoneornil(L, 3) ? 0 : lblua_checkdim(L, 3, t, "split");
  if (piece < 1) luaL_error(L, "bad piece size in 'split': %I (1 or more)", (LUAI_UACINT)piece);
  if (piece > t->size[d]) piece = t->size[d] ? t->size[d] : 1;
  return pieces(L, d, (int64_t)piece, "split");
}

static int t_chunk(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  lua_Integer n = lblua_checkint(L, 2, "chunk count", "chunk");
  int d = lua_isnoneornil(L, 3) ? 0 : lblua_checkdim(L, 3, t, "chunk");
  if (n < 1) luaL_error(L, "bad chunk count in 'chunk': %I (1 or more)", (LUAI_UACINT)n);
  int64_t size = t->size[d];
  int64_t piece = size == 0 ? 1 : (n >= size ? 1 : (size - 1) / (int64_t)n + 1);
  return pieces(L, d, piece, "chunk");
}

/* ---- comparisons ---- */

static int t_equal(lua_State *L) {
  blua_tensor *a = lblua_readtensor(L, 1), *b = lblua_readtensor(L, 2);
  lua_pushboolean(L, blua_tensor_equal(a, b));
  return 1;
}

static int t_isSameSizeAs(lua_State *L) {
  blua_tensor *a = lblua_readtensor(L, 1), *b = lblua_readtensor(L, 2);
  lua_pushboolean(L, blua_tensor_same_shape(a, b));
  return 1;
}

const lblua_method lblua_shape_methods[] = {
    {"addcmul", t_addcmul, 3, "[v,] a, b"},
    {"addcdiv", t_addcdiv, 3, "[v,] a, b"},
    {"mv", t_mv, 2, "x | m, x"},
    {"addmv", t_addmv, 4, "[beta,] [alpha,] m, x"},
    {"addr", t_addr, 4, "[beta,] [alpha,] x, y"},
    {"bmm", t_bmm, 2, "b | a, b"},
    {"baddbmm", t_baddbmm, 4, "[beta,] [alpha,] a, b"},
    {"addbmm", t_addbmm, 4, "[beta,] [alpha,] a, b"},
    {"diag", t_diag, 1, "[k]"},
    {"trace", t_trace, 0, ""},
    {"tril", t_tril, 1, "[k]"},
    {"triu", t_triu, 1, "[k]"},
    {"repeatTensor", t_repeatTensor, BLUA_MAX_DIM, "n1, n2, ... | {n1, n2, ...}"},
    {"expand", t_expand, BLUA_MAX_DIM, "n1, n2, ... | {n1, n2, ...}"},
    {"expandAs", t_expandAs, 1, "u"},
    {"split", t_split, 2, "size [, d]"},
    {"chunk", t_chunk, 2, "n [, d]"},
    {"equal", t_equal, 1, "u"},
    {"isSameSizeAs", t_isSameSizeAs, 1, "u"},
    {NULL, NULL, 0, NULL}};

const lblua_method lblua_shape_funcs[] = {
    {"mv", l_mv, 2, "m, x"},
    {"bmm", l_bmm, 2, "a, b"},
    {"range", l_range, 3, "a, b [, step]"},
    {"linspace", l_linspace, 3, "a, b [, n]"},
    {"logspace", l_logspace, 3, "a, b [, n]"},
    {"diag", l_diag, 2, "t [, k]"},
    {NULL, NULL, 0, NULL}};
