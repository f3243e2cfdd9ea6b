/* Binding of the lifted kernels (blua/lifted.h). These are the trainers' fast path for
 * built-in activations; lua/blua/train/lifted.lua composes the same steps from tensor operations
 * for activations defined in Lua. Activations arrive as the Lua activation objects of
 * blua.activation (fields name, params, builtin). */
#include <math.h>

#include "blua/backprop.h"
#include "blua/lifted.h"
#include "blua/lifted_batch.h"
#include "blua/optim.h"
#include "blua/team.h"
#include "lblua.h"

/* A built-in activation object at idx → its C descriptor (from its `kernel` userdata). */
static void check_act(lua_State *L, int idx, blua_act *act, const char *fname) {
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "kernel") != LUA_TUSERDATA) {
    lua_getfield(L, idx, "name");
    luaL_error(L, "bad activation in '%s': '%s' is not a built-in activation", fname,
               lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  }
  *act = *lblua_checkact(L, -1);
  lua_pop(L, 1);
}

blua_penalty_kind lblua_checkpenalty(lua_State *L, int idx) {
  static const char *const names[] = {"bregman", "quadratic", NULL};
  return (blua_penalty_kind)luaL_checkoption(L, idx, NULL, names);
}

/* blua._affine(z, x_prev, W, b): z = x_prev W + 1 b^T, in place; returns z. */
static int l_affine(lua_State *L) {
  blua_tensor *z = lblua_checktensor(L, 1);
  blua_lifted_layer layer = {NULL, lblua_checktensor(L, 3), lblua_checktensor(L, 4)};
  blua_err err;
  lblua_check(L, blua_lifted_affine(z, lblua_checktensor(L, 2), &layer, &err), "affine", &err);
  lua_settop(L, 1);
  return 1;
}

/* blua._xstep(penalty, act, next_act, Wn, bn, next_weight, z, zn, x, x_next, mu, gamma, g [, alpha]):
 * next_weight is nil for a hidden next layer and the weight of the loss when the next layer is the output;
 * one X-step of a hidden layer, in place on x; zn is overwritten by the next layer's residual.
 * alpha: the weight of an L1 term on x (blua_lifted_xstep_l1; default 0, none). */
static int l_xstep(lua_State *L) {
  blua_penalty_kind kind = lblua_checkpenalty(L, 1);
  blua_act act, next_act;
  check_act(L, 2, &act, "xstep");
  check_act(L, 3, &next_act, "xstep");
  blua_lifted_layer next = {&next_act, lblua_checktensor(L, 4), lblua_checktensor(L, 5)};
  blua_err err;
  lblua_check(L,
              blua_lifted_xstep_l1(kind, &act, luaL_optnumber(L, 14, 0.0), &next, !lua_isnil(L, 6),
                                   luaL_optnumber(L, 6, 1.0), lblua_checktensor(L, 7), lblua_checktensor(L, 8),
                                   lblua_checktensor(L, 9), lblua_checktensor(L, 10), luaL_checknumber(L, 11),
                                   luaL_checknumber(L, 12), lblua_checktensor(L, 13), &err),
              "xstep", &err);
  return 0;
}

/* blua._wgrad(penalty, act, is_output, gamma, x_prev, x, z, scale, gW, gb): z is overwritten. */
static int l_wgrad(lua_State *L) {
  blua_penalty_kind kind = lblua_checkpenalty(L, 1);
  blua_act act;
  check_act(L, 2, &act, "wgrad");
  blua_err err;
  lblua_check(L,
              blua_lifted_wgrad(kind, &act, lua_toboolean(L, 3), luaL_checknumber(L, 4), lblua_checktensor(L, 5),
                                lblua_checktensor(L, 6), lblua_checktensor(L, 7), luaL_checknumber(L, 8),
                                lblua_checktensor(L, 9), lblua_checktensor(L, 10), &err),
              "wgrad", &err);
  return 0;
}

