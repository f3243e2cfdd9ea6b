/* Binding of the proximal activations and penalties. It adds one table, blua._act, which
 * lua/blua/activation.lua builds the public blua.activation module on:
 *
 *   _act.kinds()                       {name = {params = {names...}, defaults = {...}}, ...}
 *   _act.new(name, p1, p2)             a blua.Act userdata (the C descriptor, validated)
 *   _act.quadratic_penalty(y, z, gamma)
 *   _act.xstep_bregman_point(out, x, z, g, mu), _act.xstep_lifted_point(out, x, z, g, mu, gamma)
 *   _act.prox_solver(v, s0, mu)        a blua.ProxSolver (prox of μΦ from evaluations of σ)
 *
 * blua.Act methods (out is optional everywhere; without it a new tensor is returned):
 *   forward(z, out) prox(v, mu, out) project(v, out) linear_mask(z, out) derivative(z, out)
 *   bregman_grad(y, z, out) psi(u) conj(z) bregman(y, z)
 *   xstep_bregman(x, z, g, mu) xstep_lifted(x, z, g, mu, gamma)   (in place on x, return x)
 *   prox_l1(v, mu, alpha, out) project_l1(v, t, out)   (with an L1 penalty, blua/prox_l1.h)
 *
 * C code holding a blua.Act userdata gets its descriptor with lblua_checkact. */
#include <math.h>
#include <stdio.h>

#include "blua/penalty.h"
#include "blua/prox.h"
#include "blua/prox_l1.h"
#include "lblua.h"

#define ACT_MT "blua.Act"
#define SOLVER_MT "blua.ProxSolver"

blua_act *lblua_checkact(lua_State *L, int idx) { return luaL_checkudata(L, idx, ACT_MT); }

/* The optional output tensor at idx, or a new tensor shaped like ref pushed on the stack.
 * Either way the output ends up on the stack top. */
static blua_tensor *out_arg(lua_State *L, int idx, const blua_tensor *ref, const char *fname) {
  if (!lua_isnoneornil(L, idx)) {
    blua_tensor *out = lblua_checktensor(L, idx);
    lua_pushvalue(L, idx);
    return out;
  }
  blua_err err;
  return lblua_pushresult(L, blua_tensor_empty_like(ref, &err), fname, &err);
}

static double check_number(lua_State *L, int idx, const char *what) {
  int isnum;
  lua_Number x = lua_tonumberx(L, idx, &isnum);
  if (!isnum) luaL_argerror(L, idx, lua_pushfstring(L, "%s must be a number, got %s", what, luaL_typename(L, idx)));
  return x;
}

/* ---- blua.Act ---- */

typedef int (*map_fn)(const blua_act *, blua_tensor *, const blua_tensor *, blua_err *);

static int map1(lua_State *L, map_fn fn, const char *fname) {
  blua_act *act = lblua_checkact(L, 1);
  blua_tensor *z = lblua_checktensor(L, 2);
  blua_tensor *out = out_arg(L, 3, z, fname);
  blua_err err;
  lblua_check(L, fn(act, out, z, &err), fname, &err);
  return 1;
}

static int act_forward(lua_State *L) { return map1(L, blua_act_forward, "forward"); }
static int act_project(lua_State *L) { return map1(L, blua_act_project, "project"); }
static int act_linear_mask(lua_State *L) { return map1(L, blua_act_linear_mask, "linear_mask"); }
static int act_derivative(lua_State *L) { return map1(L, blua_act_derivative, "derivative"); }

static int act_prox(lua_State *L) {
  blua_act *act = lblua_checkact(L, 1);
  blua_tensor *v = lblua_checktensor(L, 2);
  double mu = check_number(L, 3, "mu");
  blua_tensor *out = out_arg(L, 4, v, "prox");
  blua_err err;
  lblua_check(L, blua_act_prox(act, out, v, mu, &err), "prox", &err);
  return 1;
}

static int act_bregman_grad(lua_State *L) {
  blua_act *act = lblua_checkact(L, 1);
  blua_tensor *y = lblua_checktensor(L, 2), *z = lblua_checktensor(L, 3);
  blua_tensor *out = out_arg(L, 4, z, "bregman_grad");
  blua_err err;
  lblua_check(L, blua_act_bregman_grad(act, out, y, z, &err), "bregman_grad", &err);
  return 1;
}

static int act_psi(lua_State *L) {
  double r;
  blua_err err;
  lblua_check(L, blua_act_psi(lblua_checkact(L, 1), lblua_checktensor(L, 2), &r, &err), "psi", &err);
  lua_pushnumber(L, r);
  return 1;
}

static int act_conj(lua_State *L) {
  double r;
  blua_err err;
  lblua_check(L, blua_act_conj(lblua_checkact(L, 1), lblua_checktensor(L, 2), &r, &err), "conj", &err);
  lua_pushnumber(L, r);
  return 1;
}

