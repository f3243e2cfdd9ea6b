/* Lua binding of the tensor core: the blua.Tensor userdata, its methods and metamethods, and
 * the module-level constructors. Indices are 1-based here and 0-based in the core. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lblua.h"

/* ---- userdata plumbing ---- */

blua_tensor *lblua_totensor(lua_State *L, int idx) {
  blua_tensor **p = luaL_testudata(L, idx, LBLUA_TENSOR_MT);
  return p ? *p : NULL;
}

blua_tensor *lblua_checktensor(lua_State *L, int idx) {
  blua_tensor **p = luaL_checkudata(L, idx, LBLUA_TENSOR_MT);
  if (!*p) luaL_argerror(L, idx, "tensor was closed");
  return *p;
}

void lblua_pushtensor(lua_State *L, blua_tensor *t) {
  blua_tensor **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = t;
  luaL_setmetatable(L, LBLUA_TENSOR_MT);
  /* Tell the collector about fresh storage, so loops that allocate large tensors collect
   * the dead ones in step instead of growing without bound. */
  if (t->storage->refcount == 1) {
    size_t kb = t->storage->n * sizeof(float) / 1024;
    if (kb > 0) lua_gc(L, LUA_GCSTEP, (int)(kb > 1 << 20 ? 1 << 20 : kb));
  }
}

blua_tensor *lblua_pushresult(lua_State *L, blua_tensor *t, const char *fname, const blua_err *err) {
  if (!t) lblua_error(L, fname, err);
  lblua_pushtensor(L, t);
  return t;
}

static int t_gc(lua_State *L) {
  blua_tensor **p = luaL_checkudata(L, 1, LBLUA_TENSOR_MT);
  blua_tensor_release(*p);
  *p = NULL;
  return 0;
}

static const char *shape(const blua_tensor *t, char *buf) { return blua_tensor_shape(t, buf, 48); }

/* Integral values come back as Lua integers, so 2 + 2 prints 4 and not 4.0. */
static void push_value(lua_State *L, double v) {
  if (isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0)
    lua_pushinteger(L, (lua_Integer)v);
  else
    lua_pushnumber(L, v);
}

static int64_t check_index(lua_State *L, int arg, int64_t size, const char *fname) {
  lua_Integer i = luaL_checkinteger(L, arg);
  if (i < 1 || i > size) luaL_error(L, "index out of range in '%s': %d not in 1..%d", fname, (int)i, (int)size);
  return (int64_t)i - 1;
}

static int64_t check_size(lua_State *L, int arg) {
  lua_Integer n = luaL_checkinteger(L, arg);
  luaL_argcheck(L, n >= 0, arg, "size must be non-negative");
  return (int64_t)n;
}

/* ---- constructors ---- */

static blua_tensor *new_tensor(lua_State *L, int dim, int64_t r, int64_t c, const char *fname) {
  blua_err err;
  return lblua_pushresult(L, blua_tensor_new(dim, r, c, &err), fname, &err);
}

/* Sizes from (r) or (r, c). */
static blua_tensor *new_from_sizes(lua_State *L, const char *fname) {
  int64_t r = check_size(L, 1);
  if (lua_isnoneornil(L, 2)) return new_tensor(L, 1, r, 1, fname);
  return new_tensor(L, 2, r, check_size(L, 2), fname);
}

static int l_zeros(lua_State *L) { new_from_sizes(L, "zeros"); return 1; }

static int l_ones(lua_State *L) {
  blua_tensor_fill(new_from_sizes(L, "ones"), 1.0f);
  return 1;
}

static int l_rand(lua_State *L) {
  blua_tensor_uniform(new_from_sizes(L, "rand"), 0.0, 1.0);
  return 1;
}

static int l_randn(lua_State *L) {
  blua_tensor_normal(new_from_sizes(L, "randn"), 0.0, 1.0);
  return 1;
}

static int l_eye(lua_State *L) {
  blua_err err;
  lblua_pushresult(L, blua_tensor_eye(check_size(L, 1), &err), "eye", &err);
  return 1;
}

