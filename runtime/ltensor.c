/* Lua binding of the tensor core: the blua.Tensor userdata, its methods and metamethods, and
 * the module-level constructors. Indices and dimensions are 1-based here and 0-based in the
 * core; every integer from Lua is range-checked as a lua_Integer before any arithmetic.
 *
 * Lua code can run inside these functions wherever a value is allocated (a GC step may run
 * a finalizer) or a callback or metamethod is called, and that code may close a tensor the
 * function already holds. lblua_pushtensor checks that the tensor arguments still open before
 * it are open after it; other such points fetch their tensors again afterwards. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lblua.h"
#include "par.h"

#define SHAPE_LEN 160
#define MAX_THREADS 1024

/* ---- userdata plumbing ---- */

blua_tensor *lblua_totensor(lua_State *L, int idx) {
  blua_tensor **p = luaL_testudata(L, idx, LBLUA_TENSOR_MT);
  return p ? *p : NULL;
}

blua_tensor *lblua_listtensor(lua_State *L, int idx, int i, const char *what, const char *fname) {
  lua_rawgeti(L, idx, i);
  blua_tensor *t = lblua_totensor(L, -1);
  if (!t) luaL_error(L, "bad argument #%d to '%s' (%s[%d] must be a live tensor)", idx, fname, what, i);
  lua_pop(L, 1);
  lblua_checkwritable(L, t, fname);
  return t;
}

void lblua_checkwritable(lua_State *L, const blua_tensor *t, const char *fname) {
  if (blua_tensor_overlapping(t))
    luaL_error(L, "cannot write in '%s': the tensor is an expanded view whose entries share memory; clone it first",
               fname);
}

blua_tensor *lblua_readtensor(lua_State *L, int idx) {
  blua_tensor **p = luaL_checkudata(L, idx, LBLUA_TENSOR_MT);
  if (!*p) luaL_argerror(L, idx, "tensor was closed");
  return *p;
}

static int arity_checked(lua_State *L);

blua_tensor *lblua_readsource(lua_State *L, int idx, const blua_tensor *dst, const char *fname) {
  blua_tensor *t = lblua_readtensor(L, idx);
  if (blua_tensor_overlapping(t) && t->storage == dst->storage)
    luaL_error(L, "bad argument in '%s': the source is an expanded view of the destination's memory; clone it first",
               fname);
  return t;
}

blua_tensor *lblua_checktensor(lua_State *L, int idx) {
  blua_tensor *t = lblua_readtensor(L, idx);
  if (blua_tensor_overlapping(t)) {
    /* The name the function was called by, as luaL_argerror finds it. */
    lua_Debug ar;
    const char *name = lua_getstack(L, 0, &ar) && lua_getinfo(L, "nf", &ar) && ar.name ? ar.name : NULL;
    /* Called without a name (pcall(t.fill, t, 1)): a wrapped method knows its own. */
    if (!name && lua_tocfunction(L, -1) == arity_checked && lua_getupvalue(L, -1, 3)) {
      name = lua_tostring(L, -1);
      if (name && strchr(name, ':')) name = strchr(name, ':') + 1;
      if (name && strchr(name, '.')) name = strchr(name, '.') + 1;
    }
    /* Else the method's key in the method table (t:set is not wrapped). */
    if (!name && luaL_getmetafield(L, idx, "methods") == LUA_TTABLE) {
      lua_pushnil(L);
      while (!name && lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, -4)) name = lua_tostring(L, -2);
        lua_pop(L, 1);
      }
    }
    lblua_checkwritable(L, t, name ? name : "?");
  }
  return t;
}

/* Bit k-1 set when stack slot k (k <= 64) holds an open tensor. */
static uint64_t open_tensors(lua_State *L) {
  int top = lua_gettop(L);
  uint64_t mask = 0;
  for (int k = 1; k <= top && k <= 64; k++)
    if (lua_type(L, k) == LUA_TUSERDATA && lblua_totensor(L, k)) mask |= (uint64_t)1 << (k - 1);
  return mask;
}

static int make_slot(lua_State *L) {
  blua_tensor **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  luaL_setmetatable(L, LBLUA_TENSOR_MT);
  return 1;
}

void lblua_pushtensor(lua_State *L, blua_tensor *t) {
  uint64_t before = open_tensors(L);
  /* The userdata is made under a protected call so that a memory error releases t instead of
   * leaking it (a light C function costs no allocation to push). */
  if (!lua_checkstack(L, 3)) {
    blua_tensor_release(t);
    luaL_error(L, "out of memory: no stack space for a tensor");
  }
  lua_pushcfunction(L, make_slot);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    blua_tensor_release(t);
    lua_error(L);
  }
  *(blua_tensor **)lua_touserdata(L, -1) = t;
  /* Tell the collector about fresh storage, so loops that allocate large tensors collect
   * the dead ones in step instead of growing without bound. */
  if (t->storage->refcount == 1) {
    size_t kb = t->storage->n * sizeof(float) / 1024;
    if (kb > 0) lua_gc(L, LUA_GCSTEP, (int)(kb > 1 << 20 ? 1 << 20 : kb));
  }
  uint64_t lost = before & ~open_tensors(L);
  if (lost) {
    int k = 1;
    while (!(lost & 1)) lost >>= 1, k++;
    luaL_error(L, "tensor closed during a call: argument #%d was closed by code that ran meanwhile "
               "(a finalizer or callback)", k);
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

static const char *shape(const blua_tensor *t, char *buf) { return blua_tensor_shape(t, buf, SHAPE_LEN); }

/* Integral values come back as Lua integers, so 2 + 2 prints 4 and not 4.0. */
static void push_value(lua_State *L, double v) {
  if (isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0)
    lua_pushinteger(L, (lua_Integer)v);
  else
    lua_pushnumber(L, v);
}

/* ---- checked integers from Lua ---- */

/* An integer argument (floats with an exact integer value are accepted, others are errors). */
lua_Integer lblua_checkint(lua_State *L, int arg, const char *what, const char *fname) {
  int isnum;
  lua_Integer v = lua_tointegerx(L, arg, &isnum);
  if (!isnum) {
    if (lua_type(L, arg) == LUA_TNUMBER)
      luaL_error(L, "bad %s in '%s': %s is not an integer", what, fname, lua_tostring(L, arg));
    luaL_error(L, "bad %s in '%s': integer expected, got %s", what, fname, luaL_typename(L, arg));
  }
  return v;
}

int64_t lblua_checkindex(lua_State *L, int arg, int64_t size, const char *fname) {
  lua_Integer i = lblua_checkint(L, arg, "index", fname);
  if (i < 1 || i > size)
    luaL_error(L, "index out of range in '%s': %I not in 1..%I", fname, (LUAI_UACINT)i, (LUAI_UACINT)size);
  return (int64_t)i - 1;
}

/* A 1-based dimension of t (argument arg) as a 0-based int. */
int lblua_checkdim(lua_State *L, int arg, const blua_tensor *t, const char *fname) {
  lua_Integer d = lblua_checkint(L, arg, "dimension", fname);
  if (d < 1 || d > t->dim) {
    luaL_error(L, "bad dimension in '%s': %I for a %d-D tensor", fname, (LUAI_UACINT)d, t->dim);
  }
  return (int)d - 1;
}

int64_t lblua_checksize(lua_State *L, int arg, const char *fname) {
  lua_Integer n = lblua_checkint(L, arg, "size", fname);
  if (n < 0) luaL_error(L, "bad size in '%s': %I (sizes must be non-negative)", fname, (LUAI_UACINT)n);
  if (n > BLUA_MAX_ELEMENTS) luaL_error(L, "tensor too large in '%s': size %I (at most 2^34 elements)", fname, (LUAI_UACINT)n);
  return (int64_t)n;
}

/* Lua drops arguments past a function's last without a word, and a Torch habit there would give
 * another result in silence (t:norm(1) for the L1 norm, blua.eye(2, 3) for a 2x3 one): refuse it.
 * `most` is how many arguments follow the first (self for a method), `who` names the function as
 * it is called ("t:get"), `usage` lists its arguments. */
static void no_extra(lua_State *L, int most, const char *who, const char *usage) {
  int extra = lua_gettop(L) - 1 - most;
  if (extra > 0)
    luaL_error(L, "%s: (%s) expected, got %d more argument%s", who, usage, extra, extra > 1 ? "s" : "");
}

/* Sizes given as arguments first.. (up to the last non-nil) or as one table {n1, n2, ...}.
 * allow_infer lets one size be -1 (view, reshape). Returns the dimension count. */
static int read_sizes(lua_State *L, int first, int64_t *size, int allow_infer, const char *fname) {
  int top = lua_gettop(L), dim = 0;
  int from_table = lua_istable(L, first);
  lua_Integer n;
  while (top >= first && lua_isnil(L, top)) top--;
  if (from_table) {
    if (top > first) /* ({2, 3}, 4) is not a size list: refuse, do not drop the 4 */
      luaL_error(L, "bad argument in '%s': sizes as one table or as numbers, got a table and %d more argument%s", fname,
                 top - first, top - first > 1 ? "s" : "");
    n = (lua_Integer)lua_rawlen(L, first);
  } else {
    n = top - first + 1;
  }
  if (n < 1 || n > BLUA_MAX_DIM)
    luaL_error(L, "bad dimension in '%s': %I sizes given (1..%d dimensions exist)", fname, (LUAI_UACINT)n, BLUA_MAX_DIM);
  dim = (int)n;
  int infer = -1;
  for (int d = 0; d < dim; d++) {
    int arg = first + d;
    if (from_table) {
      lua_rawgeti(L, first, d + 1);
      arg = lua_gettop(L);
    }
    if (allow_infer && lua_isinteger(L, arg) && lua_tointeger(L, arg) == -1 && infer < 0) {
      infer = d;
      size[d] = 1;
    } else {
      size[d] = lblua_checksize(L, arg, fname);
    }
    if (from_table) lua_pop(L, 1);
  }
  if (infer >= 0) size[infer] = -1;
  return dim;
}

/* Fills a -1 size from the element count n. */
static void infer_size(lua_State *L, int dim, int64_t *size, int64_t n, const char *fname) {
  int64_t known = 1;
  int at = -1;
  for (int d = 0; d < dim; d++) {
    if (size[d] == -1) {
      at = d;
      continue;
    }
    if (size[d] == 0) {
      known = 0;
    } else if (known > n / size[d]) { /* more than n elements already: no size can fit */
      known = -1;
      break;
    } else {
      known *= size[d];
    }
  }
  if (at < 0) return;
  if (known < 0) luaL_error(L, "size mismatch in '%s': cannot infer a size for %I elements", fname, (LUAI_UACINT)n);
  if (known == 0 || n % known != 0)
    luaL_error(L, "size mismatch in '%s': cannot infer a size for %I elements", fname, (LUAI_UACINT)n);
  size[at] = n / known;
}

/* ---- constructors ---- */

static blua_tensor *new_tensor(lua_State *L, int dim, int64_t r, int64_t c, const char *fname) {
  blua_err err;
  return lblua_pushresult(L, blua_tensor_new(dim, r, c, &err), fname, &err);
}

static blua_tensor *new_nd(lua_State *L, int dim, const int64_t *size, int zero, const char *fname) {
  blua_err err;
  blua_tensor *t = zero ? blua_tensor_new_nd(dim, size, &err) : blua_tensor_empty_nd(dim, size, &err);
  return lblua_pushresult(L, t, fname, &err);
}

static blua_tensor *new_like(lua_State *L, const blua_tensor *t, const char *fname) {
  return new_nd(L, t->dim, t->size, 0, fname);
}

/* Sizes from (n1, n2, ...) or ({n1, n2, ...}). */
static blua_tensor *new_from_sizes(lua_State *L, const char *fname) {
  int64_t size[BLUA_MAX_DIM];
  int dim = read_sizes(L, 1, size, 0, fname);
  return new_nd(L, dim, size, 1, fname);
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
  lblua_pushresult(L, blua_tensor_eye(lblua_checksize(L, 1, "eye"), &err), "eye", &err);
  return 1;
}

/* blua.tensor{...}: the shape is read down the first entries, then every nested table must
 * match it. Entries are read raw, so no metamethod runs while the tensor is filled. */
static void fill_nested(lua_State *L, int tbl, const blua_tensor *t, int d, int64_t *at, int64_t *pos) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, tbl);
  if (n != t->size[d]) {
    if (d == 1)
      luaL_error(L, "size mismatch in 'tensor': row %I has %I entries, row 1 has %I", (LUAI_UACINT)pos[0] + 1, (LUAI_UACINT)n,
                 (LUAI_UACINT)t->size[d]);
    luaL_error(L, "size mismatch in 'tensor': a table at depth %d has %I entries, the first one has %I", d + 1,
               (LUAI_UACINT)n, (LUAI_UACINT)t->size[d]);
  }
  luaL_checkstack(L, 2, "nested tables");
  for (int64_t i = 0; i < t->size[d]; i++) {
    lua_rawgeti(L, tbl, (lua_Integer)i + 1);
    pos[d] = i;
    if (d + 1 < t->dim) {
      if (!lua_istable(L, -1))
        luaL_error(L, "bad value in 'tensor': entry at depth %d is a %s, table expected", d + 1, luaL_typename(L, -1));
      fill_nested(L, lua_gettop(L), t, d + 1, at, pos);
    } else {
      int isnum;
      lua_Number v = lua_tonumberx(L, -1, &isnum);
      if (!isnum) {
        if (t->dim == 1) luaL_error(L, "bad value in 'tensor': entry [%I] is a %s, number expected", (LUAI_UACINT)i + 1, luaL_typename(L, -1));
        luaL_error(L, "bad value in 'tensor': entry [%I][%I] is a %s, number expected", (LUAI_UACINT)pos[0] + 1,
                   (LUAI_UACINT)i + 1, luaL_typename(L, -1));
      }
      blua_tensor_data(t)[(*at)++] = (float)v;
    }
    lua_pop(L, 1);
  }
}

