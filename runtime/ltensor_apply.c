/* Lua binding of Torch7's callback methods (apply, map, map2) and small forms (all, any, viewAs,
 * cat, float, type); the core of all and any is runtime/tensor_apply.c.
 *
 * A callback runs Lua code, which may close any tensor of the call (t:close, a finalizer), call
 * the same method again, or raise an error. So no tensor pointer is kept across a call: every
 * tensor is fetched from the stack again (a closed one is an error naming the method and which
 * tensor), and each entry is found again from its row-major position. An error (from f or a
 * closed tensor) leaves the entries written before it written, as Torch7 does. */
#include <string.h>

#include "lblua.h"
#include "blua/tensor_apply.h"

static const char *const names[] = {"t", "u", "v"};

/* The tensor argument at arg, named `what` in the error when it is anything else. */
static blua_tensor *check_arg(lua_State *L, int arg, const char *what, const char *fname) {
  blua_tensor *t = lblua_totensor(L, arg);
  if (!t)
    luaL_error(L, "bad argument in '%s': %s must be a tensor, got %s", fname, what,
               luaL_testudata(L, arg, LBLUA_TENSOR_MT) ? "a closed tensor" : luaL_typename(L, arg));
  /* Read while the tensor at slot 1 may be written: an expanded view of its memory is refused. */
  blua_tensor *self = lblua_totensor(L, 1);
  if (self && self != t && blua_tensor_overlapping(t) && t->storage == self->storage) lblua_readsource(L, arg, self, fname);
  return t;
}

/* Tensor k (0-based) of the call, at stack slot k + 1, after a callback ran. */
static blua_tensor *refetch(lua_State *L, int k, int64_t n, const char *fname, const char *mapped) {
  blua_tensor *t = lblua_totensor(L, k + 1);
  if (!t) {
    if (mapped) luaL_error(L, "tensor closed in '%s': the function closed %s", fname, mapped);
    luaL_error(L, "tensor closed in '%s': the function closed %s", fname, names[k]);
  }
  if (blua_tensor_nelement(t) != n) luaL_error(L, "size changed in '%s': %s changed during the call", fname, names[k]);
  return t;
}

/* f(x1, ..., xn) for the entries of the n tensors at slots 1..n, position by position in each
 * one's row-major order, with f at slot n + 1; the result replaces the entry of t (slot 1). A nil
 * result keeps the entry when keep_nil (Torch7's apply, map, map2), else it is an error (blua's
 * t:map(f)). `mapped` names t in the closed error when given (blua's t:map(f) message). */