static int act_bregman(lua_State *L) {
  double r;
  blua_err err;
  blua_act *act = lblua_checkact(L, 1);
  blua_tensor *y = lblua_checktensor(L, 2), *z = lblua_checktensor(L, 3);
  lblua_check(L, blua_act_bregman(act, y, z, &r, &err), "bregman", &err);
  lua_pushnumber(L, r);
  return 1;
}

static int act_xstep_bregman(lua_State *L) {
  blua_act *act = lblua_checkact(L, 1);
  blua_tensor *x = lblua_checktensor(L, 2), *z = lblua_checktensor(L, 3), *g = lblua_checktensor(L, 4);
  double mu = check_number(L, 5, "mu");
  blua_err err;
  lblua_check(L, blua_act_xstep_bregman(act, x, z, g, mu, &err), "xstep_bregman", &err);
  lua_settop(L, 2);
  return 1;
}

static int act_xstep_lifted(lua_State *L) {
  blua_act *act = lblua_checkact(L, 1);
  blua_tensor *x = lblua_checktensor(L, 2), *z = lblua_checktensor(L, 3), *g = lblua_checktensor(L, 4);
  double mu = check_number(L, 5, "mu"), gamma = check_number(L, 6, "gamma");
  blua_err err;
  lblua_check(L, blua_act_xstep_lifted(act, x, z, g, mu, gamma, &err), "xstep_lifted", &err);
  lua_settop(L, 2);
  return 1;
}

static int act_prox_l1(lua_State *L) {
  blua_act *act = lblua_checkact(L, 1);
  blua_tensor *v = lblua_checktensor(L, 2);
  double mu = check_number(L, 3, "mu"), alpha = check_number(L, 4, "alpha");
  blua_tensor *out = out_arg(L, 5, v, "prox_l1");
  blua_err err;
  lblua_check(L, blua_act_prox_l1(act, out, v, mu, alpha, &err), "prox_l1", &err);
  return 1;
}

static int act_project_l1(lua_State *L) {
  blua_act *act = lblua_checkact(L, 1);
  blua_tensor *v = lblua_checktensor(L, 2);
  double t = check_number(L, 3, "t");
  blua_tensor *out = out_arg(L, 4, v, "project_l1");
  blua_err err;
  lblua_check(L, blua_act_project_l1(act, out, v, t, &err), "project_l1", &err);
  return 1;
}

static int act_tostring(lua_State *L) {
  blua_act *act = lblua_checkact(L, 1);
  char buf[160];
  int np = blua_act_nparams(act->kind);
  if (np == 0)
    snprintf(buf, sizeof buf, "blua.Act(%s)", blua_act_kind_name(act->kind));
  else if (np == 1)
    snprintf(buf, sizeof buf, "blua.Act(%s, %s = %g)", blua_act_kind_name(act->kind),
             blua_act_param_name(act->kind, 0), (double)act->a);
  else
    snprintf(buf, sizeof buf, "blua.Act(%s, %s = %g, %s = %g)", blua_act_kind_name(act->kind),
             blua_act_param_name(act->kind, 0), (double)act->a, blua_act_param_name(act->kind, 1), (double)act->b);
  lua_pushstring(L, buf);
  return 1;
}

static int act_new(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  double p1 = luaL_optnumber(L, 2, NAN), p2 = luaL_optnumber(L, 3, NAN);
  blua_act *act = lua_newuserdatauv(L, sizeof *act, 0);
  blua_err err;
  if (blua_act_init(act, name, p1, p2, &err) != BLUA_OK) lblua_error(L, "activation.get", &err);
  luaL_setmetatable(L, ACT_MT);
  return 1;
}

static int act_kinds(lua_State *L) {
  lua_createtable(L, 0, BLUA_ACT_NKINDS);
  for (int k = 0; k < BLUA_ACT_NKINDS; k++) {
    int np = blua_act_nparams((blua_act_kind)k);
    lua_createtable(L, 0, 2);
    lua_createtable(L, np, 0);
    lua_createtable(L, np, 0);
    for (int i = 0; i < np; i++) {
      lua_pushstring(L, blua_act_param_name((blua_act_kind)k, i));
      lua_rawseti(L, -3, i + 1);
      lua_pushnumber(L, blua_act_param_default((blua_act_kind)k, i));
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -3, "defaults");
    lua_setfield(L, -2, "params");
    lua_setfield(L, -2, blua_act_kind_name((blua_act_kind)k));
  }
  return 1;
}

/* ---- free functions ---- */