static int l_tensor(lua_State *L) {
  if (!lua_istable(L, 1)) {
    new_from_sizes(L, "tensor");
    return 1;
  }
  int64_t size[BLUA_MAX_DIM];
  int dim = 0;
  no_extra(L, 0, "blua.tensor", "{...} | n1, n2, ...");
  lua_settop(L, 1);
  lua_pushvalue(L, 1);
  for (;;) {
    if (dim == BLUA_MAX_DIM) luaL_error(L, "bad value in 'tensor': tables nested deeper than %d", BLUA_MAX_DIM);
    size[dim++] = (int64_t)lua_rawlen(L, -1);
    lua_rawgeti(L, -1, 1);
    int nested = lua_istable(L, -1);
    lua_remove(L, -2);
    if (!nested) break;
  }
  lua_settop(L, 1);
  blua_tensor *t = new_nd(L, dim, size, 1, "tensor");
  int64_t at = 0, pos[BLUA_MAX_DIM] = {0};
  fill_nested(L, 1, t, 0, &at, pos);
  return 1;
}

static int l_isTensor(lua_State *L) {
  lua_pushboolean(L, lblua_totensor(L, 1) != NULL);
  return 1;
}

static int l_setNumThreads(lua_State *L) {
  lua_Integer n = lblua_checkint(L, 1, "thread count", "setNumThreads");
  if (n < 1 || n > MAX_THREADS)
    luaL_error(L, "bad thread count in 'setNumThreads': %I (1..%d)", (LUAI_UACINT)n, MAX_THREADS);
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
  lua_Integer n = lblua_checkint(L, 1, "size", "randperm");
  if (n < 0 || n > INT32_MAX) luaL_error(L, "bad size in 'randperm': %I (0..2^31-1)", (LUAI_UACINT)n);
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
  blua_tensor *c = lblua_checktensor(L, 1), *a = lblua_readtensor(L, 2), *b = lblua_readtensor(L, 3);
  char sa[SHAPE_LEN], sb[SHAPE_LEN];
  if (a->dim != 2 || b->dim != 2 || c->dim != 2 || a->size[1] != b->size[0] || c->size[0] != a->size[0] ||
      c->size[1] != b->size[1] || !blua_tensor_is_contiguous(a) || !blua_tensor_is_contiguous(b) ||
      !blua_tensor_is_contiguous(c) || a->size[0] > INT32_MAX || a->size[1] > INT32_MAX || b->size[1] > INT32_MAX)
    return luaL_error(L, "size mismatch in '_sgemm': %s * %s", shape(a, sa), shape(b, sb));
  int m = (int)a->size[0], k = (int)a->size[1], n = (int)b->size[1];
  if (m == 0 || n == 0 || k == 0) return 0;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, blua_tensor_data(a), k,
              blua_tensor_data(b), n, 0.0f, blua_tensor_data(c), n);
  return 0;
}

/* blua._mmSideBySide(reps, {c1, a1, b1}, {c2, a2, b2}, ...): each product c = a b made reps
 * times, all products at once, one OpenMP thread each (OpenBLAS runs single-threaded inside
 * the region); returns the wall seconds of the whole. scripts/bench/floor.lua measures with it
 * what T threads can do on products cut into T blocks; not part of the API. */
enum { SIDE_BY_SIDE_MAX = 64 };

