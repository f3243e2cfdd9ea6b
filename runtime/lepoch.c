/* Binding of the back-propagation epoch (blua/backprop.h, blua_backprop_epoch_run): the
 * training loop's path for epochs with nothing to run in Lua between batches (no hook, Adam,
 * a dense network with built-in activations on a thread team; lua/blua/train/loop.lua).
 *
 * blua._backpropEpoch(spec) → an epoch object; spec: acts, W, b (one per layer), x, y (the
 * data set's rows and targets), batch, parts, ws (one or two tables {xb =, yb =, Z =, X =, D =}:
 * full batches, then a shorter last one), grads, spare, params, m, v, lr (one per batch), beta1,
 * beta2, eps, weight_decay, t0, and optionally l1 ({[l] = alpha} on hidden layers, as for
 * blua._backprop). It draws the epoch's order from the seeded generator as
 * blua.randperm(rows) would, and holds a reference to every tensor it uses until it is closed
 * or collected, so a script that closes one of them meanwhile cannot pull memory from under it.
 * epoch:run(first, last, sum) runs batches first..last (1-based) → sum plus their mean losses,
 * added one by one, and, when the run stopped at a batch whose loss was NaN or +Inf, that batch
 * and the loss. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "blua/backprop.h"
#include "blua/random.h"
#include "lblua.h"

#define EPOCH_MT "blua.BackpropEpoch"
enum { MAXL = 64 };

typedef struct {
  blua_backprop_epoch e;
  blua_act acts[MAXL];
  blua_lifted_layer layers[MAXL];
  double l1[MAXL];
  blua_tensor **held; /* every tensor e points to, retained; NULL once closed */
  int nheld;
  blua_tensor **ptrs; /* the lists e points into */
  int64_t *perm;
  double *lr;
} epoch_ud;

static void epoch_free(epoch_ud *u) {
  for (int i = 0; i < u->nheld; i++) blua_tensor_release(u->held[i]);
  free(u->held);
  free(u->ptrs);
  free(u->perm);
  free(u->lr);
  u->held = NULL;
  u->ptrs = NULL;
  u->perm = NULL;
  u->lr = NULL;
  u->nheld = 0;
}

static int epoch_gc(lua_State *L) {
  epoch_free(luaL_checkudata(L, 1, EPOCH_MT));
  return 0;
}

/* The list field `name` of the table at idx, with `count` tensors: each retained into u->held,
 * its pointer stored at out. */
static void hold_list(lua_State *L, epoch_ud *u, int idx, const char *name, int count, blua_tensor **out) {
  if (lua_getfield(L, idx, name) != LUA_TTABLE) luaL_error(L, "bad spec in '_backpropEpoch': '%s' must be a list", name);
  if (luaL_len(L, -1) < count)
    luaL_error(L, "bad spec in '_backpropEpoch': '%s' has %d tensors, %d needed", name, (int)luaL_len(L, -1), count);
  for (int i = 0; i < count; i++) {
    out[i] = lblua_listtensor(L, lua_gettop(L), i + 1, name, "_backpropEpoch");
    blua_tensor_retain(out[i]);
    u->held[u->nheld++] = out[i];
  }
  lua_pop(L, 1);
}

static blua_tensor *hold_one(lua_State *L, epoch_ud *u, int idx, const char *name) {
  blua_tensor *t;
  lua_getfield(L, idx, name);
  t = lblua_totensor(L, -1);
  if (!t) luaL_error(L, "bad spec in '_backpropEpoch': '%s' must be a live tensor", name);
  blua_tensor_retain(t);
  u->held[u->nheld++] = t;
  lua_pop(L, 1);
  return t;
}

static lua_Integer int_field(lua_State *L, int idx, const char *name, lua_Integer lo, lua_Integer hi) {
  lua_getfield(L, idx, name);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok || v < lo || v > hi)
    luaL_error(L, "bad spec in '_backpropEpoch': '%s' must be an integer in %I..%I", name, (LUAI_UACINT)lo,
               (LUAI_UACINT)hi);
  lua_pop(L, 1);
  return v;
}

