/* Binding of the linear operators (blua/op.h) as blua.op: constructors returning blua.Op
 * userdata, whose methods take the parameters as a Lua array of tensors ({W, b} for dense and
 * conv2d, every member's W and b in order for a chain; none for pools and reshapes).
 *
 *   blua.op.dense(n_in, n_out)
 *   blua.op.conv2d{cin=, h=, w=, cout=, k= | kh=, kw=, stride=1, padding=0}
 *   blua.op.avgpool2d{c=, h=, w=, k= | kh=, kw=, stride=k}
 *   blua.op.reshape(from, to)         shapes as {c [, h [, w]]}
 *   blua.op.chain{op1, op2, ...}      op2 after op1, no activation between them
 *
 *   op:forward(x, params [, out])                 → out = A(x) + b
 *   op:adjoint(r, params [, out [, alpha, beta]]) → out = alpha A*(r) + beta out
 *   op:wgrad(x, r, params, grads [, alpha, beta])   grads[i] = alpha ∂⟨r, A x⟩/∂θ_i + beta grads[i]
 *   op:norm(params [, iters [, v]])               → ‖A‖₂ (v: out-size warm start, updated)
 *   op:inShape(), op:outShape() → c, h, w;  op:inSize(), op:outSize();  op:kind()
 *   op:paramShapes() → {{rows, cols, bias = true|nil}, ...};  op:nparams(); tostring(op)
 *   op:clone() → the same operator with workspaces of its own
 *   blua.op.backprop(acts, ops, params, x, y, Z, X, D, G, scale, parts, grads) → loss
 *   blua.op.lifted_batch(penalty, acts, ops, params, x, y, X, Z, G, parts, opts, grads [, spare])
 *     → losses, energies */
#include <string.h>

#include "blua/backprop.h"
#include "blua/op.h"
#include "lblua.h"

#define OP_MT "blua.Op"
#define MAX_PARAMS BLUA_OP_MAX_PARAMS

static blua_op *check_op(lua_State *L, int idx) {
  blua_op **p = luaL_checkudata(L, idx, OP_MT);
  if (!*p) luaL_argerror(L, idx, "operator was released");
  return *p;
}

/* Userdata first, then the operator, so a failing push cannot leak it. */
static void push_op(lua_State *L, blua_op *op, const char *fname, const blua_err *err) {
  if (!op) lblua_error(L, fname, err);
  blua_op **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = op;
  luaL_setmetatable(L, OP_MT);
}

static int op_gc(lua_State *L) {
  blua_op **p = luaL_checkudata(L, 1, OP_MT);
  blua_op_release(*p);
  *p = NULL;
  return 0;
}

/* A positive (or, with allow_zero, non-negative) integer field of the table at idx; def when
 * absent (def < 0: required). Names the constructor and the field in errors. */
static int64_t int_field(lua_State *L, int idx, const char *key, int64_t def, int allow_zero, const char *fname) {
  int type = lua_getfield(L, idx, key);
  int64_t v = def;
  if (type == LUA_TNIL) {
    if (def < 0) luaL_error(L, "missing field in '%s': %s (a positive integer)", fname, key);
  } else {
    int isnum;
    lua_Integer i = lua_tointegerx(L, -1, &isnum);
    if (!isnum || i < (allow_zero ? 0 : 1) || i > INT32_MAX) {
      const char *got = luaL_tolstring(L, -1, NULL);
      luaL_error(L, "bad %s in '%s': must be a %s integer, got %s", key, fname, allow_zero ? "non-negative" : "positive",
                 got);
    }
    v = i;
  }
  lua_pop(L, 1);
  return v;
}

/* blua.op.dense(n_in, n_out) */
static int l_dense(lua_State *L) {
  blua_err err;
  lua_Integer nin = luaL_checkinteger(L, 1), nout = luaL_checkinteger(L, 2);
  push_op(L, blua_op_dense(nin, nout, &err), "dense", &err);
  return 1;
}