static int l_mmSideBySide(lua_State *L) {
  lua_Integer reps = lblua_checkint(L, 1, "repetitions", "_mmSideBySide");
  int n = lua_gettop(L) - 1;
  if (reps < 1 || reps > INT32_MAX) return luaL_error(L, "bad repetitions in '_mmSideBySide': %I (1 to 2^31 - 1)", reps);
  if (n < 1 || n > SIDE_BY_SIDE_MAX)
    return luaL_error(L, "bad arguments to '_mmSideBySide': 1 to %d products {c, a, b} expected, got %d",
                      SIDE_BY_SIDE_MAX, n);
  blua_tensor *op[SIDE_BY_SIDE_MAX][3];
  for (int p = 0; p < n; p++) {
    luaL_checktype(L, p + 2, LUA_TTABLE);
    for (int j = 0; j < 3; j++) op[p][j] = lblua_listtensor(L, p + 2, j + 1, "product", "_mmSideBySide");
  }
  /* Checked and warmed up one by one; the products must not write where another one reads
   * or writes, since they run at the same time. */
  blua_err err;
  for (int p = 0; p < n; p++) {
    for (int q = 0; q < n; q++)
      for (int j = 0; j < 3; j++)
        if (q != p && op[q][j]->storage == op[p][0]->storage)
          return luaL_error(L, "bad argument #%d to '_mmSideBySide' (its result shares storage with product %d)",
                            p + 2, q + 1);
    lblua_check(L, blua_mm(op[p][0], 0.0f, 1.0f, op[p][1], op[p][2], &err), "_mmSideBySide", &err);
  }
  int failed = -1; /* a product that failed later (out of memory for a copy) */
  double t0 = blua_wall_time();
#pragma omp parallel for num_threads(n) schedule(static, 1)
  for (int p = 0; p < n; p++) {
    blua_err e;
    for (lua_Integer r = 0; r < reps; r++)
      if (blua_mm(op[p][0], 0.0f, 1.0f, op[p][1], op[p][2], &e) != BLUA_OK) {
#pragma omp atomic write
        failed = p;
        break;
      }
  }
  double seconds = blua_wall_time() - t0;
  if (failed >= 0) return luaL_error(L, "out of memory in '_mmSideBySide' (product %d)", failed + 1);
  lua_pushnumber(L, seconds);
  return 1;
}

/* blua._mapLibm(t, name): t:exp(), t:log(), t:log1p(), t:tanh() or t:sigmoid() as the maps
 * computed them before they used vmath.h, a libm call per entry (8192-entry pieces dealt to the
 * threads above BLUA_OMP_THRESHOLD entries), on a contiguous tensor. The old side of
 * scripts/bench/maps.lua, not part of the API. */
static void libm_piece(float *p, int64_t n, int f) {
  switch (f) {
    case 0: for (int64_t k = 0; k < n; k++) p[k] = expf(p[k]); break;
    case 1: for (int64_t k = 0; k < n; k++) p[k] = logf(p[k]); break;
    case 2: for (int64_t k = 0; k < n; k++) p[k] = log1pf(p[k]); break;
    case 3: for (int64_t k = 0; k < n; k++) p[k] = tanhf(p[k]); break;
    default:
      for (int64_t k = 0; k < n; k++) {
        float x = p[k];
        p[k] = x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
      }
  }
}

static int l_mapLibm(lua_State *L) {
  static const char *const names[] = {"exp", "log", "log1p", "tanh", "sigmoid", NULL};
  blua_tensor *t = lblua_checktensor(L, 1);
  int f = luaL_checkoption(L, 2, NULL, names);
  if (!blua_tensor_is_contiguous(t)) return luaL_error(L, "bad argument #1 to '_mapLibm' (contiguous tensor expected)");
  float *p = blua_tensor_data(t);
  int64_t n = blua_tensor_nelement(t), block = 8192, pieces = (n + block - 1) / block;
  BLUA_PAR(n > BLUA_OMP_THRESHOLD && pieces > 1, "omp parallel for schedule(dynamic)",
  for (int64_t i = 0; i < pieces; i++) libm_piece(p + i * block, n - i * block < block ? n - i * block : block, f));
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

/* blua.cat({a, b, ...} [, d]): joined along dimension d (default: the last). */
static int l_cat(lua_State *L) {
  lua_settop(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n < 1 || n > 1 << 20) luaL_error(L, "bad argument in 'cat': %I tensors (1..2^20 expected)", (LUAI_UACINT)n);
  blua_tensor **ts = lua_newuserdatauv(L, (size_t)n * sizeof *ts, 0); /* before any tensor is read */
  for (lua_Integer k = 0; k < n; k++) {
    lua_rawgeti(L, 1, k + 1);
    ts[k] = lblua_totensor(L, -1);
    if (!ts[k]) luaL_error(L, "bad argument in 'cat': entry %I is not an open tensor", (LUAI_UACINT)k + 1);
    lua_pop(L, 1);
  }
  int d = lua_isnoneornil(L, 2) ? ts[0]->dim - 1 : lblua_checkdim(L, 2, ts[0], "cat");
  blua_err err;
  blua_tensor *r = blua_tensor_cat(ts, (int)n, d, &err); /* no Lua code runs between the reads and here */
  lblua_pushresult(L, r, "cat", &err);
  return 1;
}

/* ---- size and element access ---- */


static int t_size(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, t->size[lblua_checkdim(L, 2, t, "size")]);
    return 1;
  }
  luaL_checkstack(L, t->dim, "sizes");
  for (int d = 0; d < t->dim; d++) lua_pushinteger(L, t->size[d]);
  return t->dim;
}

static int t_dim(lua_State *L) {
  lua_pushinteger(L, lblua_readtensor(L, 1)->dim);
  return 1;
}

static int t_nElement(lua_State *L) {
  lua_pushinteger(L, blua_tensor_nelement(lblua_readtensor(L, 1)));
  return 1;
}

static int t_len(lua_State *L) {
  lua_pushinteger(L, lblua_readtensor(L, 1)->size[0]);
  return 1;
}

static int t_stride(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, t->stride[lblua_checkdim(L, 2, t, "stride")]);
    return 1;
  }
  for (int d = 0; d < t->dim; d++) lua_pushinteger(L, t->stride[d]);
  return t->dim;
}

/* The element addressed by dim indices from argument 2 on; *next is the argument after them. */
static float *element(lua_State *L, blua_tensor *t, const char *fname, int *next) {
  int64_t off = 0;
  for (int d = 0; d < t->dim; d++) off += lblua_checkindex(L, 2 + d, t->size[d], fname) * t->stride[d];
  *next = 2 + t->dim;
  return blua_tensor_data(t) + off;
}

static int t_get(lua_State *L) {
  int next;
  blua_tensor *t = lblua_readtensor(L, 1);
  no_extra(L, t->dim, "t:get", "one index per dimension");
  push_value(L, *element(L, t, "get", &next));
  return 1;
}

static int t_set(lua_State *L) {
  int next;
  blua_tensor *t = lblua_checktensor(L, 1);
  no_extra(L, t->dim + 1, "t:set", "one index per dimension, v");
  float v = (float)luaL_checknumber(L, 2 + t->dim);
  *element(L, t, "set", &next) = v;
  lua_settop(L, 1);
  return 1;
}

