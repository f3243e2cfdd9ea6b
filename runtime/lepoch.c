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
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "blua/backprop.h"
#include "blua/lifted_batch.h"
#include "blua/random.h"
#include "lblua.h"

#define EPOCH_MT "blua.Epoch"
enum { MAXL = 64 };

typedef struct {
  blua_lifted_epoch le; /* le.base: the back-prop epoch, or the batches of a lifted one */
  int lifted;
  int sweep[MAXL];
  double mult[MAXL], own[MAXL], coupling[MAXL];
  void *scratch; /* the lifted epoch's step and result buffers */
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
  free(u->scratch);
  u->scratch = NULL;
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
  /* The data x and y are only read (their rows gathered, right for any steps); the rest is
   * written. */
  if (strcmp(name, "x") && strcmp(name, "y")) lblua_checkwritable(L, t, "_backpropEpoch");
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

/* luaL_error for the functions below that return a pointer (it does not return). */
static epoch_ud *epoch_fail(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_error(L);
  return NULL;
}

/* The epoch object of the spec at stack index 1, pushed (index 2); lifted: also the sweep's
 * warm starts (`power`, nsweep of them) among the tensors it holds. */
static epoch_ud *epoch_new(lua_State *L, int nsweep) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  epoch_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, EPOCH_MT); /* (from here on a Lua error leaves it to the collector) */
  blua_backprop_epoch *e = &u->le.base;
  if (lua_getfield(L, 1, "acts") != LUA_TTABLE) return epoch_fail(L, "bad spec in '_backpropEpoch': 'acts' must be a list");
  lua_Integer nl = luaL_len(L, -1);
  if (nl < 1 || nl > MAXL) return epoch_fail(L, "bad network in '_backpropEpoch': %d layers (1 to %d supported)", (int)nl, MAXL);
  int n = (int)nl;
  for (int l = 0; l < n; l++) {
    lua_rawgeti(L, -1, l + 1);
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "kernel") != LUA_TUSERDATA)
      return epoch_fail(L, "bad activation in '_backpropEpoch': layer %d's is not a built-in activation", l + 1);
    u->acts[l] = *lblua_checkact(L, -1);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  int64_t batch = int_field(L, 1, "batch", 1, INT32_MAX);
  int parts = (int)int_field(L, 1, "parts", 1, 65536);
  lua_getfield(L, 1, "ws");
  int nws = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
  lua_pop(L, 1);
  if (nws < 1 || nws > 2) return epoch_fail(L, "bad spec in '_backpropEpoch': 'ws' must hold 1 or 2 workspaces");
  /* every tensor: W, b, x, y, per workspace xb, yb, Z, X, D, then grads, spare, params, m, v */
  int nspare = (parts - 1) * 2 * n;
  int total = 2 * n + 2 + nws * (2 + 3 * n) + 2 * n + nspare + 6 * n + nsweep;
  u->held = malloc((size_t)total * sizeof *u->held);
  u->ptrs = calloc((size_t)total, sizeof *u->ptrs);
  if (!u->held || !u->ptrs) return epoch_fail(L, "out of memory in '_backpropEpoch'");
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
      return epoch_fail(L, "bad spec in '_backpropEpoch': 'ws[%d]' must be a table", k + 1);
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
    return epoch_fail(L, "bad spec in '_backpropEpoch': 'lr' must hold one rate per batch (%d)", (int)batches);
  u->lr = malloc((size_t)(batches ? batches : 1) * sizeof *u->lr);
  u->perm = malloc((size_t)(rows ? rows : 1) * sizeof *u->perm);
  if (!u->lr || !u->perm) return epoch_fail(L, "out of memory in '_backpropEpoch'");
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
  if (nsweep > 0) {
    blua_tensor **power = u->ptrs + (total - nsweep);
    hold_list(L, u, 1, "power", nsweep, power);
    u->le.power = power;
  }
  blua_rng_permutation(blua_default_rng(), u->perm, rows);
  lua_settop(L, 2);
  return u;
}

static int l_backpropEpoch(lua_State *L) {
  epoch_new(L, 0);
  return 1;
}

/* blua._liftedEpoch(spec): the same for lifted training; spec also has penalty ("bregman" or
 * "quadratic"), gamma, beta, inner, xsteps, energies (boolean), and per sweep entry (the hidden
 * layers of one X-sweep, in order) sweep (1-based layers), power (warm starts), mult, own and
 * coupling (blua/lifted_batch.h); ws's D lists are the scratch G. epoch:run(first, last, sum,
 * energy_sums) adds to energy_sums (a list per hidden layer) in place and returns sum, and when
 * it stopped early the batch, the reason ("loss", "energy" or "norm"), the layer and the value. */