/* The kernel size from k, or from kh and kw. */
static void kernel_fields(lua_State *L, const char *fname, int64_t *kh, int64_t *kw) {
  int64_t k = int_field(L, 1, "k", 0, 1, fname);
  *kh = int_field(L, 1, "kh", k ? k : -1, 0, fname);
  *kw = int_field(L, 1, "kw", k ? k : -1, 0, fname);
}

/* blua.op.conv2d{cin=, h=, w=, cout=, k= | kh=, kw=, stride=1, padding=0} */
static int l_conv2d(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  blua_conv2d_spec spec;
  spec.c_in = int_field(L, 1, "cin", -1, 0, "conv2d");
  spec.h = int_field(L, 1, "h", -1, 0, "conv2d");
  spec.w = int_field(L, 1, "w", -1, 0, "conv2d");
  spec.c_out = int_field(L, 1, "cout", -1, 0, "conv2d");
  kernel_fields(L, "conv2d", &spec.kh, &spec.kw);
  spec.stride = int_field(L, 1, "stride", 1, 0, "conv2d");
  spec.padding = int_field(L, 1, "padding", 0, 1, "conv2d");
  blua_err err;
  push_op(L, blua_op_conv2d(&spec, &err), "conv2d", &err);
  return 1;
}

/* blua.op.avgpool2d{c=, h=, w=, k= | kh=, kw=, stride=k} */
static int l_avgpool2d(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  blua_shape in = {int_field(L, 1, "c", -1, 0, "avgpool2d"), int_field(L, 1, "h", -1, 0, "avgpool2d"),
                   int_field(L, 1, "w", -1, 0, "avgpool2d")};
  int64_t kh, kw;
  kernel_fields(L, "avgpool2d", &kh, &kw);
  int64_t stride = int_field(L, 1, "stride", kh, 0, "avgpool2d");
  blua_err err;
  push_op(L, blua_op_avgpool2d(in, kh, kw, stride, &err), "avgpool2d", &err);
  return 1;
}

/* A shape {c [, h [, w]]} (or a number, for a flat vector) at idx. */
static blua_shape check_shape(lua_State *L, int idx, const char *fname) {
  if (lua_isinteger(L, idx)) return (blua_shape){lua_tointeger(L, idx), 1, 1};
  luaL_checktype(L, idx, LUA_TTABLE);
  int64_t v[3] = {1, 1, 1};
  lua_Integer n = luaL_len(L, idx);
  if (n < 1 || n > 3) luaL_error(L, "bad shape in '%s': 1 to 3 sizes {c, h, w}, got %d", fname, (int)n);
  for (int i = 0; i < n; i++) {
    lua_geti(L, idx, i + 1);
    int isnum;
    lua_Integer x = lua_tointegerx(L, -1, &isnum);
    if (!isnum || x < 1) luaL_error(L, "bad shape in '%s': size %d must be a positive integer", fname, i + 1);
    v[i] = x;
    lua_pop(L, 1);
  }
  return (blua_shape){v[0], v[1], v[2]};
}

/* blua.op.reshape(from, to) */
static int l_reshape(lua_State *L) {
  blua_shape in = check_shape(L, 1, "reshape"), out = check_shape(L, 2, "reshape");
  blua_err err;
  push_op(L, blua_op_reshape(in, out, &err), "reshape", &err);
  return 1;
}

/* blua.op.chain{op1, op2, ...} */
static int l_chain(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  if (n < 1 || n > 64) return luaL_error(L, "bad chain in 'chain': 1 to 64 operators, got %d", (int)n);
  blua_op *members[64];
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    blua_op **p = luaL_testudata(L, -1, OP_MT);
    if (!p || !*p) return luaL_error(L, "bad chain in 'chain': entry %d is not an operator", i + 1);
    members[i] = *p;
    lua_pop(L, 1); /* the table keeps it alive */
  }
  blua_err err;
  push_op(L, blua_op_chain(members, (int)n, &err), "chain", &err);
  return 1;
}