static void push_nested(lua_State *L, const blua_tensor *t, int d, int64_t off) {
  luaL_checkstack(L, 3, "totable");
  lua_createtable(L, t->size[d] > INT32_MAX ? INT32_MAX : (int)t->size[d], 0);
  for (int64_t i = 0; i < t->size[d]; i++) {
    int64_t o = off + i * t->stride[d];
    if (d + 1 < t->dim)
      push_nested(L, t, d + 1, o);
    else
      push_value(L, blua_tensor_data(t)[o]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Tables are made while reading, so a finalizer may run and close t: walk a private view
 * held by a userdata of its own, which nothing else can reach. */
static int t_totable(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  lua_settop(L, 1);
  blua_err err;
  blua_tensor *v = lblua_pushresult(L, blua_tensor_narrow(t, 0, 0, t->size[0], &err), "totable", &err); /* 2 */
  push_nested(L, v, 0, 0);
  return 1;
}

/* ---- views ---- */

static int t_narrow(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int d = lblua_checkdim(L, 2, t, "narrow");
  lua_Integer first = lblua_checkint(L, 3, "index", "narrow"), len = lblua_checkint(L, 4, "length", "narrow");
  char s[SHAPE_LEN];
  if (first < 1 || first > t->size[d] + 1 || len < 0 || len > t->size[d] - (first - 1)) {
    if (len >= 0 && first >= 1 && len <= LUA_MAXINTEGER - first)
      luaL_error(L, "out of range in 'narrow': elements %I..%I of dimension %d of size %s", (LUAI_UACINT)first,
                 (LUAI_UACINT)(first + len - 1), d + 1, shape(t, s));
    luaL_error(L, "out of range in 'narrow': %I elements from %I of dimension %d of size %s", (LUAI_UACINT)len,
               (LUAI_UACINT)first, d + 1, shape(t, s));
  }
  blua_err err;
  lblua_pushresult(L, blua_tensor_narrow(t, d, first - 1, len, &err), "narrow", &err);
  return 1;
}

/* t:t() (1-D or 2-D) or t:transpose(d1, d2). */
static int t_transpose(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  blua_err err;
  if (lua_isnoneornil(L, 2)) {
    lblua_pushresult(L, blua_tensor_transpose(t, &err), "t", &err);
    return 1;
  }
  int d1 = lblua_checkdim(L, 2, t, "transpose"), d2 = lblua_checkdim(L, 3, t, "transpose");
  lblua_pushresult(L, blua_tensor_transpose_dims(t, d1, d2, &err), "transpose", &err);
  return 1;
}

/* t:permute(p1, ..., pn): a view whose dimension i is t's dimension p_i, one per dimension. */
static int t_permute(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  no_extra(L, t->dim, "t:permute", "one dimension per dimension of t");
  int order[BLUA_MAX_DIM];
  for (int i = 0; i < t->dim; i++) order[i] = lblua_checkdim(L, i + 2, t, "permute");
  blua_err err;
  lblua_pushresult(L, blua_tensor_permute(t, order, &err), "permute", &err);
  return 1;
}

static int view_or_reshape(lua_State *L, int copy, const char *fname) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int64_t size[BLUA_MAX_DIM];
  int dim = read_sizes(L, 2, size, 1, fname);
  infer_size(L, dim, size, blua_tensor_nelement(t), fname);
  blua_err err;
  if (copy && !blua_tensor_is_contiguous(t)) {
    blua_tensor *c = blua_tensor_clone(t, &err);
    if (!c) lblua_error(L, fname, &err);
    blua_tensor *v = blua_tensor_view_nd(c, dim, size, &err);
    blua_tensor_release(c);
    lblua_pushresult(L, v, fname, &err);
    return 1;
  }
  lblua_pushresult(L, blua_tensor_view_nd(t, dim, size, &err), fname, &err);
  return 1;
}

static int t_view(lua_State *L) { return view_or_reshape(L, 0, "view"); }
static int t_reshape(lua_State *L) { return view_or_reshape(L, 1, "reshape"); }

/* t:select(d, i): the slice, one dimension fewer; on a 1-D tensor the element itself. */
static int t_select(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int d = lblua_checkdim(L, 2, t, "select");
  int64_t i = lblua_checkindex(L, 3, t->size[d], "select");
  if (t->dim == 1) {
    push_value(L, blua_tensor_data(t)[i * t->stride[0]]);
    return 1;
  }
  blua_err err;
  lblua_pushresult(L, blua_tensor_select(t, d, i, &err), "select", &err);
  return 1;
}

static int t_squeeze(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int d = lua_isnoneornil(L, 2) ? -1 : lblua_checkdim(L, 2, t, "squeeze");
  blua_err err;
  lblua_pushresult(L, blua_tensor_squeeze(t, d, &err), "squeeze", &err);
  return 1;
}

static int t_unsqueeze(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  lua_Integer d = lblua_checkint(L, 2, "dimension", "unsqueeze");
  if (d < 1 || d > t->dim + 1)
    luaL_error(L, "bad dimension in 'unsqueeze': %I for a %d-D tensor (1..%d)", (LUAI_UACINT)d, t->dim, t->dim + 1);
  blua_err err;
  lblua_pushresult(L, blua_tensor_unsqueeze(t, (int)d - 1, &err), "unsqueeze", &err);
  return 1;
}

static int t_clone(lua_State *L) {
  blua_err err;
  lblua_pushresult(L, blua_tensor_clone(lblua_readtensor(L, 1), &err), "clone", &err);
  return 1;
}

static int t_contiguous(lua_State *L) {
  blua_err err;
  lblua_pushresult(L, blua_tensor_contiguous(lblua_readtensor(L, 1), &err), "contiguous", &err);
  return 1;
}

static int t_isContiguous(lua_State *L) {
  lua_pushboolean(L, blua_tensor_is_contiguous(lblua_readtensor(L, 1)));
  return 1;
}

static int t_copy(lua_State *L) {
  blua_err err;
  lblua_check(L, blua_tensor_copy(lblua_checktensor(L, 1), lblua_readsource(L, 2, lblua_checktensor(L, 1), "copy"), &err), "copy", &err);
  lua_settop(L, 1);
  return 1;
}

static int t_fill(lua_State *L) {
  float v = (float)luaL_checknumber(L, 2);
  blua_tensor_fill(lblua_checktensor(L, 1), v);
  lua_settop(L, 1);
  return 1;
}

static int t_zero(lua_State *L) {
  blua_tensor_fill(lblua_checktensor(L, 1), 0.0f);
  lua_settop(L, 1);
  return 1;
}

/* 0-based positions from the 1-based indices at arg (a list or a tensor), into a new
 * userdata pushed on the stack (see lblua.h). A list is read raw (its own length and entries, no __len or
 * __index), so no code of the caller's runs and a lying __len cannot size the buffer. Making the
 * buffer may run a finalizer, so the caller fetches its tensors only afterwards. */
int64_t *lblua_readindices(lua_State *L, int arg, int64_t *count, const char *fname) {
  blua_tensor *it = lblua_totensor(L, arg);
  lua_Integer n;
  if (it) {
    n = blua_tensor_nelement(it);
  } else {
    if (!lua_istable(L, arg))
      luaL_error(L, "bad argument in '%s': indices must be a table or a tensor, got %s", fname, luaL_typename(L, arg));
    n = (lua_Integer)lua_rawlen(L, arg);
  }
  if (n < 0 || n > BLUA_MAX_ELEMENTS) luaL_error(L, "bad argument in '%s': %I indices", fname, (LUAI_UACINT)n);
  int64_t *idx = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *idx, 0);
  if (it) {
    it = lblua_totensor(L, arg); /* the allocation may have run a finalizer */
    if (!it) luaL_error(L, "bad argument in '%s': the index tensor was closed", fname);
    const float *p = blua_tensor_data(it);
    for (lua_Integer k = 0; k < n; k++) {
      float v = p[blua_tensor_offset_of(it, k)];
      if (!(v == floorf(v) && fabsf(v) < 9.0e15f))
        luaL_error(L, "bad index in '%s': entry %I is %f, not an integer", fname, (LUAI_UACINT)k + 1, (double)v);
      idx[k] = (int64_t)v - 1;
    }
  } else {
    for (lua_Integer k = 0; k < n; k++) {
      lua_rawgeti(L, arg, k + 1);
      int isnum;
      lua_Integer v = lua_tointegerx(L, -1, &isnum);
      if (!isnum) {
        if (lua_type(L, -1) == LUA_TNUMBER)
          luaL_error(L, "bad index in '%s': entry %I is %s, not an integer", fname, (LUAI_UACINT)k + 1, lua_tostring(L, -1));
        luaL_error(L, "bad index in '%s': entry %I is a %s, integer expected", fname, (LUAI_UACINT)k + 1, luaL_typename(L, -1));
      }
      idx[k] = v == LUA_MININTEGER ? -1 : (int64_t)v - 1;
      lua_pop(L, 1);
    }
  }
  *count = n;
  return idx;
}

/* t:index(d, indices): the slices at those (1-based) positions of dimension d, a new tensor. */
static int t_index(lua_State *L) {
  lua_settop(L, 3);
  int d = lblua_checkdim(L, 2, lblua_readtensor(L, 1), "index");
  int64_t n;
  int64_t *idx = lblua_readindices(L, 3, &n, "index");
  blua_tensor *t = lblua_readtensor(L, 1);
  blua_err err;
  lblua_pushresult(L, blua_tensor_index(t, d, idx, n, &err), "index", &err);
  return 1;
}

/* blua._gatherRows({dst1, ...}, {src1, ...}, rows) → posted: rows (1-based, a table or a
 * tensor) of each src into its dst, as t:indexRows(rows, dst) does; inside a training epoch's
 * thread team the copies run on the waiting threads while Lua goes on (true; blua._teamJoin,
 * or the team's next kernel, waits for them), else at once (false). For the training loop,
 * which gathers the next batch while it finishes the current one. */
static int l_gatherRows(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer count = (lua_Integer)lua_rawlen(L, 1);
  if (count > BLUA_GATHER_MAX || (lua_Integer)lua_rawlen(L, 2) != count)
    return luaL_error(L, "bad argument in '_gatherRows': %I destinations and %I sources (at most %d pairs)",
                      (LUAI_UACINT)count, (LUAI_UACINT)lua_rawlen(L, 2), (int)BLUA_GATHER_MAX);
  int64_t n;
  int64_t *idx = lblua_readindices(L, 3, &n, "_gatherRows");
  blua_tensor *dst[BLUA_GATHER_MAX], *src[BLUA_GATHER_MAX];
  for (int k = 0; k < (int)count; k++) { /* (read after the allocation above, which may run finalizers) */
    dst[k] = lblua_listtensor(L, 1, k + 1, "destinations", "_gatherRows");
    lua_rawgeti(L, 2, k + 1); /* a source is only read: an expanded one is fine */
    src[k] = lblua_totensor(L, -1);
    lua_pop(L, 1);
    if (!src[k]) luaL_error(L, "bad argument #2 to '_gatherRows' (sources[%d] must be a live tensor)", k + 1);
  }
  blua_err err;
  int posted = blua_tensor_gather_rows_post((int)count, dst, (const blua_tensor *const *)src, idx, n, &err);
  if (posted == BLUA_ERROR) lblua_error(L, "_gatherRows", &err);
  lua_pushboolean(L, posted);
  return 1;
}

/* t:indexRows{i1, i2, ...} or t:indexRows(idxTensor): a new tensor of those rows (1-based).
 * t:indexRows(rows, out) gathers them into out instead (as many rows, each as long as t's) and
 * returns out: a training loop reuses one buffer per batch size. */
static int t_indexRows(lua_State *L) {
  lua_settop(L, 3);
  lblua_readtensor(L, 1);
  int into = !lua_isnil(L, 3);
  if (into) lblua_checktensor(L, 3);
  int64_t n;
  int64_t *idx = lblua_readindices(L, 2, &n, "indexRows");
  blua_tensor *t = lblua_readtensor(L, 1);
  blua_err err;
  if (into) {
    blua_tensor *out = lblua_checktensor(L, 3); /* (fetched again: reading the indices allocates) */
    if (out->storage == t->storage) luaL_error(L, "bad argument in 'indexRows': the destination shares memory with the source");
    lblua_check(L, blua_tensor_gather_rows(out, t, idx, n, &err), "indexRows", &err);
    lua_settop(L, 3);
    return 1;
  }
  if (t->dim <= 2) {
    blua_tensor *r = new_tensor(L, t->dim, n, blua_tensor_cols(t), "indexRows");
    lblua_check(L, blua_tensor_gather_rows(r, t, idx, n, &err), "indexRows", &err);
    return 1;
  }
  lblua_pushresult(L, blua_tensor_index(t, 0, idx, n, &err), "indexRows", &err);
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
    lblua_check(L, blua_tensor_add(t, t, (float)lua_tonumber(L, 2), lblua_readsource(L, 3, t, "add"), &err), "add", &err);
  } else {
    if (!lua_isnoneornil(L, 3)) /* t:add(u, a) would add u and drop a: the scale goes first */
      luaL_error(L, "t:add: (u | a | a, u) expected, got a %s after the tensor",
                 luaL_testudata(L, 3, LBLUA_TENSOR_MT) ? "tensor" : luaL_typename(L, 3));
    lblua_check(L, blua_tensor_add(t, t, 1.0f, lblua_readsource(L, 2, t, "add"), &err), "add", &err);
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
    lblua_check(L, blua_tensor_add(t, t, -1.0f, lblua_readsource(L, 2, t, "sub"), &err), "sub", &err);
  lua_settop(L, 1);
  return 1;
}

static int t_cmul(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  lblua_check(L, blua_tensor_cmul(t, t, lblua_readsource(L, 2, t, "cmul"), &err), "cmul", &err);
  lua_settop(L, 1);
  return 1;
}

static int t_cdiv(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  lblua_check(L, blua_tensor_cdiv(t, t, lblua_readsource(L, 2, t, "cdiv"), &err), "cdiv", &err);
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
  lblua_check(L, blua_tensor_add_rowvec(t, t, (float)luaL_optnumber(L, 3, 1.0), lblua_readsource(L, 2, t, "addRow"), &err),
              "addRow", &err);
  lua_settop(L, 1);
  return 1;
}

/* t:sumRows(): the 1 x cols tensor of column sums. */
static int t_sumRows(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  blua_err err;
  lblua_check(L, blua_tensor_check_matrix(t, &err), "sumRows", &err);
  blua_tensor *r = new_tensor(L, 2, 1, blua_tensor_cols(t), "sumRows");
  lblua_check(L, blua_tensor_sum_rows(r, 0.0f, 1.0f, t, &err), "sumRows", &err);
  return 1;
}

/* t:mm(u) returns the new product t u. */
static int t_mm(lua_State *L) {
  if (lua_gettop(L) >= 3) { /* c:mm(a, b), Torch's form: c = a b, in place */
    blua_tensor *c = lblua_checktensor(L, 1);
    blua_err err;
    lblua_check(L, blua_mm(c, 0.0f, 1.0f, lblua_readtensor(L, 2), lblua_readtensor(L, 3), &err), "mm", &err);
    lua_settop(L, 1);
    return 1;
  }
  blua_tensor *a = lblua_readtensor(L, 1), *b = lblua_readtensor(L, 2);
  char sa[SHAPE_LEN], sb[SHAPE_LEN];
  if (a->dim != 2 || b->dim != 2 || a->size[1] != b->size[0])
    return luaL_error(L, "size mismatch in 'mm': %s * %s", shape(a, sa), shape(b, sb));
  blua_err err;
  blua_tensor *c = lblua_pushresult(L, blua_tensor_empty(2, a->size[0], b->size[1], &err), "mm", &err);
  lblua_check(L, blua_mm(c, 0.0f, 1.0f, a, b, &err), "mm", &err);
  return 1;
}

/* c:addmm([beta,] [alpha,] a, b): c = beta c + alpha a b, in place; as Torch7's method, one
 * number is alpha and two are beta, alpha (both default 1). */
static int t_addmm(lua_State *L) {
  blua_tensor *c = lblua_checktensor(L, 1);
  int top = lua_gettop(L), first = top - 1; /* a, b are the last two */
  if (top < 3 || top > 5 || lua_type(L, first) != LUA_TUSERDATA || lua_type(L, top) != LUA_TUSERDATA)
    return luaL_error(L, "t:addmm: ([beta,] [alpha,] a, b) expected");
  float beta = 1.0f, alpha = 1.0f;
  if (top == 4) alpha = (float)luaL_checknumber(L, 2);
  if (top == 5) beta = (float)luaL_checknumber(L, 2), alpha = (float)luaL_checknumber(L, 3);
  blua_err err;
  lblua_check(L, blua_mm(c, beta, alpha, lblua_readtensor(L, first), lblua_readtensor(L, top), &err), "addmm", &err);
  lua_settop(L, 1);
  return 1;
}

/* Elementwise maps, in place (Torch style): t:exp() changes t; t:clone():exp() does not. The
 * loops are the core's (blua/tensor_map.h). */
static void map_or_raise(lua_State *L, blua_tensor *t, blua_map_op op, float a, float b, const char *fname) {
  blua_err err;
  lblua_check(L, blua_tensor_map(t, op, a, b, &err), fname, &err);
}

#define UNARY(name, op)                                           \
  static int t_##name(lua_State *L) {                             \
    map_or_raise(L, lblua_checktensor(L, 1), op, 0.0f, 0.0f, #name); \
    lua_settop(L, 1);                                             \
    return 1;                                                     \
  }
UNARY(abs, BLUA_MAP_ABS)
UNARY(exp, BLUA_MAP_EXP)
UNARY(log, BLUA_MAP_LOG)
UNARY(sqrt, BLUA_MAP_SQRT)
UNARY(tanh, BLUA_MAP_TANH)
UNARY(sigmoid, BLUA_MAP_SIGMOID)
UNARY(sign, BLUA_MAP_SIGN)
UNARY(neg, BLUA_MAP_NEG)
UNARY(square, BLUA_MAP_SQUARE)
UNARY(log1p, BLUA_MAP_LOG1P)
UNARY(floor, BLUA_MAP_FLOOR)
UNARY(round, BLUA_MAP_ROUND)
UNARY(ceil, BLUA_MAP_CEIL)

/* Scalar comparisons and clamps, in place. */
static int t_clamp(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  lua_Number lo = luaL_optnumber(L, 2, -HUGE_VAL), hi = luaL_optnumber(L, 3, HUGE_VAL);
  if (lo > hi) return luaL_error(L, "bad bounds in 'clamp': %f > %f", lo, hi);
  map_or_raise(L, t, BLUA_MAP_CLAMP, (float)lo, (float)hi, "clamp");
  lua_settop(L, 1);
  return 1;
}

#define SCALAR(name, op)                                                    \
  static int t_##name(lua_State *L) {                                       \
    float a_ = (float)luaL_checknumber(L, 2);                               \
    map_or_raise(L, lblua_checktensor(L, 1), op, a_, 0.0f, #name);          \
    lua_settop(L, 1);                                                       \
    return 1;                                                               \
  }
SCALAR(gt, BLUA_MAP_GT)
SCALAR(ge, BLUA_MAP_GE)
SCALAR(lt, BLUA_MAP_LT)
SCALAR(le, BLUA_MAP_LE)
SCALAR(eq, BLUA_MAP_EQ)
SCALAR(ne, BLUA_MAP_NE)
SCALAR(pow, BLUA_MAP_POW)

/* t:cmax(u|number), t:cmin(u|number): elementwise max/min, in place. */
static int minmax(lua_State *L, int want_max, const char *fname) {
  blua_tensor *t = lblua_checktensor(L, 1);
  if (lua_isnumber(L, 2)) {
    map_or_raise(L, t, want_max ? BLUA_MAP_MAX : BLUA_MAP_MIN, (float)lua_tonumber(L, 2), 0.0f, fname);
  } else {
    blua_err err;
    blua_tensor *u = lblua_readsource(L, 2, t, fname);
    lblua_check(L, (want_max ? blua_tensor_cmax : blua_tensor_cmin)(t, t, u, &err), fname, &err);
  }
  lua_settop(L, 1);
  return 1;
}

static int t_cmax(lua_State *L) { return minmax(L, 1, "cmax"); }
static int t_cmin(lua_State *L) { return minmax(L, 0, "cmin"); }

/* ---- reductions ---- */

/* Shape of t with size 1 at d. */
static void reduced(const blua_tensor *t, int d, int64_t *size) {
  memcpy(size, t->size, sizeof t->size);
  size[d] = 1;
}

/* The optional number at arg (def when absent or nil); a NaN or an infinity is refused. */
static double finite_opt(lua_State *L, int arg, double def, const char *fname) {
  double v = luaL_optnumber(L, arg, def);
  if (!isfinite(v)) luaL_error(L, "t:%s: argument #%d must be finite, got %f", fname, arg - 1, v);
  return v;
}

/* In-place random fills from the generator blua.manualSeed reseeds, drawn in row-major order
 * on one thread (the same numbers whatever the thread count and the view's layout). */
static int t_uniform(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  double a = finite_opt(L, 2, 0.0, "uniform"), b = finite_opt(L, 3, 1.0, "uniform");
  if (a > b) return luaL_error(L, "t:uniform: bounds a > b (%f > %f)", a, b);
  if (!isfinite(b - a)) return luaL_error(L, "t:uniform: b - a overflows (%f, %f)", a, b);
  blua_tensor_uniform(t, a, b);
  lua_settop(L, 1);
  return 1;
}

static int t_normal(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  double mean = finite_opt(L, 2, 0.0, "normal"), std = finite_opt(L, 3, 1.0, "normal");
  if (std < 0) return luaL_error(L, "t:normal: std must be >= 0, got %f", std);
  blua_tensor_normal(t, mean, std);
  lua_settop(L, 1);
  return 1;
}

static int t_bernoulli(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  double p = luaL_optnumber(L, 2, 0.5);
  if (!(p >= 0 && p <= 1)) return luaL_error(L, "t:bernoulli: p must be in [0, 1], got %f", p);
  blua_tensor_bernoulli(t, p);
  lua_settop(L, 1);
  return 1;
}

/* The reductions of one kind (sum or mean, var, std, prod): a number for the whole tensor, or
 * with d a new tensor of t's shape with size 1 at d. */
typedef struct {
  const char *name;
  double (*whole)(const blua_tensor *t, int kind);
  int (*along)(blua_tensor *out, const blua_tensor *t, int d, int kind, blua_err *err);
  int kind;
  int biased; /* the kind when the third argument is true (var, std), else -1 */
} reduction;

static int reduce(lua_State *L, const reduction *how) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int kind = how->biased >= 0 && lua_toboolean(L, 3) ? how->biased : how->kind; /* Torch's flag */
  if (lua_isnoneornil(L, 2)) {
    push_value(L, how->whole(t, kind));
    return 1;
  }
  int d = lblua_checkdim(L, 2, t, how->name);
  int64_t size[BLUA_MAX_DIM];
  reduced(t, d, size);
  blua_tensor *r = new_nd(L, t->dim, size, 0, how->name);
  blua_err err;
  lblua_check(L, how->along(r, t, d, kind, &err), how->name, &err);
  return 1;
}