static float table_number(lua_State *L, int idx, lua_Integer i, lua_Integer j) {
  int isnum;
  lua_Number v = lua_tonumberx(L, idx, &isnum);
  if (!isnum) {
    if (j > 0) luaL_error(L, "bad value in 'tensor': entry [%d][%d] is a %s, number expected", (int)i, (int)j, luaL_typename(L, idx));
    luaL_error(L, "bad value in 'tensor': entry [%d] is a %s, number expected", (int)i, luaL_typename(L, idx));
  }
  return (float)v;
}

/* blua.tensor{{1,2},{3,4}} (2-D), blua.tensor{1,2,3} (1-D) or blua.tensor(r, c). */
static int l_tensor(lua_State *L) {
  if (!lua_istable(L, 1)) {
    new_from_sizes(L, "tensor");
    return 1;
  }
  lua_Integer rows = luaL_len(L, 1);
  lua_geti(L, 1, 1);
  int nested = lua_istable(L, -1);
  lua_Integer cols = nested ? luaL_len(L, -1) : 1;
  lua_pop(L, 1);
  blua_tensor *t = new_tensor(L, nested ? 2 : 1, rows, cols, "tensor");
  int ud = lua_gettop(L);
  for (lua_Integer i = 1; i <= rows; i++) {
    lua_geti(L, 1, i);
    if (nested) {
      if (!lua_istable(L, -1)) luaL_error(L, "bad value in 'tensor': row %d is a %s, table expected", (int)i, luaL_typename(L, -1));
      if (luaL_len(L, -1) != cols)
        luaL_error(L, "size mismatch in 'tensor': row %d has %d entries, row 1 has %d", (int)i, (int)luaL_len(L, -1), (int)cols);
      for (lua_Integer j = 1; j <= cols; j++) {
        lua_geti(L, -1, j);
        *blua_tensor_at(t, i - 1, j - 1) = table_number(L, -1, i, j);
        lua_pop(L, 1);
      }
    } else {
      *blua_tensor_at(t, i - 1, 0) = table_number(L, -1, i, 0);
    }
    lua_pop(L, 1);
  }
  lua_settop(L, ud);
  return 1;
}

static int l_isTensor(lua_State *L) {
  lua_pushboolean(L, lblua_totensor(L, 1) != NULL);
  return 1;
}

static int l_setNumThreads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1, 1, "thread count must be at least 1");
  blua_set_num_threads((int)n);
  return 0;
}

static int l_getNumThreads(lua_State *L) {
  lua_pushinteger(L, blua_get_num_threads());
  return 1;
}

static int l_manualSeed(lua_State *L) {
  blua_manual_seed((uint64_t)luaL_checkinteger(L, 1));
  return 0;
}

static int l_initialSeed(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)blua_initial_seed());
  return 1;
}

/* A random permutation of 1..n as a Lua table (uses the seeded generator). */
static int l_randperm(lua_State *L) {
  int64_t n = check_size(L, 1);
  int64_t *perm = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *perm, 0);
  blua_rng_permutation(blua_default_rng(), perm, n);
  lua_createtable(L, (int)n, 0);
  for (int64_t i = 0; i < n; i++) {
    lua_pushinteger(L, perm[i] + 1);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* blua._sgemm(c, a, b): cblas_sgemm on contiguous row-major tensors with no checks beyond
 * the shapes. A reference for the benchmarks, not part of the API. */
static int l_sgemm(lua_State *L) {
  blua_tensor *c = lblua_checktensor(L, 1), *a = lblua_checktensor(L, 2), *b = lblua_checktensor(L, 3);
  char sa[48], sb[48];
  if (a->dim != 2 || b->dim != 2 || c->dim != 2 || a->size[1] != b->size[0] || c->size[0] != a->size[0] ||
      c->size[1] != b->size[1] || !blua_tensor_is_contiguous(a) || !blua_tensor_is_contiguous(b) ||
      !blua_tensor_is_contiguous(c))
    return luaL_error(L, "size mismatch in '_sgemm': %s * %s", shape(a, sa), shape(b, sb));
  int m = (int)a->size[0], k = (int)a->size[1], n = (int)b->size[1];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, blua_tensor_data(a), k,
              blua_tensor_data(b), n, 0.0f, blua_tensor_data(c), n);
  return 0;
}