/* The parameters (or gradients) in the array at idx into t; false or nil entries become NULL. */
static void check_params(lua_State *L, blua_op *op, int idx, blua_tensor **t, const char *what, const char *fname) {
  int np = blua_op_nparams(op);
  for (int i = 0; i < np; i++) t[i] = NULL;
  if (lua_isnoneornil(L, idx) && np == 0) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  if (len > np) luaL_error(L, "bad %s in '%s': %s takes %d, got %d", what, fname, blua_op_kind(op), np, (int)len);
  for (int i = 0; i < np; i++) {
    int type = lua_rawgeti(L, idx, i + 1);
    if (type != LUA_TNIL && !(type == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
      t[i] = lblua_totensor(L, -1);
      if (!t[i]) luaL_error(L, "bad %s in '%s': entry %d is not a live blua.Tensor", what, fname, i + 1);
      lblua_checkwritable(L, t[i], fname);
    }
    lua_pop(L, 1); /* the table keeps it alive */
  }
}

/* The optional result at idx, or a new rows x cols tensor pushed on the stack (pushed first,
 * so nothing after it can run a finalizer while the core holds raw pointers). */
static blua_tensor *result(lua_State *L, int idx, int64_t rows, int64_t cols, const char *fname) {
  if (!lua_isnoneornil(L, idx)) {
    lua_pushvalue(L, idx);
    return lblua_checktensor(L, idx);
  }
  blua_err err;
  return lblua_pushresult(L, blua_tensor_new2d(rows, cols, &err), fname, &err);
}

/* op:forward(x, params [, out]) → out */
static int m_forward(lua_State *L) {
  blua_op *op = check_op(L, 1);
  blua_tensor *params[MAX_PARAMS];
  blua_tensor *x = lblua_checktensor(L, 2);
  blua_tensor *y = result(L, 4, blua_tensor_rows(x), blua_shape_size(blua_op_out_shape(op)), "forward");
  check_params(L, op, 3, params, "parameters", "forward");
  x = lblua_checktensor(L, 2);
  blua_err err;
  lblua_check(L, blua_op_forward(op, params, x, y, &err), "forward", &err);
  return 1;
}

/* op:adjoint(r, params [, out [, alpha [, beta]]]) → out */
static int m_adjoint(lua_State *L) {
  blua_op *op = check_op(L, 1);
  blua_tensor *params[MAX_PARAMS];
  float alpha = (float)luaL_optnumber(L, 5, 1.0), beta = (float)luaL_optnumber(L, 6, 0.0);
  blua_tensor *r = lblua_checktensor(L, 2);
  blua_tensor *g = result(L, 4, blua_tensor_rows(r), blua_shape_size(blua_op_in_shape(op)), "adjoint");
  check_params(L, op, 3, params, "parameters", "adjoint");
  r = lblua_checktensor(L, 2);
  blua_err err;
  lblua_check(L, blua_op_adjoint(op, params, r, g, alpha, beta, &err), "adjoint", &err);
  return 1;
}

/* op:wgrad(x, r, params, grads [, alpha [, beta]]) */
static int m_wgrad(lua_State *L) {
  blua_op *op = check_op(L, 1);
  blua_tensor *params[MAX_PARAMS], *grads[MAX_PARAMS];
  float alpha = (float)luaL_optnumber(L, 6, 1.0), beta = (float)luaL_optnumber(L, 7, 0.0);
  blua_tensor *x = lblua_checktensor(L, 2), *r = lblua_checktensor(L, 3);
  check_params(L, op, 4, params, "parameters", "wgrad");
  check_params(L, op, 5, grads, "gradients", "wgrad");
  blua_err err;
  lblua_check(L, blua_op_wgrad(op, params, x, r, grads, alpha, beta, &err), "wgrad", &err);
  return 0;
}

/* op:norm(params [, iters [, v]]) → ‖A‖₂ */
static int m_norm(lua_State *L) {
  blua_op *op = check_op(L, 1);
  blua_tensor *params[MAX_PARAMS];
  lua_Integer iters = luaL_optinteger(L, 3, 20);
  luaL_argcheck(L, iters >= 1 && iters <= 1000000, 3, "iterations between 1 and 10^6");
  blua_tensor *v = lua_isnoneornil(L, 4) ? NULL : lblua_checktensor(L, 4);
  check_params(L, op, 2, params, "parameters", "norm");
  blua_err err;
  double norm = 0.0;
  lblua_check(L, blua_op_norm(op, params, (int)iters, v, &norm, &err), "norm", &err);
  lua_pushnumber(L, norm);
  return 1;
}

/* op:clone() → a new operator of the same shapes with workspaces of its own */
static int m_clone(lua_State *L) {
  blua_err err;
  push_op(L, blua_op_clone(check_op(L, 1), &err), "clone", &err);
  return 1;
}

/* The network of a batch call: n activations from the list at acts_idx, parts x n operators
 * (part by part) from the list at ops_idx, every layer's parameters and gradients from the
 * lists at params_idx and grads_idx. Arrays left on the stack; returns the parameter count. */
static int check_network(lua_State *L, lua_Integer n, lua_Integer parts, int acts_idx, int ops_idx, int params_idx,
                         int grads_idx, blua_act **acts, blua_op ***ops_out, blua_tensor ***params_out,
                         blua_tensor ***grads_out, const char *fname) {
  if ((lua_Integer)lua_rawlen(L, ops_idx) != parts * n)
    luaL_error(L, "bad operators in '%s': %d parts of %d layers need %d, got %d", fname, (int)parts, (int)n,
               (int)(parts * n), (int)lua_rawlen(L, ops_idx));
  blua_op **ops = lua_newuserdatauv(L, (size_t)(parts * n) * sizeof *ops, 0);
  int np = 0;
  for (int i = 0; i < parts * n; i++) {
    lua_rawgeti(L, ops_idx, i + 1);
    ops[i] = check_op(L, lua_gettop(L));
    lua_pop(L, 1);
    if (i < n) np += blua_op_nparams(ops[i]);
  }
  if ((int)lua_rawlen(L, params_idx) != np || (int)lua_rawlen(L, grads_idx) != np)
    luaL_error(L, "bad parameters in '%s': the operators take %d, got %d parameters and %d gradients", fname, np,
               (int)lua_rawlen(L, params_idx), (int)lua_rawlen(L, grads_idx));
  blua_tensor **params = lua_newuserdatauv(L, (size_t)(2 * np + 1) * sizeof *params, 0), **grads = params + np;
  for (int i = 0; i < np; i++) {
    params[i] = lblua_listtensor(L, params_idx, i + 1, "params", fname);
    grads[i] = lblua_listtensor(L, grads_idx, i + 1, "grads", fname);
  }
  for (int l = 0; l < n; l++) {
    lua_rawgeti(L, acts_idx, l + 1);
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "kernel") != LUA_TUSERDATA)
      luaL_error(L, "bad activation in '%s': layer %d's is not a built-in activation", fname, l + 1);
    acts[l] = lblua_checkact(L, -1);
    lua_pop(L, 2); /* the activation table keeps its kernel alive */
  }
  *ops_out = ops;
  *params_out = params;
  *grads_out = grads;
  return np;
}