static double whole_sum(const blua_tensor *t, int mean) {
  int64_t n = blua_tensor_nelement(t);
  return !mean ? blua_tensor_sum(t) : n ? blua_tensor_sum(t) / (double)n : NAN;
}
static double whole_stat(const blua_tensor *t, int kind) { return blua_tensor_stat(t, (blua_stat)kind); }
static int along_stat(blua_tensor *out, const blua_tensor *t, int d, int kind, blua_err *err) {
  return blua_tensor_stat_dim(out, t, d, (blua_stat)kind, err);
}

#define REDUCTION(name, whole, along, kind, biased)                  \
  static int t_##name(lua_State *L) {                                \
    static const reduction how = {#name, whole, along, kind, biased}; \
    return reduce(L, &how);                                          \
  }
REDUCTION(sum, whole_sum, blua_tensor_sum_dim, 0, -1)
REDUCTION(mean, whole_sum, blua_tensor_sum_dim, 1, -1)
REDUCTION(var, whole_stat, along_stat, BLUA_STAT_VAR, BLUA_STAT_VAR_BIASED) /* unbiased unless flagged, as Torch7 */
REDUCTION(std, whole_stat, along_stat, BLUA_STAT_STD, BLUA_STAT_STD_BIASED)
REDUCTION(prod, whole_stat, along_stat, BLUA_STAT_PROD, -1)