static int l_clock(lua_State *L) {
  lua_pushnumber(L, blua_wall_time());
  return 1;
}

static int l_blasInfo(lua_State *L) {
  lua_pushstring(L, blua_blas_config());
  lua_pushstring(L, blua_blas_core());
  return 2;
}

/* ---- size and element access ---- */

static int t_size(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer d = luaL_checkinteger(L, 2);
    if (d < 1 || d > t->dim) luaL_error(L, "bad dimension in 'size': %d for a %d-D tensor", (int)d, t->dim);
    lua_pushinteger(L, t->size[d - 1]);
    return 1;
  }
  lua_pushinteger(L, t->size[0]);
  if (t->dim == 1) return 1;
  lua_pushinteger(L, t->size[1]);
  return 2;
}

static int t_dim(lua_State *L) {
  lua_pushinteger(L, lblua_checktensor(L, 1)->dim);
  return 1;
}

static int t_nElement(lua_State *L) {
  lua_pushinteger(L, blua_tensor_nelement(lblua_checktensor(L, 1)));
  return 1;
}

static int t_len(lua_State *L) {
  lua_pushinteger(L, lblua_checktensor(L, 1)->size[0]);
  return 1;
}

static float *element(lua_State *L, blua_tensor *t, const char *fname, int *next) {
  int64_t i = check_index(L, 2, t->size[0], fname), j = 0;
  *next = 3;
  if (t->dim == 2) {
    j = check_index(L, 3, t->size[1], fname);
    *next = 4;
  }
  return blua_tensor_at(t, i, j);
}

static int t_get(lua_State *L) {
  int next;
  push_value(L, *element(L, lblua_checktensor(L, 1), "get", &next));
  return 1;
}

static int t_set(lua_State *L) {
  int next;
  float *p = element(L, lblua_checktensor(L, 1), "set", &next);
  *p = (float)luaL_checknumber(L, next);
  lua_settop(L, 1);
  return 1;
}

