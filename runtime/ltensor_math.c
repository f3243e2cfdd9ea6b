/* Lua binding of the tensor methods for elementwise maps and statistics (sin, cos, fmod,
 * remainder, frac, atan2, lerp, cumprod, dist, renorm, median, kthvalue, mode, ...); their core
 * is runtime/tensor_math.c. The maps work in place and return self, as t:exp() does. */
#include <math.h>
#include <string.h>

#include "blua/tensor_math.h"
#include "lblua.h"

#define SHAPE_LEN 160

static const char *shape(const blua_tensor *t, char *buf) { return blua_tensor_shape(t, buf, SHAPE_LEN); }

/* The number argument at arg, named `what` in the error ("bad w in 'lerp': number expected,
 * got string"); def when absent or nil if has_def. */
static double number_arg(lua_State *L, int arg, const char *what, int has_def, double def, const char *fname) {
  if (has_def && lua_isnoneornil(L, arg)) return def;
  int isnum;
  double v = lua_tonumberx(L, arg, &isnum);
  if (!isnum) luaL_error(L, "bad %s in '%s': number expected, got %s", what, fname, luaL_typename(L, arg));
  return v;
}

/* ---- elementwise maps, in place ---- */

static int map(lua_State *L, blua_math_op op, float a, const char *fname) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  lblua_check(L, blua_tensor_math_map(t, op, a, &err), fname, &err);
  lua_settop(L, 1);
  return 1;
}

#define UNARY(name, op) \
  static int t_##name(lua_State *L) { return map(L, op, 0.0f, #name); }
UNARY(sin, BLUA_MATH_SIN)
UNARY(cos, BLUA_MATH_COS)
UNARY(tan, BLUA_MATH_TAN)
UNARY(asin, BLUA_MATH_ASIN)
UNARY(acos, BLUA_MATH_ACOS)
UNARY(atan, BLUA_MATH_ATAN)
UNARY(sinh, BLUA_MATH_SINH)
UNARY(cosh, BLUA_MATH_COSH)
UNARY(frac, BLUA_MATH_FRAC)
UNARY(cinv, BLUA_MATH_CINV)
UNARY(reciprocal, BLUA_MATH_CINV)

/* The divisor is a number, rounded to float as the tensor's entries are (Torch7 converts it
 * to the tensor's type too). */
static int t_fmod(lua_State *L) { return map(L, BLUA_MATH_FMOD, (float)number_arg(L, 2, "a", 0, 0, "fmod"), "fmod"); }
static int t_remainder(lua_State *L) {
  return map(L, BLUA_MATH_REMAINDER, (float)number_arg(L, 2, "a", 0, 0, "remainder"), "remainder");
}

/* t:atan2(u): t = atan2(t, u), in place. */
static int t_atan2(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1), *u = lblua_readsource(L, 2, t, "atan2");
  blua_err err;
  lblua_check(L, blua_tensor_atan2(t, u, &err), "atan2", &err);
  lua_settop(L, 1);
  return 1;
}

/* t:lerp(u, w): t = t + w (u - t), in place. */
static int t_lerp(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1), *u = lblua_readsource(L, 2, t, "lerp");
  double w = number_arg(L, 3, "w", 0, 0, "lerp");
  blua_err err;
  lblua_check(L, blua_tensor_lerp(t, u, w, &err), "lerp", &err);
  lua_settop(L, 1);
  return 1;
}

/* t:csub(u | a): Torch7's name for t:sub, in place. */
static int t_csub(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  if (lua_type(L, 2) == LUA_TNUMBER)
    lblua_check(L, blua_tensor_affine(t, t, 1.0f, -(float)lua_tonumber(L, 2), &err), "csub", &err);
  else
    lblua_check(L, blua_tensor_add(t, t, -1.0f, lblua_readsource(L, 2, t, "csub"), &err), "csub", &err);
  lua_settop(L, 1);
  return 1;
}

/* ---- along a dimension, norms ---- */

/* A new zero-filled tensor of t's shape with size n at d, pushed. */
static blua_tensor *push_sized(lua_State *L, const blua_tensor *t, int d, int64_t n, const char *fname) {
  int64_t size[BLUA_MAX_DIM];
  memcpy(size, t->size, sizeof size);
  size[d] = n;
  blua_err err;
  return lblua_pushresult(L, blua_tensor_new_nd(t->dim, size, &err), fname, &err);
}

/* t:cumprod(d): a new tensor of t's shape. */
static int t_cumprod(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int d = lblua_checkdim(L, 2, t, "cumprod");
  blua_tensor *r = push_sized(L, t, d, t->size[d], "cumprod");
  blua_err err;
  lblua_check(L, blua_tensor_cumprod(r, t, d, &err), "cumprod", &err);
  return 1;
}