/* t:cumsum(d): a new tensor of t's shape. */
static int t_cumsum(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int d = lblua_checkdim(L, 2, t, "cumsum");
  blua_tensor *r = new_nd(L, t->dim, t->size, 0, "cumsum");
  blua_err err;
  lblua_check(L, blua_tensor_cumsum(r, t, d, &err), "cumsum", &err);
  return 1;
}

/* Values and 1-based indices of the first k of each line along d, sorted. */
static int sorted_first(lua_State *L, blua_tensor *t, int d, int64_t k, int descending, const char *fname) {
  int64_t size[BLUA_MAX_DIM];
  memcpy(size, t->size, sizeof t->size);
  size[d] = k;
  blua_tensor *v = new_nd(L, t->dim, size, 0, fname);
  blua_tensor *i = new_nd(L, t->dim, size, 0, fname);
  blua_err err;
  lblua_check(L, blua_tensor_sort(v, i, t, d, descending, &err), fname, &err);
  return 2;
}

/* t:sort([d [, descending]]): d defaults to the last dimension. */
static int t_sort(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  if (t->dim == 0) return luaL_error(L, "t:sort: a tensor without dimensions");
  int d = lua_isnoneornil(L, 2) ? t->dim - 1 : lblua_checkdim(L, 2, t, "sort");
  int descending = lua_toboolean(L, 3);
  return sorted_first(L, t, d, t->size[d], descending, "sort");
}

/* t:topk(k [, d [, largest]]): the k smallest by default, as Torch7. */
static int t_topk(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  if (t->dim == 0) return luaL_error(L, "t:topk: a tensor without dimensions");
  int d = lua_isnoneornil(L, 3) ? t->dim - 1 : lblua_checkdim(L, 3, t, "topk");
  int isint = 0;
  lua_Integer k = lua_tointegerx(L, 2, &isint);
  char sh[SHAPE_LEN];
  if (!isint || k < 0 || k > t->size[d])
    return luaL_error(L, "t:topk: k must be an integer in 0..%d for dimension %d of %s, got %s", (int)t->size[d], d + 1,
                      shape(t, sh), luaL_tolstring(L, 2, NULL));
  return sorted_first(L, t, d, k, lua_toboolean(L, 4), "topk");
}

/* t:max() -> number; t:max(d) -> values, indices (1-based), both with size 1 at d. */
static int extreme(lua_State *L, int want_max, const char *fname) {
  blua_tensor *t = lblua_readtensor(L, 1);
  if (lua_isnoneornil(L, 2)) {
    push_value(L, want_max ? blua_tensor_max(t) : blua_tensor_min(t));
    return 1;
  }
  int d = lblua_checkdim(L, 2, t, fname);
  int64_t size[BLUA_MAX_DIM];
  reduced(t, d, size);
  blua_tensor *v = new_nd(L, t->dim, size, 0, fname);
  blua_tensor *i = new_nd(L, t->dim, size, 0, fname);
  blua_err err;
  lblua_check(L, blua_tensor_extreme_dim(v, i, t, d, want_max, &err), fname, &err);
  return 2;
}

static int t_max(lua_State *L) { return extreme(L, 1, "max"); }
static int t_min(lua_State *L) { return extreme(L, 0, "min"); }
static int t_norm(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  lua_pushnumber(L, blua_tensor_norm(t));
  return 1;
}

static int t_dot(lua_State *L) {
  blua_tensor *a = lblua_readtensor(L, 1), *b = lblua_readtensor(L, 2);
  char s1[SHAPE_LEN], s2[SHAPE_LEN];
  if (!blua_tensor_same_shape(a, b)) return luaL_error(L, "size mismatch in 'dot': %s and %s", shape(a, s1), shape(b, s2));
  lua_pushnumber(L, blua_tensor_dot(a, b));
  return 1;
}

static int t_allFinite(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  lua_pushboolean(L, blua_tensor_all_finite(t));
  return 1;
}

/* t:argmax(2): rows x 1 tensor of 1-based column indices of each row's maximum;
 * t:argmax(1): 1 x cols of row indices. A 1-D tensor: the 1-based index as a number.
 * N-d: the indices along d, with size 1 at d. */
static int t_argmax(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int d = lua_isnoneornil(L, 2) ? (t->dim >= 2 ? 1 : 0) : lblua_checkdim(L, 2, t, "argmax");
  if (blua_tensor_nelement(t) == 0) return luaL_error(L, "empty tensor in 'argmax'");
  if (t->dim == 1) {
    int64_t best = 0;
    for (int64_t i = 1; i < t->size[0]; i++)
      if (*blua_tensor_at(t, i, 0) > *blua_tensor_at(t, best, 0)) best = i;
    lua_pushinteger(L, best + 1);
    return 1;
  }
  if (t->dim > 2) {
    int64_t size[BLUA_MAX_DIM];
    reduced(t, d, size);
    blua_tensor *i = new_nd(L, t->dim, size, 0, "argmax");
    blua_err err;
    blua_tensor *v = blua_tensor_empty_nd(t->dim, size, &err); /* C only from here on */
    if (!v) lblua_error(L, "argmax", &err);
    int status = blua_tensor_extreme_dim(v, i, t, d, 1, &err);
    blua_tensor_release(v);
    lblua_check(L, status, "argmax", &err);
    return 1;
  }
  int64_t n = d == 1 ? t->size[0] : t->size[1];
  int64_t *idx = lua_newuserdatauv(L, (size_t)n * sizeof *idx, 0);
  t = lblua_readtensor(L, 1); /* the allocation may have run a finalizer */
  if (d == 1) blua_tensor_argmax_rows(t, idx); else blua_tensor_argmax_cols(t, idx);
  blua_tensor *r = new_tensor(L, 2, d == 1 ? n : 1, d == 1 ? 1 : n, "argmax");
  float *p = blua_tensor_data(r);
  for (int64_t k = 0; k < n; k++) p[k] = (float)(idx[k] + 1);
  return 1;
}