static int t_totable(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  lua_createtable(L, (int)t->size[0], 0);
  for (int64_t i = 0; i < t->size[0]; i++) {
    if (t->dim == 2) {
      lua_createtable(L, (int)t->size[1], 0);
      for (int64_t j = 0; j < t->size[1]; j++) {
        push_value(L, *blua_tensor_at(t, i, j));
        lua_rawseti(L, -2, j + 1);
      }
    } else {
      push_value(L, *blua_tensor_at(t, i, 0));
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- views and copies ---- */

static int t_narrow(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  lua_Integer d = luaL_checkinteger(L, 2), first = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
  blua_err err;
  lblua_pushresult(L, blua_tensor_narrow(t, (int)d - 1, first - 1, len, &err), "narrow", &err);
  return 1;
}

static int t_transpose(lua_State *L) {
  blua_err err;
  lblua_pushresult(L, blua_tensor_transpose(lblua_checktensor(L, 1), &err), "t", &err);
  return 1;
}

static int t_view(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  int64_t r = check_size(L, 2);
  int two = !lua_isnoneornil(L, 3);
  blua_err err;
  lblua_pushresult(L, blua_tensor_view(t, two ? 2 : 1, r, two ? check_size(L, 3) : 1, &err), "view", &err);
  return 1;
}

static int t_clone(lua_State *L) {
  blua_err err;
  lblua_pushresult(L, blua_tensor_clone(lblua_checktensor(L, 1), &err), "clone", &err);
  return 1;
}

static int t_contiguous(lua_State *L) {
  blua_err err;
  lblua_pushresult(L, blua_tensor_contiguous(lblua_checktensor(L, 1), &err), "contiguous", &err);
  return 1;
}

static int t_isContiguous(lua_State *L) {
  lua_pushboolean(L, blua_tensor_is_contiguous(lblua_checktensor(L, 1)));
  return 1;
}

static int t_copy(lua_State *L) {
  blua_err err;
  lblua_check(L, blua_tensor_copy(lblua_checktensor(L, 1), lblua_checktensor(L, 2), &err), "copy", &err);
  lua_settop(L, 1);
  return 1;
}

static int t_fill(lua_State *L) {
  blua_tensor_fill(lblua_checktensor(L, 1), (float)luaL_checknumber(L, 2));
  lua_settop(L, 1);
  return 1;
}

static int t_zero(lua_State *L) {
  blua_tensor_fill(lblua_checktensor(L, 1), 0.0f);
  lua_settop(L, 1);
  return 1;
}

/* t:indexRows{i1, i2, ...} or t:indexRows(idxTensor): a new tensor of those rows (1-based). */
static int t_indexRows(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_tensor *it = lblua_totensor(L, 2);
  lua_Integer n = it ? blua_tensor_nelement(it) : (luaL_checktype(L, 2, LUA_TTABLE), luaL_len(L, 2));
  int64_t *idx = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *idx, 0);
  for (lua_Integer k = 0; k < n; k++) {
    if (it) {
      idx[k] = (int64_t)*blua_tensor_at(it, k / blua_tensor_cols(it), k % blua_tensor_cols(it)) - 1;
    } else {
      lua_geti(L, 2, k + 1);
      idx[k] = (int64_t)luaL_checkinteger(L, -1) - 1;
      lua_pop(L, 1);
    }
  }
  blua_err err;
  blua_tensor *r = new_tensor(L, t->dim, n, blua_tensor_cols(t), "indexRows");
  lblua_check(L, blua_tensor_gather_rows(r, t, idx, n, &err), "indexRows", &err);
  return 1;
}

/* ---- arithmetic ---- */

/* t:add(u) | t:add(a, u) | t:add(number): in place, returns t. */
static int t_add(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  if (lua_isnumber(L, 2) && lua_isnoneornil(L, 3)) {
    blua_tensor_affine(t, t, 1.0f, (float)lua_tonumber(L, 2), &err);
  } else if (lua_isnumber(L, 2)) {
    lblua_check(L, blua_tensor_add(t, t, (float)lua_tonumber(L, 2), lblua_checktensor(L, 3), &err), "add", &err);
  } else {
    lblua_check(L, blua_tensor_add(t, t, 1.0f, lblua_checktensor(L, 2), &err), "add", &err);
  }
  lua_settop(L, 1);
  return 1;
}

static int t_sub(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  if (lua_isnumber(L, 2))
    blua_tensor_affine(t, t, 1.0f, -(float)lua_tonumber(L, 2), &err);
  else
    lblua_check(L, blua_tensor_add(t, t, -1.0f, lblua_checktensor(L, 2), &err), "sub", &err);
  lua_settop(L, 1);
  return 1;
}

static int t_cmul(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  lblua_check(L, blua_tensor_cmul(t, t, lblua_checktensor(L, 2), &err), "cmul", &err);
  lua_settop(L, 1);
  return 1;
}

static int t_cdiv(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  lblua_check(L, blua_tensor_cdiv(t, t, lblua_checktensor(L, 2), &err), "cdiv", &err);
  lua_settop(L, 1);
  return 1;
}

static int t_mul(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  blua_tensor_affine(t, t, (float)luaL_checknumber(L, 2), 0.0f, &err);
  lua_settop(L, 1);
  return 1;
}

static int t_div(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  blua_tensor_affine(t, t, (float)(1.0 / luaL_checknumber(L, 2)), 0.0f, &err);
  lua_settop(L, 1);
  return 1;
}

/* t:addRow(v [, alpha]): adds alpha * v (1 x cols) to every row, in place. */
static int t_addRow(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  lblua_check(L, blua_tensor_add_rowvec(t, t, (float)luaL_optnumber(L, 3, 1.0), lblua_checktensor(L, 2), &err),
              "addRow", &err);
  lua_settop(L, 1);
  return 1;
}

/* t:sumRows(): the 1 x cols tensor of column sums. */
static int t_sumRows(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  blua_tensor *r = new_tensor(L, 2, 1, blua_tensor_cols(t), "sumRows");
  lblua_check(L, blua_tensor_sum_rows(r, 0.0f, 1.0f, t, &err), "sumRows", &err);
  return 1;
}

/* r:mm(a, b) style is addmm; t:mm(u) returns the new product t u. */
static int t_mm(lua_State *L) {
  blua_tensor *a = lblua_checktensor(L, 1), *b = lblua_checktensor(L, 2);
  char sa[48], sb[48];
  if (a->dim != 2 || b->dim != 2 || a->size[1] != b->size[0])
    return luaL_error(L, "size mismatch in 'mm': %s * %s", shape(a, sa), shape(b, sb));
  blua_err err;
  blua_tensor *c = lblua_pushresult(L, blua_tensor_empty(2, a->size[0], b->size[1], &err), "mm", &err);
  lblua_check(L, blua_mm(c, 0.0f, 1.0f, a, b, &err), "mm", &err);
  return 1;
}

/* c:addmm(beta, alpha, a, b): c = beta c + alpha a b, in place. */
static int t_addmm(lua_State *L) {
  blua_tensor *c = lblua_checktensor(L, 1);
  float beta = (float)luaL_checknumber(L, 2), alpha = (float)luaL_checknumber(L, 3);
  blua_err err;
  lblua_check(L, blua_mm(c, beta, alpha, lblua_checktensor(L, 4), lblua_checktensor(L, 5), &err), "addmm", &err);
  lua_settop(L, 1);
  return 1;
}

/* Elementwise maps, in place (Torch style): t:exp() changes t; t:clone():exp() does not. */
typedef enum { U_ABS, U_EXP, U_LOG, U_SQRT, U_TANH, U_SIGMOID, U_SIGN, U_NEG, U_SQUARE, U_LOG1P, U_FLOOR } unary_op;

static float unary_value(unary_op op, float x) {
  switch (op) {
    case U_ABS: return fabsf(x);
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    case U_SQRT: return sqrtf(x);
    case U_TANH: return tanhf(x);
    case U_SIGMOID: return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
    case U_SIGN: return (float)((x > 0) - (x < 0));
    case U_NEG: return -x;
    case U_SQUARE: return x * x;
    case U_LOG1P: return log1pf(x);
    case U_FLOOR: return floorf(x);
  }
  return x;
}

static void apply_unary(blua_tensor *t, unary_op op) {
  int64_t rows = blua_tensor_rows(t), cols = blua_tensor_cols(t);
  int64_t cs = t->dim == 2 ? t->stride[1] : 0;
#pragma omp parallel for if (blua_tensor_nelement(t) > BLUA_OMP_THRESHOLD)
  for (int64_t i = 0; i < rows; i++) {
    float *p = blua_tensor_at(t, i, 0);
    for (int64_t j = 0; j < cols; j++) p[j * cs] = unary_value(op, p[j * cs]);
  }
}

#define UNARY(name, op)                                  \
  static int t_##name(lua_State *L) {                    \
    apply_unary(lblua_checktensor(L, 1), op);            \
    lua_settop(L, 1);                                    \
    return 1;                                            \
  }
UNARY(abs, U_ABS)
UNARY(exp, U_EXP)
UNARY(log, U_LOG)
UNARY(sqrt, U_SQRT)
UNARY(tanh, U_TANH)
UNARY(sigmoid, U_SIGMOID)
UNARY(sign, U_SIGN)
UNARY(neg, U_NEG)
UNARY(square, U_SQUARE)
UNARY(log1p, U_LOG1P)
UNARY(floor, U_FLOOR)

/* Scalar comparisons and clamps, in place. */
typedef enum { C_CLAMP, C_GT, C_GE, C_LT, C_LE, C_POW, C_CMAX, C_CMIN } scalar_op;

static void apply_scalar(blua_tensor *t, scalar_op op, float a, float b) {
  int64_t rows = blua_tensor_rows(t), cols = blua_tensor_cols(t);
  int64_t cs = t->dim == 2 ? t->stride[1] : 0;
#pragma omp parallel for if (blua_tensor_nelement(t) > BLUA_OMP_THRESHOLD)
  for (int64_t i = 0; i < rows; i++) {
    float *p = blua_tensor_at(t, i, 0);
    for (int64_t j = 0; j < cols; j++) {
      float x = p[j * cs];
      switch (op) {
        case C_CLAMP: x = x < a ? a : (x > b ? b : x); break;
        case C_GT: x = x > a; break;
        case C_GE: x = x >= a; break;
        case C_LT: x = x < a; break;
        case C_LE: x = x <= a; break;
        case C_POW: x = powf(x, a); break;
        case C_CMAX: x = x > a ? x : a; break;
        case C_CMIN: x = x < a ? x : a; break;
      }
      p[j * cs] = x;
    }
  }
}

static int t_clamp(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  lua_Number lo = luaL_optnumber(L, 2, -HUGE_VAL), hi = luaL_optnumber(L, 3, HUGE_VAL);
  if (lo > hi) return luaL_error(L, "bad bounds in 'clamp': %f > %f", lo, hi);
  apply_scalar(t, C_CLAMP, (float)lo, (float)hi);
  lua_settop(L, 1);
  return 1;
}

#define SCALAR(name, op)                                                                 \
  static int t_##name(lua_State *L) {                                                    \
    apply_scalar(lblua_checktensor(L, 1), op, (float)luaL_checknumber(L, 2), 0.0f);     \
    lua_settop(L, 1);                                                                    \
    return 1;                                                                            \
  }