/* t:dist(u [, p]): the p-norm of t - u, a number. */
static int t_dist(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1), *u = lblua_readtensor(L, 2);
  double p = number_arg(L, 3, "p", 1, 2.0, "dist");
  if (!(p >= 0)) return luaL_error(L, "bad p in 'dist': %f (must be >= 0)", p);
  blua_err err;
  double r = 0.0;
  lblua_check(L, blua_tensor_dist(t, u, p, &r, &err), "dist", &err);
  lua_pushnumber(L, r);
  return 1;
}

/* t:renorm(p, d, maxnorm): in place. */
static int t_renorm(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  double p = number_arg(L, 2, "p", 0, 0, "renorm");
  char s[SHAPE_LEN];
  if (!(p > 0)) return luaL_error(L, "bad p in 'renorm': %f (must be > 0)", p);
  if (t->dim < 2) return luaL_error(L, "bad tensor in 'renorm': %s has 1 dimension, renorm needs at least 2", shape(t, s));
  int d = lblua_checkdim(L, 3, t, "renorm");
  double maxnorm = number_arg(L, 4, "maxnorm", 0, 0, "renorm");
  if (!(maxnorm >= 0)) return luaL_error(L, "bad maxnorm in 'renorm': %f (must be >= 0)", maxnorm);
  blua_err err;
  lblua_check(L, blua_tensor_renorm(t, p, d, maxnorm, &err), "renorm", &err);
  lua_settop(L, 1);
  return 1;
}

/* ---- order statistics: values and 1-based indices, size 1 at d (default the last) ---- */

typedef int (*order_fn)(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int64_t k, int d, blua_err *err);

static int median_k(blua_tensor *v, blua_tensor *i, const blua_tensor *t, int64_t k, int d, blua_err *err) {
  (void)k;
  return blua_tensor_median(v, i, t, d, err);
}
static int mode_k(blua_tensor *v, blua_tensor *i, const blua_tensor *t, int64_t k, int d, blua_err *err) {
  (void)k;
  return blua_tensor_mode(v, i, t, d, err);
}

/* has_k: the rank k (1-based) was given (kthvalue), checked here against the size of d. */
static int order_stat(lua_State *L, int darg, int has_k, lua_Integer k, order_fn f, const char *fname) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int d = lua_isnoneornil(L, darg) ? t->dim - 1 : lblua_checkdim(L, darg, t, fname);
  char s[SHAPE_LEN];
  if (has_k && (k < 1 || k > t->size[d]))
    return luaL_error(L, "bad k in '%s': %I not in 1..%I for dimension %d of %s", fname, (LUAI_UACINT)k,
                      (LUAI_UACINT)t->size[d], d + 1, shape(t, s));
  blua_tensor *v = push_sized(L, t, d, 1, fname);
  blua_tensor *i = push_sized(L, t, d, 1, fname);
  blua_err err;
  lblua_check(L, f(v, i, t, has_k ? k - 1 : 0, d, &err), fname, &err);
  return 2;
}

static int t_median(lua_State *L) { return order_stat(L, 2, 0, 0, median_k, "median"); }
static int t_mode(lua_State *L) { return order_stat(L, 2, 0, 0, mode_k, "mode"); }
static int t_kthvalue(lua_State *L) {
  return order_stat(L, 3, 1, lblua_checkint(L, 2, "k", "kthvalue"), blua_tensor_kthvalue, "kthvalue");
}

const lblua_method lblua_math_methods[] = {
    {"sin", t_sin, 0, ""},
    {"cos", t_cos, 0, ""},
    {"tan", t_tan, 0, ""},
    {"asin", t_asin, 0, ""},
    {"acos", t_acos, 0, ""},
    {"atan", t_atan, 0, ""},
    {"sinh", t_sinh, 0, ""},
    {"cosh", t_cosh, 0, ""},
    {"frac", t_frac, 0, ""},
    {"cinv", t_cinv, 0, ""},
    {"reciprocal", t_reciprocal, 0, ""},
    {"fmod", t_fmod, 1, "a"},
    {"remainder", t_remainder, 1, "a"},
    {"atan2", t_atan2, 1, "u"},
    {"lerp", t_lerp, 2, "u, w"},
    {"csub", t_csub, 1, "u | a"},
    {"cumprod", t_cumprod, 1, "dim"},
    {"dist", t_dist, 2, "u [, p]"},
    {"renorm", t_renorm, 3, "p, dim, maxnorm"},
    {"median", t_median, 1, "[dim]"},
    {"kthvalue", t_kthvalue, 2, "k [, dim]"},
    {"mode", t_mode, 1, "[dim]"},
    {NULL, NULL, 0, NULL}};

const lblua_method lblua_math_funcs[] = {
    {NULL, NULL, 0, NULL}};