static int l_quadratic_penalty(lua_State *L) {
  blua_tensor *y = lblua_checktensor(L, 1), *z = lblua_checktensor(L, 2);
  double gamma = luaL_optnumber(L, 3, 1.0), r;
  blua_err err;
  lblua_check(L, blua_quadratic_penalty(y, z, gamma, &r, &err), "quadratic_penalty", &err);
  lua_pushnumber(L, r);
  return 1;
}

static int l_xstep_bregman_point(lua_State *L) {
  blua_tensor *out = lblua_checktensor(L, 1), *x = lblua_checktensor(L, 2), *z = lblua_checktensor(L, 3),
              *g = lblua_checktensor(L, 4);
  double mu = check_number(L, 5, "mu");
  blua_err err;
  lblua_check(L, blua_xstep_bregman_point(out, x, z, g, mu, &err), "xstep_bregman", &err);
  lua_settop(L, 1);
  return 1;
}

static int l_xstep_lifted_point(lua_State *L) {
  blua_tensor *out = lblua_checktensor(L, 1), *x = lblua_checktensor(L, 2), *z = lblua_checktensor(L, 3),
              *g = lblua_checktensor(L, 4);
  double mu = check_number(L, 5, "mu"), gamma = check_number(L, 6, "gamma");
  blua_err err;
  lblua_check(L, blua_xstep_lifted_point(out, x, z, g, mu, gamma, &err), "xstep_lifted", &err);
  lua_settop(L, 1);
  return 1;
}

/* ---- blua.ProxSolver ---- */

static blua_prox_solver **check_solver(lua_State *L) {
  blua_prox_solver **p = luaL_checkudata(L, 1, SOLVER_MT);
  if (!*p) luaL_argerror(L, 1, "prox solver was closed");
  return p;
}

static int l_prox_solver(lua_State *L) {
  blua_tensor *v = lblua_checktensor(L, 1), *s0 = lblua_checktensor(L, 2);
  double mu = check_number(L, 3, "mu");
  blua_prox_solver **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  luaL_setmetatable(L, SOLVER_MT);
  v = lblua_checktensor(L, 1); /* making the userdata may have run a finalizer */
  s0 = lblua_checktensor(L, 2);
  blua_err err;
  *p = blua_prox_solver_new(v, s0, mu, &err);
  if (!*p) lblua_error(L, "prox", &err);
  return 1;
}

static int solver_trial(lua_State *L) {
  blua_err err;
  lblua_pushresult(L, blua_prox_solver_trial(*check_solver(L), &err), "prox", &err);
  return 1;
}

static int solver_update(lua_State *L) {
  blua_prox_solver *ps = *check_solver(L);
  int64_t remaining;
  blua_err err;
  lblua_check(L, blua_prox_solver_update(ps, lblua_checktensor(L, 2), &remaining, &err), "prox", &err);
  lua_pushinteger(L, (lua_Integer)remaining);
  return 1;
}

static int solver_result(lua_State *L) {
  lblua_pushtensor(L, blua_prox_solver_result(*check_solver(L)));
  return 1;
}

static int solver_iterations(lua_State *L) {
  lua_pushinteger(L, blua_prox_solver_iterations(*check_solver(L)));
  return 1;
}

static int solver_gc(lua_State *L) {
  blua_prox_solver **p = luaL_checkudata(L, 1, SOLVER_MT);
  blua_prox_solver_free(*p);
  *p = NULL;
  return 0;
}

static const luaL_Reg act_methods[] = {
    {"forward", act_forward}, {"prox", act_prox}, {"project", act_project}, {"linear_mask", act_linear_mask},
    {"derivative", act_derivative}, {"bregman_grad", act_bregman_grad}, {"psi", act_psi}, {"conj", act_conj},
    {"bregman", act_bregman}, {"xstep_bregman", act_xstep_bregman}, {"xstep_lifted", act_xstep_lifted},
    {"prox_l1", act_prox_l1}, {"project_l1", act_project_l1}, {NULL, NULL}};

static const luaL_Reg solver_methods[] = {
    {"trial", solver_trial}, {"update", solver_update}, {"result", solver_result},
    {"iterations", solver_iterations}, {NULL, NULL}};

static const luaL_Reg act_funcs[] = {
    {"kinds", act_kinds}, {"new", act_new}, {"quadratic_penalty", l_quadratic_penalty},
    {"xstep_bregman_point", l_xstep_bregman_point}, {"xstep_lifted_point", l_xstep_lifted_point},
    {"prox_solver", l_prox_solver}, {NULL, NULL}};

void lblua_open_prox(lua_State *L) {
  if (luaL_newmetatable(L, ACT_MT)) {
    luaL_newlib(L, act_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, act_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, SOLVER_MT)) {
    luaL_newlib(L, solver_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, solver_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, solver_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, act_funcs);
  lua_setfield(L, -2, "_act");
}