SCALAR(gt, C_GT)
SCALAR(ge, C_GE)
SCALAR(lt, C_LT)
SCALAR(le, C_LE)
SCALAR(pow, C_POW)

/* t:cmax(u|number), t:cmin(u|number): elementwise max/min, in place. */
static int minmax(lua_State *L, int want_max, const char *fname) {
  blua_tensor *t = lblua_checktensor(L, 1);
  if (lua_isnumber(L, 2)) {
    apply_scalar(t, want_max ? C_CMAX : C_CMIN, (float)lua_tonumber(L, 2), 0.0f);
  } else {
    blua_tensor *u = lblua_checktensor(L, 2);
    char s1[48], s2[48];
    if (!blua_tensor_same_shape(t, u)) return luaL_error(L, "size mismatch in '%s': %s and %s", fname, shape(t, s1), shape(u, s2));
    for (int64_t i = 0; i < blua_tensor_rows(t); i++)
      for (int64_t j = 0; j < blua_tensor_cols(t); j++) {
        float *p = blua_tensor_at(t, i, j), q = *blua_tensor_at(u, i, j);
        *p = want_max ? (*p > q ? *p : q) : (*p < q ? *p : q);
      }
  }
  lua_settop(L, 1);
  return 1;
}

static int t_cmax(lua_State *L) { return minmax(L, 1, "cmax"); }
static int t_cmin(lua_State *L) { return minmax(L, 0, "cmin"); }

