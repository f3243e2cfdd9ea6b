/* Binding of the lifted kernels (blua/lifted.h). These are the trainers' fast path for
 * built-in activations; lua/blua/train/lifted.lua composes the same steps from tensor operations
 * for activations defined in Lua. Activations arrive as the Lua activation objects of
 * blua.activation (fields name, params, builtin). */
#include "blua/backprop.h"
#include "blua/lifted.h"
#include "blua/optim.h"
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

static blua_penalty_kind check_penalty(lua_State *L, int idx) {
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

/* blua._xstep(penalty, act, next_act, Wn, bn, next_weight, z, zn, x, x_next, mu, gamma, g): next_weight
 * is nil for a hidden next layer and the weight of the loss when the next layer is the output; 
 * one X-step of a hidden layer, in place on x; zn is overwritten by the next layer's residual. */
static int l_xstep(lua_State *L) {
  blua_penalty_kind kind = check_penalty(L, 1);
  blua_act act, next_act;
  check_act(L, 2, &act, "xstep");
  check_act(L, 3, &next_act, "xstep");
  blua_lifted_layer next = {&next_act, lblua_checktensor(L, 4), lblua_checktensor(L, 5)};
  blua_err err;
  lblua_check(L,
              blua_lifted_xstep(kind, &act, &next, !lua_isnil(L, 6), luaL_optnumber(L, 6, 1.0), lblua_checktensor(L, 7),
                                lblua_checktensor(L, 8),
                                lblua_checktensor(L, 9), lblua_checktensor(L, 10), luaL_checknumber(L, 11),
                                luaL_checknumber(L, 12), lblua_checktensor(L, 13), &err),
              "xstep", &err);
  return 0;
}

/* blua._wgrad(penalty, act, is_output, gamma, x_prev, x, z, scale, gW, gb): z is overwritten. */
static int l_wgrad(lua_State *L) {
  blua_penalty_kind kind = check_penalty(L, 1);
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
  blua_penalty_kind kind = check_penalty(L, 1);
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
 * warm start, updated in place. */
static int l_spectralNorm(lua_State *L) {
  blua_tensor *W = lblua_checktensor(L, 1);
  lua_Integer iters = lua_isnoneornil(L, 2) ? 20 : lblua_checkint(L, 2, "iteration count", "spectralNorm");
  if (iters < 1 || iters > 100000)
    return luaL_error(L, "bad iteration count in 'spectralNorm': %I (1..100000)", (LUAI_UACINT)iters);
  blua_tensor *v = lua_isnoneornil(L, 3) ? NULL : lblua_checktensor(L, 3);
  luaL_argcheck(L, W->dim == 2, 1, "2-D tensor expected");
  if (v && blua_tensor_nelement(v) != blua_tensor_cols(W)) {
    char sw[48], sv[48];
    return luaL_error(L, "size mismatch in 'spectralNorm': W %s, start vector %s", blua_tensor_shape(W, sw, sizeof sw),
                      blua_tensor_shape(v, sv, sizeof sv));
  }
  lua_pushnumber(L, blua_spectral_norm(W, (int)iters, v));
  return 1;
}

/* blua._adam(x, g, m, v, lr, beta1, beta2, eps, weight_decay, t): in place on x, m, v. */
static int l_adam(lua_State *L) {
  blua_err err;
  lblua_check(L,
              blua_adam_step(lblua_checktensor(L, 1), lblua_checktensor(L, 2), lblua_checktensor(L, 3),
                             lblua_checktensor(L, 4), luaL_checknumber(L, 5), luaL_checknumber(L, 6),
                             luaL_checknumber(L, 7), luaL_checknumber(L, 8), luaL_checknumber(L, 9),
                             (long)luaL_checkinteger(L, 10), &err),
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

/* Entry i (1-based) of the list at idx, which must be a tensor; it stays referenced by the list. */
static blua_tensor *list_tensor(lua_State *L, int idx, int i, const char *what) {
  lua_rawgeti(L, idx, i);
  blua_tensor *t = lblua_totensor(L, -1);
  if (!t) luaL_error(L, "bad argument #%d to 'backprop' (%s[%d] must be a tensor)", idx, what, i);
  lua_pop(L, 1);
  return t;
}

/* blua._backprop(acts, W, b, x, y, Z, X, D, G, scale, parts, grads) → loss: the gradients of
 * scale × the summed loss of a batch into grads (W1, b1, W2, ...), rows split into `parts`
 * blocks (blua/backprop.h). acts, W, b, Z, D, G have one entry per layer, X one per hidden layer. */
static int l_backprop(lua_State *L) {
  enum { MAXL = 64 };
  for (int i = 1; i <= 3; i++) luaL_checktype(L, i, LUA_TTABLE);
  for (int i = 6; i <= 9; i++) luaL_checktype(L, i, LUA_TTABLE);
  luaL_checktype(L, 12, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  if (n < 1 || n > MAXL) return luaL_error(L, "bad network in 'backprop': %d layers (1 to %d supported)", (int)n, MAXL);
  blua_act acts[MAXL];
  blua_lifted_layer layers[MAXL];
  blua_tensor *Z[MAXL], *X[MAXL], *D[MAXL], *G[MAXL], *grads[2 * MAXL];
  for (int l = 0; l < n; l++) {
    lua_rawgeti(L, 1, l + 1);
    check_act(L, lua_gettop(L), &acts[l], "backprop");
    lua_pop(L, 1);
    layers[l] = (blua_lifted_layer){&acts[l], list_tensor(L, 2, l + 1, "W"), list_tensor(L, 3, l + 1, "b")};
    Z[l] = list_tensor(L, 6, l + 1, "Z");
    X[l] = l < n - 1 ? list_tensor(L, 7, l + 1, "X") : NULL;
    D[l] = list_tensor(L, 8, l + 1, "D");
    G[l] = list_tensor(L, 9, l + 1, "G");
    grads[2 * l] = list_tensor(L, 12, 2 * l + 1, "grads");
    grads[2 * l + 1] = list_tensor(L, 12, 2 * l + 2, "grads");
  }
  lua_Integer parts = luaL_checkinteger(L, 11);
  luaL_argcheck(L, parts >= 1 && parts <= 64, 11, "parts must be in 1..64");
  double loss = 0.0;
  blua_err err;
  lblua_check(L,
              blua_backprop_batch((int)n, layers, lblua_checktensor(L, 4), lblua_checktensor(L, 5), Z, X, D, G,
                                  luaL_checknumber(L, 10), (int)parts, grads, &loss, &err),
              "backprop", &err);
  lua_pushnumber(L, loss);
  return 1;
}

static const luaL_Reg funcs[] = {
    {"_backprop", l_backprop},
    {"_adam", l_adam}, {"_sgd", l_sgd},
    {"_affine", l_affine}, {"_xstep", l_xstep}, {"_wgrad", l_wgrad}, {"_energy", l_energy},
    {"spectralNorm", l_spectralNorm}, {NULL, NULL}};

void lblua_open_lifted(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