/* blua._energy(penalty, act, is_output, gamma, x, z) → number. */
static int l_energy(lua_State *L) {
  blua_penalty_kind kind = lblua_checkpenalty(L, 1);
  blua_act act;
  check_act(L, 2, &act, "energy");
  blua_err err;
  double e = 0.0;
  lblua_check(L,
              blua_lifted_energy(kind, &act, lua_toboolean(L, 3), luaL_checknumber(L, 4), lblua_checktensor(L, 5),
                                 lblua_checktensor(L, 6), &e, &err),
              "energy", &err);
  lua_pushnumber(L, e);
  return 1;
}

/* blua.spectralNorm(W [, iters [, v]]): ‖W‖₂ by power iteration; v (cols(W) entries) is the
 * warm start, updated in place. blua.spectralNorm({W1, ...}, iters, {v1, ...}) → {‖W1‖₂, ...}:
 * the same for several matrices in one call, each with its warm start (each norm is the one a
 * call of its own gives). */
static void check_norm_args(lua_State *L, const blua_tensor *W, const blua_tensor *v) {
  if (W->dim != 2) luaL_error(L, "bad argument in 'spectralNorm': 2-D tensor expected, got %d-D", W->dim);
  if (v && blua_tensor_nelement(v) != blua_tensor_cols(W)) {
    char sw[48], sv[48];
    luaL_error(L, "size mismatch in 'spectralNorm': W %s, start vector %s", blua_tensor_shape(W, sw, sizeof sw),
               blua_tensor_shape(v, sv, sizeof sv));
  }
}

typedef struct {
  blua_tensor **W, **v;
  double *norm;
  int iters;
} norms_ctx;

static void norm_task(void *ctx, int i) {
  norms_ctx *c = ctx;
  c->norm[i] = blua_spectral_norm(c->W[i], c->iters, c->v[i]);
}

