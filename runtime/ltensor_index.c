/* Lua binding of the tensor methods for indexing and masking (indexCopy, indexFill, indexAdd,
 * maskedSelect, maskedFill, maskedCopy, gather, scatter); their core is runtime/tensor_index.c.
 * Dimensions and index lists are 1-based here. Reading an index list allocates and may run a
 * finalizer, so the tensors are fetched from the stack again after it. */
#include <string.h>

#include "lblua.h"
#include "blua/tensor_index.h"

enum { FILL, COPY, ADD };

/* The tensor argument at arg, named `what` in the error when it is anything else. */
static blua_tensor *check_arg(lua_State *L, int arg, const char *what, const char *fname) {
  blua_tensor *t = lblua_totensor(L, arg);
  if (!t)
    luaL_error(L, "bad argument in '%s': %s must be a tensor%s, got %s", fname, what,
               strcmp(fname, "scatter") ? "" : " or a number",
               luaL_testudata(L, arg, LBLUA_TENSOR_MT) ? "a closed tensor" : luaL_typename(L, arg));
  /* Read while the tensor at slot 1 may be written: an expanded view of its memory is refused. */
  blua_tensor *self = lblua_totensor(L, 1);
  if (self && self != t && blua_tensor_overlapping(t) && t->storage == self->storage) lblua_readsource(L, arg, self, fname);
  return t;
}

/* The number argument at arg (the value a method writes). */
static float check_value(lua_State *L, int arg, const char *fname) {
  if (lua_type(L, arg) != LUA_TNUMBER)
    luaL_error(L, "bad argument in '%s': the value must be a number, got %s", fname, luaL_typename(L, arg));
  return (float)lua_tonumber(L, arg);
}

/* t:indexFill(d, indices, v), t:indexCopy(d, indices, src), t:indexAdd(d, indices, src): in place,
 * return t. */
static int index_put(lua_State *L, int kind, const char *fname) {
  lua_settop(L, 4);
  int d = lblua_checkdim(L, 2, lblua_checktensor(L, 1), fname);
  float v = 0.0f;
  if (kind == FILL)
    v = check_value(L, 4, fname);
  else
    check_arg(L, 4, "src", fname);
  int64_t n;
  int64_t *idx = lblua_readindices(L, 3, &n, fname);
  blua_tensor *t = lblua_checktensor(L, 1);
  blua_err err;
  int status;
  if (kind == FILL)
    status = blua_tensor_index_fill(t, d, idx, n, v, &err);
  else if (kind == COPY)
    status = blua_tensor_index_copy(t, d, idx, n, check_arg(L, 4, "src", fname), &err);
  else
    status = blua_tensor_index_add(t, d, idx, n, check_arg(L, 4, "src", fname), &err);
  lblua_check(L, status, fname, &err);
  lua_settop(L, 1);
  return 1;
}

static int t_indexFill(lua_State *L) { return index_put(L, FILL, "indexFill"); }
static int t_indexCopy(lua_State *L) { return index_put(L, COPY, "indexCopy"); }
static int t_indexAdd(lua_State *L) { return index_put(L, ADD, "indexAdd"); }

/* t:maskedFill(mask, v): in place, returns t. */
static int t_maskedFill(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1), *mask = check_arg(L, 2, "mask", "maskedFill");
  float v = check_value(L, 3, "maskedFill");
  blua_err err;
  lblua_check(L, blua_tensor_masked_fill(t, mask, v, &err), "maskedFill", &err);
  lua_settop(L, 1);
  return 1;
}

/* t:maskedSelect(mask): a new 1-D tensor. */
static int t_maskedSelect(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1), *mask = check_arg(L, 2, "mask", "maskedSelect");
  blua_err err;
  lblua_pushresult(L, blua_tensor_masked_select(t, mask, &err), "maskedSelect", &err);
  return 1;
}

/* t:maskedCopy(mask, src): in place, returns t. */
static int t_maskedCopy(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1), *mask = check_arg(L, 2, "mask", "maskedCopy");
  blua_tensor *src = check_arg(L, 3, "src", "maskedCopy");
  blua_err err;
  lblua_check(L, blua_tensor_masked_copy(t, mask, src, &err), "maskedCopy", &err);
  lua_settop(L, 1);
  return 1;
}

/* t:gather(d, index): a new tensor shaped as index. */
static int t_gather(lua_State *L) {
  blua_tensor *t = lblua_readtensor(L, 1);
  int d = lblua_checkdim(L, 2, t, "gather");
  blua_tensor *index = check_arg(L, 3, "index", "gather");
  blua_err err;
  lblua_pushresult(L, blua_tensor_gather(t, d, index, &err), "gather", &err);
  return 1;
}

/* t:scatter(d, index, src | v): in place, returns t. */
static int t_scatter(lua_State *L) {
  blua_tensor *t = lblua_checktensor(L, 1);
  int d = lblua_checkdim(L, 2, t, "scatter");
  blua_tensor *index = check_arg(L, 3, "index", "scatter");
  blua_err err;
  int status;
  if (lua_type(L, 4) == LUA_TNUMBER) {
    status = blua_tensor_scatter_fill(t, d, index, (float)lua_tonumber(L, 4), &err);
  } else {
    status = blua_tensor_scatter(t, d, index, check_arg(L, 4, "src", "scatter"), &err);
  }
  lblua_check(L, status, "scatter", &err);
  lua_settop(L, 1);
  return 1;
}

const lblua_method lblua_index_methods[] = {
    {"indexFill", t_indexFill, 3, "d, indices, v"},
    {"indexCopy", t_indexCopy, 3, "d, indices, src"},
    {"indexAdd", t_indexAdd, 3, "d, indices, src"},
    {"maskedFill", t_maskedFill, 2, "mask, v"},
    {"maskedSelect", t_maskedSelect, 1, "mask"},
    {"maskedCopy", t_maskedCopy, 2, "mask, src"},
    {"gather", t_gather, 2, "d, index"},
    {"scatter", t_scatter, 3, "d, index, src | v"},
    {NULL, NULL, 0, NULL}};

const lblua_method lblua_index_funcs[] = {
    {NULL, NULL, 0, NULL}};