/* t:map(fn): t[i][j] = fn(t[i][j]) on the Lua thread. */
static int t_map(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  for (int64_t i = 0; i < blua_tensor_rows(t); i++)
    for (int64_t j = 0; j < blua_tensor_cols(t); j++) {
      float *p = blua_tensor_at(t, i, j);
      lua_pushvalue(L, 2);
      lua_pushnumber(L, *p);
      lua_call(L, 1, 1);
      int isnum;
      lua_Number v = lua_tonumberx(L, -1, &isnum);
      if (!isnum) return luaL_error(L, "bad result in 'map': function returned a %s, number expected", luaL_typename(L, -1));
      *p = (float)v;
      lua_pop(L, 1);
    }
  lua_settop(L, 1);
  return 1;
}

/* ---- reductions ---- */

static int t_sum(lua_State *L) { push_value(L, blua_tensor_sum(lblua_checktensor(L, 1))); return 1; }

static int t_mean(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  int64_t n = blua_tensor_nelement(t);
  push_value(L, n ? blua_tensor_sum(t) / (double)n : NAN);
  return 1;
}

static int t_max(lua_State *L) { push_value(L, blua_tensor_max(lblua_checktensor(L, 1))); return 1; }
static int t_min(lua_State *L) { push_value(L, blua_tensor_min(lblua_checktensor(L, 1))); return 1; }
static int t_norm(lua_State *L) { lua_pushnumber(L, blua_tensor_norm(lblua_checktensor(L, 1))); return 1; }

static int t_dot(lua_State *L) {
  blua_tensor *a = lblua_checktensor(L, 1), *b = lblua_checktensor(L, 2);
  char s1[48], s2[48];
  if (!blua_tensor_same_shape(a, b)) return luaL_error(L, "size mismatch in 'dot': %s and %s", shape(a, s1), shape(b, s2));
  lua_pushnumber(L, blua_tensor_dot(a, b));
  return 1;
}