/* blua.op.backprop(acts, ops, params, x, y, Z, X, D, G, scale, parts, grads [, l1]) → loss: the
 * gradients of scale × the summed loss of a batch through a network of operators, its rows in
 * `parts` parts side by side (blua_backprop_ops_l1 in blua/backprop.h); l1 = {[l] = alpha}
 * adds α‖σ(z_l)‖₁ per sample on hidden layers. acts, Z, D, G: one entry
 * per layer, X one per hidden layer; ops: parts x L operators, part by part; params and grads:
 * every layer's parameters (gradients) in order. */
static int l_backprop(lua_State *L) {
  enum { MAXL = 64 };
  lua_settop(L, 13); /* (what the call pushes goes above the arguments) */
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  for (int i = 6; i <= 9; i++) luaL_checktype(L, i, LUA_TTABLE);
  luaL_checktype(L, 12, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1), parts = luaL_checkinteger(L, 11);
  if (n < 1 || n > MAXL) return luaL_error(L, "bad network in 'backprop': %d layers (1 to %d supported)", (int)n, MAXL);
  luaL_argcheck(L, parts >= 1 && parts <= 64, 11, "parts must be in 1..64");
  blua_act *acts[MAXL];
  blua_tensor *Z[MAXL], *X[MAXL], *D[MAXL], *G[MAXL], **params, **grads;
  blua_op **ops;
  check_network(L, n, parts, 1, 2, 3, 12, acts, &ops, &params, &grads, "backprop");
  for (int l = 0; l < n; l++) {
    Z[l] = lblua_listtensor(L, 6, l + 1, "Z", "backprop");
    X[l] = l < n - 1 ? lblua_listtensor(L, 7, l + 1, "X", "backprop") : NULL;
    D[l] = lblua_listtensor(L, 8, l + 1, "D", "backprop");
    G[l] = lblua_listtensor(L, 9, l + 1, "G", "backprop");
  }
  blua_tensor *x = lblua_checktensor(L, 4), *y = lblua_checktensor(L, 5);
  const double *l1 = lblua_l1_weights(L, 13, (int)n, "backprop");
  double loss = 0.0;
  blua_err err;
  lblua_check(L,
              blua_backprop_ops_l1((int)n, ops, params, (const blua_act *const *)acts, l1, x, y, Z, X, D, G,
                                   luaL_checknumber(L, 10), (int)parts, grads, &loss, &err),
              "backprop", &err);
  lua_pushnumber(L, loss);
  return 1;
}