static int l_liftedEpoch(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getfield(L, 1, "sweep") != LUA_TTABLE) return luaL_error(L, "bad spec in '_liftedEpoch': 'sweep' must be a list");
  lua_Integer nsweep = luaL_len(L, -1);
  lua_pop(L, 1);
  if (nsweep < 0 || nsweep >= MAXL) return luaL_error(L, "bad spec in '_liftedEpoch': %d sweep entries", (int)nsweep);
  epoch_ud *u = epoch_new(L, (int)nsweep);
  blua_lifted_epoch *le = &u->le;
  int n = le->base.L;
  if (n < 2) return luaL_error(L, "bad network in '_liftedEpoch': %d layers (2 or more)", n);
  u->lifted = 1;
  lua_getfield(L, 1, "penalty");
  le->opts.kind = lblua_checkpenalty(L, -1);
  lua_pop(L, 1);
  le->opts.gamma = num_field(L, 1, "gamma");
  le->opts.beta = num_field(L, 1, "beta");
  le->opts.l1 = le->base.l1;
  le->inner = (int)int_field(L, 1, "inner", 1, 1 << 20);
  le->xsteps = (int)int_field(L, 1, "xsteps", 1, 1 << 20);
  lua_getfield(L, 1, "energies");
  le->energies = lua_toboolean(L, -1);
  lua_pop(L, 1);
  static const char *const lists[3] = {"mult", "own", "coupling"};
  double *dst[3] = {u->mult, u->own, u->coupling};
  lua_getfield(L, 1, "sweep");
  for (int j = 0; j < nsweep; j++) {
    lua_rawgeti(L, -1, j + 1);
    int ok;
    lua_Integer l = lua_tointegerx(L, -1, &ok);
    if (!ok || l < 1 || l >= n) return luaL_error(L, "bad spec in '_liftedEpoch': sweep[%d] is not a hidden layer", j + 1);
    u->sweep[j] = (int)l;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  for (int k = 0; k < 3; k++) {
    if (lua_getfield(L, 1, lists[k]) != LUA_TTABLE || luaL_len(L, -1) < nsweep)
      return luaL_error(L, "bad spec in '_liftedEpoch': '%s' must hold a number per sweep entry", lists[k]);
    for (int j = 0; j < nsweep; j++) {
      lua_rawgeti(L, -1, j + 1);
      dst[k][j] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  le->nsweep = (int)nsweep;
  le->sweep = u->sweep;
  le->mult = u->mult;
  le->own = u->own;
  le->coupling = u->coupling;
  size_t nsteps = (size_t)le->xsteps * (size_t)nsweep, parts = (size_t)le->base.parts, h = (size_t)(n - 1);
  u->scratch = malloc(nsteps * (sizeof(int) + sizeof(double)) + (parts + parts * h + h) * sizeof(double) + 64);
  if (!u->scratch) return luaL_error(L, "out of memory in '_liftedEpoch'");
  double *d = u->scratch;
  le->mu = d;
  le->loss_parts = d + nsteps;
  le->energy_parts = le->loss_parts + parts;
  le->energy_batch = le->energy_parts + parts * h;
  le->steps = (int *)(le->energy_batch + h);
  lua_settop(L, 2);
  return 1;
}

static int lifted_run(lua_State *L, epoch_ud *u, lua_Integer first, lua_Integer last, double loss) {
  blua_lifted_epoch *le = &u->le;
  int h = le->base.L - 1;
  luaL_checktype(L, 5, LUA_TTABLE);
  double sums[MAXL];
  for (int l = 0; l < h; l++) {
    lua_rawgeti(L, 5, l + 1);
    sums[l] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  blua_lifted_epoch_stop stop;
  blua_err err;
  lblua_check(L, blua_lifted_epoch_run(le, first - 1, last, &loss, sums, &stop, &err), "lifted_batch", &err);
  for (int l = 0; l < h; l++) {
    lua_pushnumber(L, sums[l]);
    lua_rawseti(L, 5, l + 1);
  }
  lua_pushnumber(L, loss);
  if (stop.batch < 0) return 1;
  static const char *const why[4] = {"", "loss", "energy", "norm"};
  lua_pushinteger(L, stop.batch + 1);
  lua_pushstring(L, why[stop.why]);
  lua_pushinteger(L, stop.layer);
  lua_pushnumber(L, stop.value);
  return 5;
}

static int epoch_run(lua_State *L) {
  epoch_ud *u = luaL_checkudata(L, 1, EPOCH_MT);
  if (!u->held) return luaL_error(L, "closed epoch in 'run'");
  lua_Integer first = luaL_checkinteger(L, 2), last = luaL_checkinteger(L, 3);
  if (first < 1 || last < first - 1 || last > u->le.base.batches)
    return luaL_error(L, "bad batch range in 'run': %I..%I of %I", (LUAI_UACINT)first, (LUAI_UACINT)last,
                      (LUAI_UACINT)u->le.base.batches);
  double loss = luaL_checknumber(L, 4), bad = 0.0;
  if (u->lifted) return lifted_run(L, u, first, last, loss);
  int64_t stopped;
  blua_err err;
  lblua_check(L, blua_backprop_epoch_run(&u->le.base, first - 1, last, &loss, &stopped, &bad, &err), "backprop", &err);
  lua_pushnumber(L, loss);
  if (stopped < 0) return 1;
  lua_pushinteger(L, stopped + 1);
  lua_pushnumber(L, bad);
  return 3;
}

/* The Adam steps a lifted epoch has taken (its step count is t0 plus them). */
static int epoch_steps(lua_State *L) {
  epoch_ud *u = luaL_checkudata(L, 1, EPOCH_MT);
  lua_pushinteger(L, (lua_Integer)u->le.adam_steps);
  return 1;
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
    lua_pushcfunction(L, epoch_steps);
    lua_setfield(L, -2, "steps");
    lua_pushcfunction(L, epoch_gc);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_backpropEpoch);
  lua_setfield(L, -2, "_backpropEpoch");
  lua_pushcfunction(L, l_liftedEpoch);
  lua_setfield(L, -2, "_liftedEpoch");
}