static int t_allFinite(lua_State *L) {
  lua_pushboolean(L, blua_tensor_all_finite(lblua_checktensor(L, 1)));
  return 1;
}

/* t:argmax(2): rows x 1 tensor of 1-based column indices of each row's maximum;
 * t:argmax(1): 1 x cols of row indices. A 1-D tensor: the 1-based index as a number. */
static int t_argmax(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  lua_Integer d = luaL_optinteger(L, 2, t->dim == 2 ? 2 : 1);
  if (d < 1 || d > t->dim) return luaL_error(L, "bad dimension in 'argmax': %d for a %d-D tensor", (int)d, t->dim);
  if (t->size[0] == 0 || blua_tensor_cols(t) == 0) return luaL_error(L, "empty tensor in 'argmax'");
  if (t->dim == 1) {
    int64_t best = 0;
    for (int64_t i = 1; i < t->size[0]; i++)
      if (*blua_tensor_at(t, i, 0) > *blua_tensor_at(t, best, 0)) best = i;
    lua_pushinteger(L, best + 1);
    return 1;
  }
  int64_t n = d == 2 ? t->size[0] : t->size[1];
  int64_t *idx = lua_newuserdatauv(L, (size_t)n * sizeof *idx, 0);
  if (d == 2) blua_tensor_argmax_rows(t, idx); else blua_tensor_argmax_cols(t, idx);
  blua_tensor *r = new_tensor(L, 2, d == 2 ? n : 1, d == 2 ? 1 : n, "argmax");
  float *p = blua_tensor_data(r);
  for (int64_t k = 0; k < n; k++) p[k] = (float)(idx[k] + 1);
  return 1;
}

/* ---- metamethods ---- */

/* A binary operator on (tensor|number, tensor|number): result is a new tensor. */
static int arith(lua_State *L, int op, const char *fname) {
  blua_tensor *a = lblua_totensor(L, 1), *b = lblua_totensor(L, 2);
  blua_err err;
  char s1[48], s2[48];
  if (a && b) {
    if (!blua_tensor_same_shape(a, b)) return luaL_error(L, "size mismatch in '%s': %s and %s", fname, shape(a, s1), shape(b, s2));
    blua_tensor *r = new_tensor(L, a->dim, a->size[0], a->size[1], fname);
    lblua_check(L, blua_tensor_add(r, a, op == '+' ? 1.0f : -1.0f, b, &err), fname, &err);
    return 1;
  }
  blua_tensor *t = a ? a : b;
  if (!t) return luaL_error(L, "bad operands in '%s'", fname);
  float x = (float)luaL_checknumber(L, a ? 2 : 1);
  blua_tensor *r = new_tensor(L, t->dim, t->size[0], t->size[1], fname);
  float scale = 1.0f, shift = 0.0f;
  switch (op) {
    case '+': shift = x; break;
    case '-': if (a) shift = -x; else { scale = -1.0f; shift = x; } break;
    case '*': scale = x; break;
    case '/':
      if (!a) return luaL_error(L, "bad operands in '%s': number / tensor (use blua.tensor ops)", fname);
      scale = 1.0f / x;
      break;
  }
  blua_tensor_affine(r, t, scale, shift, &err);
  return 1;
}

static int m_add(lua_State *L) { return arith(L, '+', "add"); }
static int m_sub(lua_State *L) { return arith(L, '-', "sub"); }
static int m_div(lua_State *L) { return arith(L, '/', "div"); }

static int m_mul(lua_State *L) {
  if (lblua_totensor(L, 1) && lblua_totensor(L, 2)) return t_mm(L);
  return arith(L, '*', "mul");
}

static int m_unm(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  blua_tensor *r = new_tensor(L, t->dim, t->size[0], t->size[1], "unm");
  blua_tensor_affine(r, t, -1.0f, 0.0f, &err);
  return 1;
}

/* Torch-style printing: a column block per row, summarised beyond 20 rows or 12 columns. */
static void add_value(luaL_Buffer *b, float v, int width) {
  char s[48];
  snprintf(s, sizeof s, " %*.*g", width, 5, (double)v);
  luaL_addstring(b, s);
}