static int l_spectralNorm(lua_State *L) {
  lua_Integer iters = lua_isnoneornil(L, 2) ? 20 : lblua_checkint(L, 2, "iteration count", "spectralNorm");
  if (iters < 1 || iters > 100000)
    return luaL_error(L, "bad iteration count in 'spectralNorm': %I (1..100000)", (LUAI_UACINT)iters);
  if (!lua_istable(L, 1)) {
    blua_tensor *W = lblua_checktensor(L, 1);
    blua_tensor *v = lua_isnoneornil(L, 3) ? NULL : lblua_checktensor(L, 3);
    luaL_argcheck(L, W->dim == 2, 1, "2-D tensor expected");
    check_norm_args(L, W, v);
    lua_pushnumber(L, blua_spectral_norm(W, (int)iters, v));
    return 1;
  }
  enum { MAXNORMS = 1024 };
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n > MAXNORMS || (lua_Integer)lua_rawlen(L, 3) != n)
    return luaL_error(L, "bad argument in 'spectralNorm': %I matrices and %I start vectors (at most %d)", (LUAI_UACINT)n,
                      (LUAI_UACINT)lua_rawlen(L, 3), (int)MAXNORMS);
  /* (the arrays first: making them may run finalizers, the tensors are read after) */
  blua_tensor **t = lua_newuserdatauv(L, (size_t)(2 * n + 1) * sizeof *t, 0);
  double *norm = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *norm, 0);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    t[i] = lblua_listtensor(L, 1, (int)i + 1, "W", "spectralNorm");
    t[n + i] = lblua_listtensor(L, 3, (int)i + 1, "v", "spectralNorm");
    check_norm_args(L, t[i], t[n + i]);
    for (lua_Integer k = 0; k < i; k++)
      if (t[n + k]->storage == t[n + i]->storage)
        return luaL_error(L, "bad argument in 'spectralNorm': start vectors %I and %I share memory", (LUAI_UACINT)k + 1,
                          (LUAI_UACINT)i + 1);
  }
  norms_ctx c = {t, t + n, norm, (int)iters};
  /* One after another on this thread, and not through the team: in a training epoch its other
   * threads are gathering the next batch's rows meanwhile (blua._gatherRows), which a batch of
   * team tasks would first wait for; and outside a team, waking OpenMP threads for a few
   * microseconds of work each costs more than it saves. */
  for (lua_Integer i = 0; i < n; i++) norm_task(&c, (int)i);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushnumber(L, norm[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* blua._adam(x, g, m, v, lr, beta1, beta2, eps, weight_decay, t): in place on x, m, v. x, g, m
 * and v may also be lists of tensors (as long as one another, pairwise of a shape): then the
 * whole list takes one step in one call. */
static int l_adam(lua_State *L) {
  enum { MAXTENSORS = 1 << 20 };
  lua_settop(L, 10);
  blua_err err;
  double lr = luaL_checknumber(L, 5), b1 = luaL_checknumber(L, 6), b2 = luaL_checknumber(L, 7),
         eps = luaL_checknumber(L, 8), wd = luaL_checknumber(L, 9);
  long t = (long)luaL_checkinteger(L, 10);
  if (!lua_istable(L, 1)) {
    lblua_check(L,
                blua_adam_step(lblua_checktensor(L, 1), lblua_checktensor(L, 2), lblua_checktensor(L, 3),
                               lblua_checktensor(L, 4), lr, b1, b2, eps, wd, t, &err),
                "adam", &err);
    return 0;
  }
  for (int i = 1; i <= 4; i++) luaL_checktype(L, i, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  for (int i = 2; i <= 4; i++)
    if ((lua_Integer)lua_rawlen(L, i) != n)
      return luaL_error(L, "bad argument #%d to 'adam' (a list of %I tensors expected, got %I)", i, (LUAI_UACINT)n,
                        (LUAI_UACINT)lua_rawlen(L, i));
  if (n > MAXTENSORS) return luaL_error(L, "bad argument #1 to 'adam' (%I tensors, at most %d)", (LUAI_UACINT)n, MAXTENSORS);
  /* (the array first: making it may run finalizers, the tensors are read after) */
  blua_tensor **all = lua_newuserdatauv(L, (size_t)(4 * n + 1) * sizeof *all, 0);
  static const char *const names[4] = {"x", "g", "m", "v"};
  for (int k = 0; k < 4; k++)
    for (lua_Integer i = 0; i < n; i++) all[k * n + i] = lblua_listtensor(L, k + 1, (int)i + 1, names[k], "adam");
  lblua_check(L,
              blua_adam_steps((int)n, all, (const blua_tensor *const *)(all + n), all + 2 * n, all + 3 * n, lr, b1, b2,
                              eps, wd, t, &err),
              "adam", &err);
  return 0;
}

/* blua._sgd(x, g, buf, lr, momentum, nesterov, weight_decay): in place on x and buf. */
static int l_sgd(lua_State *L) {
  blua_err err;
  lblua_check(L,
              blua_sgd_step(lblua_checktensor(L, 1), lblua_checktensor(L, 2), lblua_checktensor(L, 3),
                            luaL_checknumber(L, 4), luaL_checknumber(L, 5), lua_toboolean(L, 6),
                            luaL_checknumber(L, 7), &err),
              "sgd", &err);
  return 0;
}

/* Row shares per call (the trainers' batch_shards, at most the batch's rows). */
#define MAXPARTS 65536

/* The spare gradient tensors of shares 2..parts (each share 2L, shaped like grads) into spare:
 * from the list at idx when given (kept by the caller across batches), else new ones left on
 * the Lua stack for the call. n: the tensors per share (2L). */
void lblua_spare_grads(lua_State *L, int idx, lua_Integer parts, int n, blua_tensor *const *grads, blua_tensor **spare,
                       const char *fname) {
  lua_Integer need = (parts - 1) * n;
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TTABLE);
    if (luaL_len(L, idx) < need)
      luaL_error(L, "bad argument #%d to '%s' (%d spare gradients for %d shares, %d needed)", idx, fname,
                 (int)luaL_len(L, idx), (int)parts, (int)need);
    for (lua_Integer i = 0; i < need; i++) spare[i] = lblua_listtensor(L, idx, (int)i + 1, "spare", fname);
    return;
  }
  for (lua_Integer i = 0; i < need; i++) {
    blua_err err;
    spare[i] = lblua_pushresult(L, blua_tensor_new_like(grads[i % n], &err), fname, &err);
  }
}

/* The layers of a C batch call: activation l from the list at acts_idx, W and b from the
 * lists at w_idx (and w_idx + 1), and the layer's two gradient tensors from the list at grads_idx. */
static void check_layers(lua_State *L, int n, int acts_idx, int w_idx, int grads_idx, blua_act *acts,
                         blua_lifted_layer *layers, blua_tensor **grads, const char *fname) {
  for (int l = 0; l < n; l++) {
    lua_rawgeti(L, acts_idx, l + 1);
    check_act(L, lua_gettop(L), &acts[l], fname);
    lua_pop(L, 1);
    layers[l] = (blua_lifted_layer){&acts[l], lblua_listtensor(L, w_idx, l + 1, "W", fname),
                                    lblua_listtensor(L, w_idx + 1, l + 1, "b", fname)};
    grads[2 * l] = lblua_listtensor(L, grads_idx, 2 * l + 1, "grads", fname);
    grads[2 * l + 1] = lblua_listtensor(L, grads_idx, 2 * l + 2, "grads", fname);
  }
}

/* The L1 weights {[l] = alpha} (hidden layers l = 1..n-1; absent: 0) of the table at idx, into
 * a userdata of n - 1 numbers left on the stack; NULL (nothing pushed) when idx holds nil. */
const double *lblua_l1_weights(lua_State *L, int idx, int n, const char *fname) {
  if (lua_isnoneornil(L, idx)) return NULL;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  double *w = lua_newuserdatauv(L, (size_t)(n > 1 ? n - 1 : 1) * sizeof *w, 0);
  for (int l = 1; l < n; l++) {
    lua_rawgeti(L, idx, l);
    if (!lua_isnil(L, -1) && !lua_isnumber(L, -1))
      luaL_error(L, "bad L1 weight in '%s': layer %d has a %s (a number expected)", fname, l, luaL_typename(L, -1));
    w[l - 1] = lua_isnil(L, -1) ? 0.0 : lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(w[l - 1] >= 0.0 && w[l - 1] < HUGE_VAL))
      luaL_error(L, "bad L1 weight in '%s': layer %d has %f (non-negative and finite expected)", fname, l, w[l - 1]);
  }
  return w;
}