static double num_field(lua_State *L, int idx, const char *name) {
  lua_getfield(L, idx, name);
  if (!lua_isnumber(L, -1)) luaL_error(L, "bad spec in '_backpropEpoch': '%s' must be a number", name);
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int l_backpropEpoch(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  epoch_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, EPOCH_MT); /* (from here on a Lua error leaves it to the collector) */
  blua_backprop_epoch *e = &u->e;
  if (lua_getfield(L, 1, "acts") != LUA_TTABLE) return luaL_error(L, "bad spec in '_backpropEpoch': 'acts' must be a list");
  lua_Integer nl = luaL_len(L, -1);
  if (nl < 1 || nl > MAXL) return luaL_error(L, "bad network in '_backpropEpoch': %d layers (1 to %d supported)", (int)nl, MAXL);
  int n = (int)nl;
  for (int l = 0; l < n; l++) {
    lua_rawgeti(L, -1, l + 1);
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "kernel") != LUA_TUSERDATA)
      return luaL_error(L, "bad activation in '_backpropEpoch': layer %d's is not a built-in activation", l + 1);
    u->acts[l] = *lblua_checkact(L, -1);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  int64_t batch = int_field(L, 1, "batch", 1, INT32_MAX);
  int parts = (int)int_field(L, 1, "parts", 1, 65536);
  lua_getfield(L, 1, "ws");
  int nws = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
  lua_pop(L, 1);
  if (nws < 1 || nws > 2) return luaL_error(L, "bad spec in '_backpropEpoch': 'ws' must hold 1 or 2 workspaces");
  /* every tensor: W, b, x, y, per workspace xb, yb, Z, X, D, then grads, spare, params, m, v */
  int nspare = (parts - 1) * 2 * n;
  int total = 2 * n + 2 + nws * (2 + 3 * n) + 2 * n + nspare + 6 * n;
  u->held = malloc((size_t)total * sizeof *u->held);
  u->ptrs = calloc((size_t)total, sizeof *u->ptrs);
  if (!u->held || !u->ptrs) return luaL_error(L, "out of memory in '_backpropEpoch'");
  blua_tensor **W = u->ptrs, **B = W + n, **grads = B + n, **spare = grads + 2 * n, **params = spare + nspare;
  blua_tensor **m = params + 2 * n, **v = m + 2 * n, **wsp = v + 2 * n;
  hold_list(L, u, 1, "W", n, W);
  hold_list(L, u, 1, "b", n, B);
  for (int l = 0; l < n; l++) u->layers[l] = (blua_lifted_layer){&u->acts[l], W[l], B[l]};
  e->x = hold_one(L, u, 1, "x");
  e->y = hold_one(L, u, 1, "y");
  hold_list(L, u, 1, "grads", 2 * n, grads);
  if (nspare > 0) hold_list(L, u, 1, "spare", nspare, spare);
  hold_list(L, u, 1, "params", 2 * n, params);
  hold_list(L, u, 1, "m", 2 * n, m);
  hold_list(L, u, 1, "v", 2 * n, v);
  lua_getfield(L, 1, "ws");
  int ws_at = lua_gettop(L);
  for (int k = 0; k < nws; k++) {
    if (lua_rawgeti(L, ws_at, k + 1) != LUA_TTABLE)
      return luaL_error(L, "bad spec in '_backpropEpoch': 'ws[%d]' must be a table", k + 1);
    int at = lua_gettop(L);
    blua_tensor **Z = wsp, **X = Z + n, **D = X + n;
    wsp += 3 * n;
    e->ws[k].xb = hold_one(L, u, at, "xb");
    e->ws[k].yb = hold_one(L, u, at, "yb");
    hold_list(L, u, at, "Z", n, Z);
    if (n > 1) hold_list(L, u, at, "X", n - 1, X);
    X[n - 1] = NULL;
    hold_list(L, u, at, "D", n, D);
    e->ws[k].Z = Z;
    e->ws[k].X = X;
    e->ws[k].D = D;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  int64_t rows = blua_tensor_rows(e->x);
  int64_t batches = rows == 0 ? 0 : (rows + batch - 1) / batch;
  if (lua_getfield(L, 1, "lr") != LUA_TTABLE || luaL_len(L, -1) < batches)
    return luaL_error(L, "bad spec in '_backpropEpoch': 'lr' must hold one rate per batch (%d)", (int)batches);
  u->lr = malloc((size_t)(batches ? batches : 1) * sizeof *u->lr);
  u->perm = malloc((size_t)(rows ? rows : 1) * sizeof *u->perm);
  if (!u->lr || !u->perm) return luaL_error(L, "out of memory in '_backpropEpoch'");
  for (int64_t b = 0; b < batches; b++) {
    lua_rawgeti(L, -1, b + 1);
    u->lr[b] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  e->L = n;
  e->layers = u->layers;
  e->perm = u->perm;
  e->batches = batches;
  e->batch = batch;
  e->last_rows = rows - (batches - 1) * batch;
  e->parts = parts;
  if (nws < 2) e->ws[1] = e->ws[0];
  e->grads = grads;
  e->spare = spare;
  e->nparams = 2 * n;
  e->params = params;
  e->m = m;
  e->v = v;
  e->lr = u->lr;
  e->beta1 = num_field(L, 1, "beta1");
  e->beta2 = num_field(L, 1, "beta2");
  e->eps = num_field(L, 1, "eps");
  e->weight_decay = num_field(L, 1, "weight_decay");
  e->t0 = (long)int_field(L, 1, "t0", 0, LONG_MAX / 2);
  e->gathered = -1;
  lua_getfield(L, 1, "l1");
  const double *l1 = lblua_l1_weights(L, -1, n, "_backpropEpoch");
  if (l1) {
    memcpy(u->l1, l1, (size_t)(n - 1) * sizeof *l1);
    e->l1 = u->l1;
  }
  blua_rng_permutation(blua_default_rng(), u->perm, rows);
  lua_settop(L, 2);
  return 1;
}

static int epoch_run(lua_State *L) {
  epoch_ud *u = luaL_checkudata(L, 1, EPOCH_MT);
  if (!u->held) return luaL_error(L, "closed epoch in 'run'");
  lua_Integer first = luaL_checkinteger(L, 2), last = luaL_checkinteger(L, 3);
  if (first < 1 || last < first - 1 || last > u->e.batches)
    return luaL_error(L, "bad batch range in 'run': %I..%I of %I", (LUAI_UACINT)first, (LUAI_UACINT)last,
                      (LUAI_UACINT)u->e.batches);
  double loss = luaL_checknumber(L, 4), bad = 0.0;
  int64_t stopped;
  blua_err err;
  lblua_check(L, blua_backprop_epoch_run(&u->e, first - 1, last, &loss, &stopped, &bad, &err), "backprop", &err);
  lua_pushnumber(L, loss);
  if (stopped < 0) return 1;
  lua_pushinteger(L, stopped + 1);
  lua_pushnumber(L, bad);
  return 3;
}

void lblua_open_epoch(lua_State *L) {
  if (luaL_newmetatable(L, EPOCH_MT)) {
    lua_pushcfunction(L, epoch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, epoch_gc);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    lua_pushcfunction(L, epoch_run);
    lua_setfield(L, -2, "run");
    lua_pushcfunction(L, epoch_gc);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_backpropEpoch);
  lua_setfield(L, -2, "_backpropEpoch");
}