static int each_entry(lua_State *L, int n, int keep_nil, const char *fname, const char *mapped) {
  const char *expect = keep_nil ? "number or nil" : "number";
  lua_settop(L, n + 1);
  blua_tensor *t = lblua_checktensor(L, 1);
  int64_t count = blua_tensor_nelement(t);
  for (int k = 1; k < n; k++) {
    blua_tensor *u = check_arg(L, k + 1, names[k], fname);
    if (blua_tensor_nelement(u) != count) {
      char a[160], b[160];
      luaL_error(L, "size mismatch in '%s': %s has %s, %s has %s (the same number of entries expected)", fname,
                 names[0], blua_tensor_shape(t, a, sizeof a), names[k], blua_tensor_shape(u, b, sizeof b));
    }
  }
  if (lua_type(L, n + 1) != LUA_TFUNCTION)
    luaL_error(L, "bad argument in '%s': f must be a function, got %s", fname, luaL_typename(L, n + 1));
  for (int64_t p = 0; p < count; p++) {
    lua_pushvalue(L, n + 1);
    for (int k = 0; k < n; k++) {
      blua_tensor *u = refetch(L, k, count, fname, k ? NULL : mapped);
      lua_pushnumber(L, blua_tensor_data(u)[blua_tensor_offset_of(u, p)]);
    }
    lua_call(L, n, 1);
    for (int k = 0; k < n; k++) refetch(L, k, count, fname, k ? NULL : mapped);
    if (keep_nil && lua_isnil(L, -1)) {
      lua_pop(L, 1);
      continue;
    }
    int isnum;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    if (!isnum) luaL_error(L, "bad result in '%s': function returned a %s, %s expected", fname, luaL_typename(L, -1), expect);
    t = refetch(L, 0, count, fname, mapped);
    blua_tensor_data(t)[blua_tensor_offset_of(t, p)] = (float)v;
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  return 1;
}

/* t:apply(f): in place, returns t. */
static int t_apply(lua_State *L) { return each_entry(L, 1, 1, "apply", NULL); }

/* t:map(f) (blua's: f must return a number) or t:map(u, f) (Torch7's: f(x, y), nil keeps x). */
static int t_map(lua_State *L) {
  lblua_checktensor(L, 1);
  if (lua_type(L, 2) == LUA_TFUNCTION) {
    int extra = lua_gettop(L) - 2;
    if (extra > 0) luaL_error(L, "t:map: (f) expected, got %d more argument%s", extra, extra > 1 ? "s" : "");
    return each_entry(L, 1, 0, "map", "the tensor being mapped");
  }
  if (!luaL_testudata(L, 2, LBLUA_TENSOR_MT))
    luaL_error(L, "bad argument in 'map': f (a function) or u (a tensor) expected, got %s", luaL_typename(L, 2));
  return each_entry(L, 2, 1, "map", NULL);
}

/* t:map2(u, v, f): in place, returns t. */
static int t_map2(lua_State *L) { return each_entry(L, 3, 1, "map2", NULL); }

/* t:all(), t:any(): booleans. */
static int t_all(lua_State *L) {
  lua_pushboolean(L, blua_tensor_all(lblua_readtensor(L, 1)));
  return 1;
}

static int t_any(lua_State *L) {
  lua_pushboolean(L, blua_tensor_any(lblua_readtensor(L, 1)));
  return 1;
}

/* t:viewAs(u): a view of t with u's sizes. */
static int t_viewAs(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1), *u = check_arg(L, 2, "u", "viewAs");
  blua_err err;
  lblua_pushresult(L, blua_tensor_view_nd(t, u->dim, u->size, &err), "viewAs", &err);
  return 1;
}

/* t:cat(u [, d]): blua.cat({t, u}, d), a new tensor; d defaults to t's last dimension. */
static int t_cat(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1), *u = check_arg(L, 2, "u", "cat");
  if (luaL_testudata(L, 3, LBLUA_TENSOR_MT))
    luaL_error(L, "bad argument in 'cat': d must be a dimension, got a tensor (Torch7's res:cat(a, b), writing into "
                  "res, is not taken: blua.cat({a, b}) makes a new tensor)");
  int d = lua_isnoneornil(L, 3) ? t->dim - 1 : lblua_checkdim(L, 3, t, "cat");
  blua_tensor *ts[2] = {t, u};
  blua_err err;
  lblua_pushresult(L, blua_tensor_cat(ts, 2, d, &err), "cat", &err);
  return 1;
}

/* t:float(): t itself (blua's tensors hold floats). t:type(): Torch7's name of a float tensor. */
static int t_float(lua_State *L) {
  lblua_readtensor(L, 1);
  lua_settop(L, 1);
  return 1;
}

static int t_type(lua_State *L) {
  lblua_readtensor(L, 1);
  lua_pushliteral(L, "torch.FloatTensor");
  return 1;
}

const lblua_method lblua_apply_methods[] = {
    {"apply", t_apply, 1, "f"},
    {"map", t_map, 2, "f | u, f"},
    {"map2", t_map2, 3, "u, v, f"},
    {"all", t_all, 0, ""},
    {"any", t_any, 0, ""},
    {"viewAs", t_viewAs, 1, "u"},
    {"cat", t_cat, 2, "u [, d]"},
    {"float", t_float, 0, ""},
    {"type", t_type, 0, ""},
    {NULL, NULL, 0, NULL}};