/* blua._backprop(acts, W, b, x, y, Z, X, D, G, scale, parts, grads [, spare [, l1]]) → loss: the
 * gradients of scale × the summed loss of a batch into grads (W1, b1, W2, ...), rows split into
 * `parts` blocks (blua/backprop.h); l1 = {[l] = alpha} adds α‖σ(z_l)‖₁ per sample on hidden
 * layers. acts, W, b, Z, D, G have one entry per layer, X one per hidden layer.
 * spare: the gradient tensors of blocks 2..parts (2L each, shaped like grads; made for the call
 * when absent). */
static int l_backprop(lua_State *L) {
  enum { MAXL = 64 };
  lua_settop(L, 14); /* (what the call pushes goes above the arguments) */
  for (int i = 1; i <= 3; i++) luaL_checktype(L, i, LUA_TTABLE);
  for (int i = 6; i <= 9; i++) luaL_checktype(L, i, LUA_TTABLE);
  luaL_checktype(L, 12, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  if (n < 1 || n > MAXL) return luaL_error(L, "bad network in 'backprop': %d layers (1 to %d supported)", (int)n, MAXL);
  blua_act acts[MAXL];
  blua_lifted_layer layers[MAXL];
  blua_tensor *Z[MAXL], *X[MAXL], *D[MAXL], *G[MAXL], *grads[2 * MAXL];
  check_layers(L, (int)n, 1, 2, 12, acts, layers, grads, "backprop");
  for (int l = 0; l < n; l++) {
    Z[l] = lblua_listtensor(L, 6, l + 1, "Z", "backprop");
    X[l] = l < n - 1 ? lblua_listtensor(L, 7, l + 1, "X", "backprop") : NULL;
    D[l] = lblua_listtensor(L, 8, l + 1, "D", "backprop");
    G[l] = lblua_listtensor(L, 9, l + 1, "G", "backprop");
  }
  lua_Integer parts = luaL_checkinteger(L, 11);
  luaL_argcheck(L, parts >= 1 && parts <= MAXPARTS, 11, "parts must be in 1..65536");
  blua_tensor **spare = lua_newuserdatauv(L, (size_t)(parts * 2 * n) * sizeof *spare, 0);
  int64_t rows = blua_tensor_rows(lblua_checktensor(L, 4));
  if (parts > rows) parts = rows > 0 ? rows : 1;
  lblua_spare_grads(L, 13, parts, 2 * (int)n, grads, spare, "backprop");
  const double *l1 = lblua_l1_weights(L, 14, (int)n, "backprop");
  double loss = 0.0;
  blua_err err;
  lblua_check(L,
              blua_backprop_batch_l1((int)n, layers, l1, lblua_checktensor(L, 4), lblua_checktensor(L, 5), Z, X, D, G,
                                     luaL_checknumber(L, 10), (int)parts, grads, parts > 1 ? spare : NULL, &loss, &err),
              "backprop", &err);
  lua_pushnumber(L, loss);
  return 1;
}

/* Field `name` of the table at idx as a number (default when absent). */
static double opt_number(lua_State *L, int idx, const char *name, double dflt) {
  lua_getfield(L, idx, name);
  double v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

void lblua_lifted_opts(lua_State *L, int idx, int n, blua_lifted_batch_opts *o, const char *fname) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "l1");
  o->l1 = lblua_l1_weights(L, -1, n, fname); /* (the weights stay on the stack above the field) */
  o->gamma = opt_number(L, idx, "gamma", 0.0);
  o->beta = opt_number(L, idx, "beta", 1.0);
  o->scale = opt_number(L, idx, "scale", 1.0);
  lua_getfield(L, idx, "forward");
  o->forward = lua_toboolean(L, -1);
  lua_getfield(L, idx, "energies");
  o->energies = lua_toboolean(L, -1);
  lua_pop(L, 2);
  lua_getfield(L, idx, "steps");
  lua_getfield(L, idx, "mu");
  int steps_at = lua_gettop(L) - 1, mu_at = lua_gettop(L);
  lua_Integer nsteps = lua_istable(L, steps_at) ? luaL_len(L, steps_at) : 0;
  if (nsteps > INT32_MAX || (nsteps > 0 && (!lua_istable(L, mu_at) || luaL_len(L, mu_at) != nsteps)))
    luaL_error(L, "bad X-steps in '%s': %I steps, each with its mu", fname, (LUAI_UACINT)nsteps);
  int *steps = lua_newuserdatauv(L, (size_t)(nsteps > 0 ? nsteps : 1) * sizeof *steps, 0);
  double *mu = lua_newuserdatauv(L, (size_t)(nsteps > 0 ? nsteps : 1) * sizeof *mu, 0);
  for (lua_Integer i = 0; i < nsteps; i++) {
    lua_rawgeti(L, steps_at, i + 1);
    lua_rawgeti(L, mu_at, i + 1);
    steps[i] = (int)luaL_checkinteger(L, -2);
    mu[i] = luaL_checknumber(L, -1);
    lua_pop(L, 2);
  }
  o->nsteps = (int)nsteps;
  o->steps = steps;
  o->mu = mu;
}