/* ---- metamethods ---- */

/* A binary operator on (tensor|number, tensor|number): result is a new tensor. */
static int arith(lua_State *L, int op, const char *fname) {
  lua_settop(L, 2);
  blua_tensor *a = lblua_totensor(L, 1), *b = lblua_totensor(L, 2);
  blua_err err;
  char s1[SHAPE_LEN], s2[SHAPE_LEN];
  if (a && b) {
    if (!blua_tensor_same_shape(a, b)) return luaL_error(L, "size mismatch in '%s': %s and %s", fname, shape(a, s1), shape(b, s2));
    blua_tensor *r = new_like(L, a, fname);
    lblua_check(L, blua_tensor_add(r, a, op == '+' ? 1.0f : -1.0f, b, &err), fname, &err);
    return 1;
  }
  blua_tensor *t = a ? a : b;
  if (!t) return luaL_error(L, "bad operands in '%s'", fname);
  float x = (float)luaL_checknumber(L, a ? 2 : 1);
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
  blua_tensor *r = new_like(L, t, fname);
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
  lua_settop(L, 1);
  blua_tensor *t = lblua_readtensor(L, 1);
  blua_err err;
  blua_tensor *r = new_like(L, t, "unm");
  blua_tensor_affine(r, t, -1.0f, 0.0f, &err);
  return 1;
}

/* t[i]: select(1, i) (the element of a 1-D tensor); other keys: the methods. */
static int m_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_settop(L, 2);
    lua_pushinteger(L, 1);
    lua_insert(L, 2);
    return t_select(L);
  }
  lua_pushvalue(L, 2);
  lua_gettable(L, lua_upvalueindex(1));
  return 1;
}

/* t[i] = v: a number fills the slice (sets the element of a 1-D tensor), a tensor is copied
 * into it. */
static int m_newindex(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  if (lua_type(L, 2) != LUA_TNUMBER)
    return luaL_error(L, "bad key in 'newindex': tensors take integer keys, got %s", luaL_typename(L, 2));
  int64_t i = lblua_checkindex(L, 2, t->size[0], "newindex");
  blua_tensor slice = *t;
  slice.offset += (size_t)(i * t->stride[0]);
  if (t->dim > 1) {
    for (int d = 0; d < t->dim - 1; d++) {
      slice.size[d] = t->size[d + 1];
      slice.stride[d] = t->stride[d + 1];
    }
    slice.dim = t->dim - 1;
    slice.size[slice.dim] = slice.stride[slice.dim] = 1;
  } else {
    slice.size[0] = 1;
  }
  if (lua_type(L, 3) == LUA_TNUMBER) {
    blua_tensor_fill(&slice, (float)lua_tonumber(L, 3));
    return 0;
  }
  blua_tensor *v = lblua_totensor(L, 3);
  if (!v) return luaL_error(L, "bad value in 'newindex': number or tensor expected, got %s", luaL_typename(L, 3));
  lblua_readsource(L, 3, t, "newindex");
  blua_err err;
  lblua_check(L, blua_tensor_copy(&slice, v, &err), "newindex", &err);
  return 0;
}

/* Torch-style printing: a column block per row, summarised beyond 20 rows or 12 columns;
 * tensors of 3 or more dimensions print as 2-D slices headed (i,j,.,.). */
static void add_value(luaL_Buffer *b, float v, int width) {
  char s[48];
  snprintf(s, sizeof s, " %*.*g", width, 5, (double)v);
  luaL_addstring(b, s);
}

static void add_matrix(luaL_Buffer *b, const float *p, int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  /* Columns fit the terminal (11 characters each): all of them when at most 12 fit in a line,
   * else the first and last `side` around "  ...". */
  int width = lblua_terminal_width();
  int64_t fit = (width - 1) / 11;
  int64_t side = (width - 6) / 22;
  if (fit > 12) fit = 12;
  if (side > 6) side = 6;
  if (side < 1) side = 1;
  int row_cut = rows > 20, col_cut = cols > fit;
  for (int64_t i = 0; i < rows; i++) {
    if (row_cut && i == 10) {
      luaL_addstring(b, " ...\n");
      i = rows - 10;
    }
    for (int64_t j = 0; j < cols; j++) {
      if (col_cut && j == side) {
        luaL_addstring(b, "  ...");
        j = cols - side;
      }
      add_value(b, p[i * rs + j * cs], 10);
    }
    luaL_addchar(b, '\n');
  }
}

/* The text is built from a private view held by its own userdata, so that a finalizer run by
 * the buffer's allocations cannot free the storage under the loop. */
static int m_tostring(lua_State *L) {
  blua_tensor **p = luaL_checkudata(L, 1, LBLUA_TENSOR_MT);
  if (!*p) {
    lua_pushliteral(L, "[blua.Tensor (closed)]");
    return 1;
  }
  lua_settop(L, 1);
  blua_err err;
  blua_tensor *t = lblua_pushresult(L, blua_tensor_narrow(*p, 0, 0, (*p)->size[0], &err), "tostring", &err);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const float *data = blua_tensor_data(t);
  if (t->dim <= 2) {
    add_matrix(&b, data, t->size[0], t->dim == 2 ? t->size[1] : 1, t->stride[0], t->dim == 2 ? t->stride[1] : 0);
  } else {
    int64_t slices = 1;
    for (int d = 0; d < t->dim - 2; d++) slices *= t->size[d];
    int cut = slices > 10;
    for (int64_t k = 0; k < slices; k++) {
      if (cut && k == 3) {
        luaL_addstring(&b, "...\n\n");
        k = slices - 3;
      }
      int64_t off = 0, rest = k;
      int64_t pos[BLUA_MAX_DIM];
      for (int d = t->dim - 3; d >= 0; d--) {
        pos[d] = rest % t->size[d];
        rest /= t->size[d];
        off += pos[d] * t->stride[d];
      }
      luaL_addchar(&b, '(');
      for (int d = 0; d < t->dim - 2; d++) {
        char s[32];
        snprintf(s, sizeof s, "%lld,", (long long)pos[d] + 1);
        luaL_addstring(&b, s);
      }
      luaL_addstring(&b, ".,.) = \n");
      add_matrix(&b, data + off, t->size[t->dim - 2], t->size[t->dim - 1], t->stride[t->dim - 2], t->stride[t->dim - 1]);
      luaL_addchar(&b, '\n');
    }
  }
  char s[SHAPE_LEN];
  luaL_addstring(&b, "[blua.Tensor of size ");
  luaL_addstring(&b, shape(t, s));
  luaL_addchar(&b, ']');
  luaL_pushresult(&b);
  return 1;
}

/* __fields: the method names, for the REPL's completion (__index is a function). */
static int m_fields(lua_State *L) {
  lua_newtable(L);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, lua_upvalueindex(1))) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, ++n);
    }
  }
  return 1;
}

static const luaL_Reg tensor_methods[] = {
    {"size", t_size}, {"dim", t_dim}, {"nDimension", t_dim}, {"nElement", t_nElement}, {"numel", t_nElement},
    {"stride", t_stride}, {"get", t_get}, {"set", t_set}, {"totable", t_totable},
    {"narrow", t_narrow}, {"t", t_transpose}, {"transpose", t_transpose}, {"permute", t_permute}, {"view", t_view}, {"reshape", t_reshape},
    {"select", t_select}, {"squeeze", t_squeeze}, {"unsqueeze", t_unsqueeze}, {"index", t_index},
    {"clone", t_clone}, {"contiguous", t_contiguous}, {"isContiguous", t_isContiguous},
    {"copy", t_copy}, {"fill", t_fill}, {"zero", t_zero}, {"indexRows", t_indexRows},
    {"add", t_add}, {"sub", t_sub}, {"cmul", t_cmul}, {"cdiv", t_cdiv}, {"mul", t_mul}, {"div", t_div},
    {"addRow", t_addRow}, {"sumRows", t_sumRows}, {"mm", t_mm}, {"addmm", t_addmm},
    {"abs", t_abs}, {"exp", t_exp}, {"log", t_log}, {"sqrt", t_sqrt}, {"tanh", t_tanh},
    {"sigmoid", t_sigmoid}, {"sign", t_sign}, {"neg", t_neg}, {"square", t_square}, {"log1p", t_log1p},
    {"floor", t_floor}, {"round", t_round}, {"ceil", t_ceil}, {"uniform", t_uniform}, {"normal", t_normal},
    {"bernoulli", t_bernoulli}, {"clamp", t_clamp}, {"gt", t_gt}, {"ge", t_ge}, {"lt", t_lt}, {"le", t_le}, {"eq", t_eq}, {"ne", t_ne},
    {"pow", t_pow}, {"cmax", t_cmax}, {"cmin", t_cmin},
    {"sum", t_sum}, {"mean", t_mean}, {"var", t_var}, {"std", t_std}, {"prod", t_prod}, {"cumsum", t_cumsum}, {"sort", t_sort}, {"topk", t_topk}, {"max", t_max}, {"min", t_min}, {"norm", t_norm}, {"dot", t_dot},
    {"argmax", t_argmax}, {"allFinite", t_allFinite},
    {NULL, NULL}};