static int m_tostring(lua_State *L) {
  blua_tensor **p = luaL_checkudata(L, 1, LBLUA_TENSOR_MT);
  if (!*p) {
    lua_pushliteral(L, "[blua.Tensor (closed)]");
    return 1;
  }
  blua_tensor *t = *p;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int64_t rows = blua_tensor_rows(t), cols = t->dim == 2 ? t->size[1] : 1;
  int row_cut = rows > 20, col_cut = cols > 12;
  for (int64_t i = 0; i < rows; i++) {
    if (row_cut && i == 10) {
      luaL_addstring(&b, " ...\n");
      i = rows - 10;
    }
    for (int64_t j = 0; j < cols; j++) {
      if (col_cut && j == 6) {
        luaL_addstring(&b, "  ...");
        j = cols - 6;
      }
      add_value(&b, *blua_tensor_at(t, i, j), 10);
    }
    luaL_addchar(&b, '\n');
  }
  char s[48];
  lua_pushfstring(L, "[blua.Tensor of size %s]", shape(t, s));
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  return 1;
}

static const luaL_Reg tensor_methods[] = {
    {"size", t_size}, {"dim", t_dim}, {"nElement", t_nElement}, {"numel", t_nElement},
    {"get", t_get}, {"set", t_set}, {"totable", t_totable},
    {"narrow", t_narrow}, {"t", t_transpose}, {"transpose", t_transpose}, {"view", t_view},
    {"clone", t_clone}, {"contiguous", t_contiguous}, {"isContiguous", t_isContiguous},
    {"copy", t_copy}, {"fill", t_fill}, {"zero", t_zero}, {"indexRows", t_indexRows},
    {"add", t_add}, {"sub", t_sub}, {"cmul", t_cmul}, {"cdiv", t_cdiv}, {"mul", t_mul}, {"div", t_div},
    {"addRow", t_addRow}, {"sumRows", t_sumRows}, {"mm", t_mm}, {"addmm", t_addmm},
    {"abs", t_abs}, {"exp", t_exp}, {"log", t_log}, {"sqrt", t_sqrt}, {"tanh", t_tanh},
    {"sigmoid", t_sigmoid}, {"sign", t_sign}, {"neg", t_neg}, {"square", t_square}, {"log1p", t_log1p},
    {"floor", t_floor}, {"clamp", t_clamp}, {"gt", t_gt}, {"ge", t_ge}, {"lt", t_lt}, {"le", t_le},
    {"pow", t_pow}, {"cmax", t_cmax}, {"cmin", t_cmin}, {"map", t_map},
    {"sum", t_sum}, {"mean", t_mean}, {"max", t_max}, {"min", t_min}, {"norm", t_norm}, {"dot", t_dot},
    {"argmax", t_argmax}, {"allFinite", t_allFinite},
    {NULL, NULL}};

static const luaL_Reg tensor_meta[] = {
    {"__gc", t_gc}, {"__close", t_gc}, {"__tostring", m_tostring}, {"__len", t_len},
    {"__add", m_add}, {"__sub", m_sub}, {"__mul", m_mul}, {"__div", m_div}, {"__unm", m_unm},
    {NULL, NULL}};

static const luaL_Reg module_funcs[] = {
    {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"rand", l_rand}, {"randn", l_randn},
    {"eye", l_eye}, {"isTensor", l_isTensor}, {"setNumThreads", l_setNumThreads},
    {"getNumThreads", l_getNumThreads}, {"manualSeed", l_manualSeed}, {"initialSeed", l_initialSeed},
    {"randperm", l_randperm}, {"blasInfo", l_blasInfo}, {"_sgemm", l_sgemm}, {"clock", l_clock},
    {NULL, NULL}};

void lblua_open_tensor(lua_State *L) {
  if (luaL_newmetatable(L, LBLUA_TENSOR_MT)) {
    luaL_setfuncs(L, tensor_meta, 0);
    lua_pushliteral(L, "blua.Tensor");
    lua_setfield(L, -2, "__name");
    luaL_newlib(L, tensor_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "Tensor"); /* blua.Tensor: the method table, for extension from Lua */
  lua_pop(L, 1);
  luaL_setfuncs(L, module_funcs, 0);
}