int lblua_lifted_results(lua_State *L, const blua_lifted_batch_opts *o, int parts, int n, const double *loss,
                         const double *energy) {
  lua_createtable(L, parts, 0);
  for (int p = 0; p < parts; p++) {
    lua_pushnumber(L, loss[p]);
    lua_rawseti(L, -2, p + 1);
  }
  if (!o->energies) {
    lua_pushnil(L);
    return 2;
  }
  lua_createtable(L, parts, 0);
  for (int p = 0; p < parts; p++) {
    lua_createtable(L, n - 1, 0);
    for (int l = 0; l < n - 1; l++) {
      lua_pushnumber(L, energy[p * (n - 1) + l]);
      lua_rawseti(L, -2, l + 1);
    }
    lua_rawseti(L, -2, p + 1);
  }
  return 2;
}

/* blua._lifted_batch(penalty, acts, W, b, x, y, X, Z, G, parts, opts, grads [, spare]) → losses, energies:
 * one inner step of lifted training of a batch in `parts` row shares (blua/lifted_batch.h).
 * acts, W, b, Z, G have one entry per layer, X one per hidden layer, grads two per layer (W1,
 * b1, W2, ...). opts: gamma, beta, scale, forward (boolean), energies (boolean), steps (hidden
 * layers), mu (their step sizes) and l1 ({[l] = alpha}: L1 terms on hidden layers, or nil). losses: a list per share (when forward); energies: a list
 * per share of the hidden layers' terms (when opts.energies), else nil. spare: as for _backprop. */