/* How many arguments each method takes after self, and their usage for the error: Lua drops
 * the ones past the last without a word, and a Torch habit there (t:norm(1), t:sum(2, true),
 * t:clamp(lo, hi, x)) would give a wrong result in silence. get and set check their own count
 * (one index per dimension); view and reshape take up to BLUA_MAX_DIM sizes, which read_sizes
 * counts. The spec "every tensor method refuses an argument past its last" keeps this complete. */
struct arity {
  const char *name;
  int most;
  const char *usage;
};
static const struct arity tensor_arity[] = {
    {"size", 1, "[d]"}, {"dim", 0, ""}, {"nDimension", 0, ""}, {"nElement", 0, ""}, {"numel", 0, ""},
    {"stride", 1, "[d]"}, {"totable", 0, ""}, {"narrow", 3, "dim, first, len"}, {"t", 0, ""},
    {"transpose", 2, "d1, d2"}, {"select", 2, "d, i"}, {"squeeze", 1, "[d]"}, {"unsqueeze", 1, "d"},
    {"index", 2, "d, indices"}, {"clone", 0, ""}, {"contiguous", 0, ""}, {"isContiguous", 0, ""},
    {"copy", 1, "u"}, {"fill", 1, "v"}, {"zero", 0, ""}, {"indexRows", 2, "rows [, out]"},
    {"add", 2, "u | a | a, u"}, {"sub", 1, "u | a"}, {"cmul", 1, "u"}, {"cdiv", 1, "u"}, {"mul", 1, "a"},
    {"div", 1, "a"}, {"addRow", 2, "v [, alpha]"}, {"sumRows", 0, ""}, {"mm", 2, "u | a, b"},
    {"addmm", 4, "[beta,] [alpha,] a, b"}, {"abs", 0, ""}, {"exp", 0, ""}, {"log", 0, ""}, {"sqrt", 0, ""},
    {"tanh", 0, ""}, {"sigmoid", 0, ""}, {"sign", 0, ""}, {"neg", 0, ""}, {"square", 0, ""},
    {"log1p", 0, ""}, {"floor", 0, ""}, {"round", 0, ""}, {"ceil", 0, ""},
    {"uniform", 2, "[a, b]"}, {"normal", 2, "[mean, std]"}, {"bernoulli", 1, "[p]"}, {"clamp", 2, "[lo [, hi]]"}, {"gt", 1, "a"}, {"ge", 1, "a"},
    {"lt", 1, "a"}, {"le", 1, "a"}, {"eq", 1, "a"}, {"ne", 1, "a"}, {"pow", 1, "a"}, {"cmax", 1, "u | a"}, {"cmin", 1, "u | a"},
    {"sum", 1, "[dim]"}, {"mean", 1, "[dim]"}, {"var", 2, "[dim [, biased]]"}, {"std", 2, "[dim [, biased]]"}, {"prod", 1, "[dim]"}, {"cumsum", 1, "dim"}, {"sort", 2, "[d [, descending]]"}, {"topk", 3, "k [, d [, largest]]"}, {"max", 1, "[dim]"}, {"min", 1, "[dim]"},
    {"norm", 0, ""}, /* the L2 norm only: t:norm(1) must not return it */
    {"dot", 1, "u"}, {"allFinite", 0, ""}, {"argmax", 1, "[dim]"},
};

/* The same for the module's functions, counting every argument (there is no self); blua.tensor and the size-list constructors count their
 * own arguments (read_sizes), the internal ones (_sgemm, ...) are left as they are. */
static const struct arity module_arity[] = {
    {"eye", 1, "n"}, {"isTensor", 1, "x"}, {"setNumThreads", 1, "n"}, {"getNumThreads", 0, ""},
    {"cat", 2, "{t1, t2, ...} [, d]"}, {"manualSeed", 1, "n"}, {"initialSeed", 0, ""}, {"randperm", 1, "n"},
    {"clock", 0, ""}, {"blasInfo", 0, ""},
};

/* The function (upvalue 1) after the count check; a closed tensor among the arguments is reported
 * first, as the method itself would. */
static int arity_checked(lua_State *L) {
  int most = (int)lua_tointeger(L, lua_upvalueindex(2));
  if (lua_gettop(L) - 1 > most) {
    for (int i = 1; i <= lua_gettop(L); i++)
      if (luaL_testudata(L, i, LBLUA_TENSOR_MT)) lblua_readtensor(L, i);
    no_extra(L, most, lua_tostring(L, lua_upvalueindex(3)), lua_tostring(L, lua_upvalueindex(4)));
  }
  return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* Wraps each function of the table on top named in a[0..n) in its count check; errors name it
 * prefix .. name ("t:norm", "blua.eye"). Methods count their arguments after self. */
static void check_arity(lua_State *L, const struct arity *a, size_t n, const char *prefix, int methods) {
  for (size_t k = 0; k < n; k++) {
    lua_getfield(L, -1, a[k].name);
    if (!lua_tocfunction(L, -1)) luaL_error(L, "arity table names '%s', not a C function", a[k].name);
    lua_pushinteger(L, methods ? a[k].most : a[k].most - 1); /* arity_checked counts after the first */
    lua_pushfstring(L, "%s%s", prefix, a[k].name);
    lua_pushstring(L, a[k].usage);
    lua_pushcclosure(L, arity_checked, 4);
    lua_setfield(L, -2, a[k].name);
  }
}

static void extend(lua_State *L, const lblua_method *list, const char *prefix, int methods) {
  for (const lblua_method *m = list; m->name; m++) {
    lua_pushcfunction(L, m->f);
    lua_pushinteger(L, methods ? m->most : m->most - 1); /* arity_checked counts after the first */
    lua_pushfstring(L, "%s%s", prefix, m->name);
    lua_pushstring(L, m->usage);
    lua_pushcclosure(L, arity_checked, 4);
    lua_setfield(L, -2, m->name);
  }
}
void lblua_tensor_extend(lua_State *L, const lblua_method *methods) { extend(L, methods, "t:", 1); }
void lblua_module_extend(lua_State *L, const lblua_method *funcs) { extend(L, funcs, "blua.", 0); }

static const luaL_Reg tensor_meta[] = {
    {"__gc", t_gc}, {"__close", t_gc}, {"__tostring", m_tostring}, {"__len", t_len},
    {"__add", m_add}, {"__sub", m_sub}, {"__mul", m_mul}, {"__div", m_div}, {"__unm", m_unm},
    {"__newindex", m_newindex}, {NULL, NULL}};

static const luaL_Reg module_funcs[] = {
    {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"rand", l_rand}, {"randn", l_randn},
    {"eye", l_eye}, {"isTensor", l_isTensor}, {"setNumThreads", l_setNumThreads}, {"cat", l_cat},
    {"getNumThreads", l_getNumThreads}, {"manualSeed", l_manualSeed}, {"initialSeed", l_initialSeed},
    {"randperm", l_randperm}, {"_gatherRows", l_gatherRows}, {"blasInfo", l_blasInfo}, {"_sgemm", l_sgemm}, {"_mmSideBySide", l_mmSideBySide}, {"_mapLibm", l_mapLibm},
    {"clock", l_clock},
    {NULL, NULL}};

void lblua_open_tensor(lua_State *L) {
  if (luaL_newmetatable(L, LBLUA_TENSOR_MT)) {
    luaL_setfuncs(L, tensor_meta, 0);
    lua_pushliteral(L, "blua.Tensor");
    lua_setfield(L, -2, "__name");
    luaL_newlib(L, tensor_methods);
    check_arity(L, tensor_arity, sizeof tensor_arity / sizeof tensor_arity[0], "t:", 1);
    lblua_tensor_extend(L, lblua_index_methods);
    lblua_tensor_extend(L, lblua_shape_methods);
    lblua_tensor_extend(L, lblua_math_methods);
    lblua_tensor_extend(L, lblua_apply_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "methods");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, m_index, 1);
    lua_setfield(L, -3, "__index");
    lua_pushcclosure(L, m_fields, 1);
    lua_setfield(L, -2, "__fields");
  }
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "Tensor"); /* blua.Tensor: the method table, for extension from Lua */
  lua_pop(L, 1);
  luaL_setfuncs(L, module_funcs, 0);
  check_arity(L, module_arity, sizeof module_arity / sizeof module_arity[0], "blua.", 0);
  lblua_module_extend(L, lblua_index_funcs);
  lblua_module_extend(L, lblua_shape_funcs);
  lblua_module_extend(L, lblua_math_funcs);
}