/* blua.op.lifted_batch(penalty, acts, ops, params, x, y, X, Z, G, parts, opts, grads [, spare])
 * → losses, energies: one inner step of lifted training of a batch through a network of
 * operators, its rows in `parts` shares side by side, each on operators of its own
 * (blua_lifted_batch_ops in blua/lifted_batch.h). acts, Z, G: one entry per layer, X one per
 * hidden layer; ops: parts x L operators, share by share; params and grads: every layer's
 * parameters (gradients) in order; spare: the gradient lists of shares 2..parts one after
 * another (made for the call when absent). opts, losses and energies as for blua._lifted_batch. */
static int l_lifted_batch(lua_State *L) {
  enum { MAXL = 64 };
  const char *fname = "lifted_batch";
  lua_settop(L, 13); /* (what the call pushes goes above the arguments) */
  blua_lifted_batch_opts o = {.kind = lblua_checkpenalty(L, 1)};
  for (int i = 2; i <= 4; i++) luaL_checktype(L, i, LUA_TTABLE);
  for (int i = 7; i <= 9; i++) luaL_checktype(L, i, LUA_TTABLE);
  luaL_checktype(L, 12, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2), parts = luaL_checkinteger(L, 10);
  if (n < 2 || n > MAXL) return luaL_error(L, "bad network in '%s': %d layers (2 to %d supported)", fname, (int)n, MAXL);
  if (parts < 1 || parts > BLUA_LIFTED_MAX_OP_SHARES)
    return luaL_error(L, "bad shares in '%s': %I (1 to %d with operators)", fname, (LUAI_UACINT)parts,
                      BLUA_LIFTED_MAX_OP_SHARES);
  blua_act *acts[MAXL];
  blua_tensor *X[MAXL], *Z[MAXL], *G[MAXL], **params, **grads;
  blua_op **ops;
  int np = check_network(L, n, parts, 2, 3, 4, 12, acts, &ops, &params, &grads, fname);
  lblua_lifted_scratch(L, (int)n, 7, X, Z, G, fname);
  int64_t rows = blua_tensor_rows(lblua_checktensor(L, 5));
  if (parts > rows) parts = rows > 0 ? rows : 1;
  blua_tensor **spare = lua_newuserdatauv(L, (size_t)(parts * (np > 0 ? np : 1)) * sizeof *spare, 0);
  lblua_spare_grads(L, 13, parts, np, grads, spare, fname);
  lblua_lifted_opts(L, 11, (int)n, &o, fname);
  double *out = lua_newuserdatauv(L, (size_t)parts * (size_t)n * sizeof *out, 0); /* losses, then energies */
  double *loss = out, *energy = out + parts;
  blua_err err;
  lblua_check(L,
              blua_lifted_batch_ops((int)n, ops, params, (const blua_act *const *)acts, lblua_checktensor(L, 5),
                                    lblua_checktensor(L, 6), X, Z, G, (int)parts, &o, grads, parts > 1 ? spare : NULL,
                                    loss, o.energies ? energy : NULL, &err),
              fname, &err);
  return lblua_lifted_results(L, &o, (int)parts, (int)n, loss, energy);
}