static int l_lifted_batch(lua_State *L) {
  enum { MAXL = 64 };
  lua_settop(L, 13); /* (what the call pushes goes above the arguments) */
  blua_lifted_batch_opts o = {.kind = lblua_checkpenalty(L, 1)};
  for (int i = 2; i <= 4; i++) luaL_checktype(L, i, LUA_TTABLE);
  for (int i = 7; i <= 9; i++) luaL_checktype(L, i, LUA_TTABLE);
  luaL_checktype(L, 11, LUA_TTABLE);
  luaL_checktype(L, 12, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 2);
  if (n < 2 || n > MAXL) return luaL_error(L, "bad network in 'lifted_batch': %d layers (2 to %d supported)", (int)n, MAXL);
  blua_act acts[MAXL];
  blua_lifted_layer layers[MAXL];
  blua_tensor *X[MAXL], *Z[MAXL], *G[MAXL], *grads[2 * MAXL];
  check_layers(L, (int)n, 2, 3, 12, acts, layers, grads, "lifted_batch");
  lblua_lifted_scratch(L, (int)n, 7, X, Z, G, "lifted_batch");
  lua_Integer parts = luaL_checkinteger(L, 10);
  luaL_argcheck(L, parts >= 1 && parts <= MAXPARTS, 10, "parts must be in 1..65536");
  int64_t rows = blua_tensor_rows(lblua_checktensor(L, 5));
  if (parts > rows) parts = rows > 0 ? rows : 1;
  blua_tensor **spare = lua_newuserdatauv(L, (size_t)(parts * 2 * n) * sizeof *spare, 0);
  lblua_spare_grads(L, 13, parts, 2 * (int)n, grads, spare, "lifted_batch");
  lblua_lifted_opts(L, 11, (int)n, &o, "lifted_batch");
  double *out = lua_newuserdatauv(L, (size_t)parts * (size_t)n * sizeof *out, 0); /* losses, then energies */
  double *loss = out, *energy = out + parts;
  blua_err err;
  lblua_check(L,
              blua_lifted_batch((int)n, layers, lblua_checktensor(L, 5), lblua_checktensor(L, 6), X, Z, G, (int)parts, &o,
                                grads, parts > 1 ? spare : NULL, loss, o.energies ? energy : NULL, &err),
              "lifted_batch", &err);
  return lblua_lifted_results(L, &o, (int)parts, (int)n, loss, energy);
}

void lblua_lifted_scratch(lua_State *L, int n, int idx, blua_tensor **X, blua_tensor **Z, blua_tensor **G,
                          const char *fname) {
  for (int l = 0; l < n; l++) {
    X[l] = l < n - 1 ? lblua_listtensor(L, idx, l + 1, "X", fname) : NULL;
    Z[l] = lblua_listtensor(L, idx + 1, l + 1, "Z", fname);
    G[l] = lblua_listtensor(L, idx + 2, l + 1, "G", fname);
  }
}

static const luaL_Reg funcs[] = {
    {"_lifted_batch", l_lifted_batch},
    {"_backprop", l_backprop},
    {"_adam", l_adam}, {"_sgd", l_sgd},
    {"_affine", l_affine}, {"_xstep", l_xstep}, {"_wgrad", l_wgrad}, {"_energy", l_energy},
    {"spectralNorm", l_spectralNorm}, {NULL, NULL}};

void lblua_open_lifted(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