static int push_shape(lua_State *L, blua_shape s) {
  lua_pushinteger(L, s.c);
  lua_pushinteger(L, s.h);
  lua_pushinteger(L, s.w);
  return 3;
}

static int m_inShape(lua_State *L) { return push_shape(L, blua_op_in_shape(check_op(L, 1))); }
static int m_outShape(lua_State *L) { return push_shape(L, blua_op_out_shape(check_op(L, 1))); }

static int m_inSize(lua_State *L) {
  lua_pushinteger(L, blua_shape_size(blua_op_in_shape(check_op(L, 1))));
  return 1;
}

static int m_outSize(lua_State *L) {
  lua_pushinteger(L, blua_shape_size(blua_op_out_shape(check_op(L, 1))));
  return 1;
}

static int m_kind(lua_State *L) {
  lua_pushstring(L, blua_op_kind(check_op(L, 1)));
  return 1;
}

static int m_nparams(lua_State *L) {
  lua_pushinteger(L, blua_op_nparams(check_op(L, 1)));
  return 1;
}

static int m_paramShapes(lua_State *L) {
  blua_op *op = check_op(L, 1);
  int np = blua_op_nparams(op);
  lua_createtable(L, np, 0);
  for (int i = 0; i < np; i++) {
    int64_t r, c;
    blua_op_param_shape(op, i, &r, &c);
    lua_createtable(L, 2, 1);
    lua_pushinteger(L, r);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, c);
    lua_rawseti(L, -2, 2);
    if (blua_op_param_is_bias(op, i)) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "bias");
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_tostring(lua_State *L) {
  char buf[200];
  lua_pushstring(L, blua_op_describe(check_op(L, 1), buf, sizeof buf));
  return 1;
}

static const luaL_Reg methods[] = {
    {"forward", m_forward},     {"adjoint", m_adjoint}, {"wgrad", m_wgrad},         {"norm", m_norm},
    {"inShape", m_inShape},     {"outShape", m_outShape}, {"inSize", m_inSize},     {"outSize", m_outSize},
    {"kind", m_kind},           {"nparams", m_nparams}, {"paramShapes", m_paramShapes},
    {"clone", m_clone},         {NULL, NULL}};

static const luaL_Reg constructors[] = {{"dense", l_dense},     {"conv2d", l_conv2d}, {"avgpool2d", l_avgpool2d},
                                        {"reshape", l_reshape}, {"chain", l_chain},   {"backprop", l_backprop},
                                        {"lifted_batch", l_lifted_batch},
                                        {NULL, NULL}};

/* blua.op.isOp(v) */
static int l_isOp(lua_State *L) {
  blua_op **p = luaL_testudata(L, 1, OP_MT);
  lua_pushboolean(L, p && *p);
  return 1;
}

void lblua_open_op(lua_State *L) {
  if (luaL_newmetatable(L, OP_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, m_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, constructors);
  lua_pushcfunction(L, l_isOp);
  lua_setfield(L, -2, "isOp");
  lua_setfield(L, -2, "op");
}
