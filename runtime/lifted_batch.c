/* See blua/lifted_batch.h. Tensor reference counts are not atomic, so every view a share needs
 * (its rows of each operand, the transposes, its own gradient tensors) is made before the
 * parallel loop and released after it; inside, the kernels touch only the share's own views,
 * its own operators and the weights' transposes made here. The steps mirror
 * lua/blua/train/lifted.lua (Batch) one for one, so both compute the same bits: a dense layer
 * runs the kernels of blua/lifted.h (a dense operator included: they make the same products),
 * any other layer its operator. */
#include "blua/lifted_batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blua/prox_l1.h"
#include "blua/shares.h"
#include "blua/team.h"

enum { MAXL = 64 };

/* The network as both entry points describe it: layer l (0-based) is dense[l] (W, b and the
 * activation) when op[l] is NULL, else the operator op[l] of share 0 (share p's is
 * ops[p L + l]) with parameters params[off[l] ..]; its gradients start at grads[off[l]]. */
typedef struct {
  int L, np;
  blua_lifted_layer layer[MAXL];
  blua_op *const *ops; /* parts x L, or NULL: every layer dense */
  int is_op[MAXL];
  blua_tensor *const *params;
  int off[MAXL + 1];
  blua_tensor *wt[MAXL + 1]; /* W_lᵀ of the dense layers 2..L */
} net_desc;

/* The views of one share; arrays indexed as in lifted.lua: xs[0] the inputs, xs[1..L-1] the
 * hidden variables, xs[L] the targets; z, g, xt (xs[l-1]ᵀ) for layers 1..L. */
typedef struct {
  blua_tensor *xs[MAXL + 1], *z[MAXL + 1], *g[MAXL + 1], *xt[MAXL + 1], **grads;
  blua_op *const *ops; /* this share's operators (L), or NULL */
  int current[MAXL + 1]; /* z[l] = A_l(xs[l-1]) + b_l holds */
  double loss, *energy;
  int status;
  blua_err err;
} share;

static void share_release(share *s, const net_desc *n) {
  for (int l = 0; l <= n->L; l++) {
    blua_tensor_release(s->xs[l]);
    blua_tensor_release(s->z[l]);
    blua_tensor_release(s->g[l]);
    blua_tensor_release(s->xt[l]);
  }
  if (s->grads)
    for (int i = 0; i < n->np; i++) blua_tensor_release(s->grads[i]);
  free(s->grads);
}

static int share_make(share *s, const net_desc *n, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *X,
                      blua_tensor *const *Z, blua_tensor *const *G, blua_tensor *const *grads,
                      blua_tensor *const *own, int64_t first, int64_t count, blua_err *err) {
  int L = n->L;
  if (!(s->xs[0] = blua_tensor_narrow((blua_tensor *)x, 0, first, count, err))) return BLUA_ERROR;
  if (!(s->xs[L] = blua_tensor_narrow((blua_tensor *)y, 0, first, count, err))) return BLUA_ERROR;
  for (int l = 1; l <= L; l++) {
    if (l < L && !(s->xs[l] = blua_tensor_narrow(X[l - 1], 0, first, count, err))) return BLUA_ERROR;
    if (!(s->z[l] = blua_tensor_narrow(Z[l - 1], 0, first, count, err))) return BLUA_ERROR;
    if (!(s->g[l] = blua_tensor_narrow(G[l - 1], 0, first, count, err))) return BLUA_ERROR;
    if (!n->is_op[l - 1] && !(s->xt[l] = blua_tensor_transpose(s->xs[l - 1], err))) return BLUA_ERROR;
  }
  if (!(s->grads = calloc((size_t)n->np, sizeof *s->grads))) return blua_fail(err, "out of memory: a lifted batch");
  for (int i = 0; i < n->np; i++) { /* (own: the share's spare gradient tensors, or NULL for the batch's) */
    s->grads[i] = own ? own[i] : grads[i];
    blua_tensor_retain(s->grads[i]);
  }
  return BLUA_OK;
}

/* z[l], recomputed when X has moved since. */
static int pre_activation(share *s, const net_desc *n, int l, blua_err *err) {
  if (s->current[l]) return BLUA_OK;
  int status = n->is_op[l - 1] ? blua_op_forward(s->ops[l - 1], n->params + n->off[l - 1], s->xs[l - 1], s->z[l], err)
                               : blua_lifted_affine(s->z[l], s->xs[l - 1], &n->layer[l - 1], err);
  if (status) return BLUA_ERROR;
  s->current[l] = 1;
  return BLUA_OK;
}

/* One X-step of hidden layer l with step mu. A dense next layer runs the fused kernel; an
 * operator its adjoint between the residual and the prox, as Batch:xstep_coupling and
 * Batch:xstep_apply do. */
static int xstep(share *s, const net_desc *n, const blua_lifted_batch_opts *o, int l, double mu, blua_err *err) {
  int out = l + 1 == n->L;
  double weight = out ? o->beta : 1.0, alpha = o->l1 ? o->l1[l - 1] : 0.0;
  const blua_act *act = n->layer[l - 1].act;
  if (!n->is_op[l])
    return blua_lifted_xstep_l1_wt(o->kind, act, alpha, &n->layer[l], out, weight, s->z[l], s->z[l + 1], s->xs[l],
                                   s->xs[l + 1], mu, o->gamma, s->g[l], n->wt[l + 1], err);
  if (blua_lifted_residual(o->kind, n->layer[l].act, out, o->gamma, s->z[l + 1], s->xs[l + 1], err) ||
      blua_op_adjoint(s->ops[l], n->params + n->off[l], s->z[l + 1], s->g[l], (float)weight, 0.0f, err))
    return BLUA_ERROR;
  if (alpha > 0.0)
    return o->kind == BLUA_PENALTY_BREGMAN ? blua_act_xstep_bregman_l1(act, s->xs[l], s->z[l], s->g[l], mu, alpha, err)
                                           : blua_act_xstep_lifted_l1(act, s->xs[l], s->z[l], s->g[l], mu, o->gamma,
                                                                      alpha, err);
  if (o->kind == BLUA_PENALTY_BREGMAN) return blua_act_xstep_bregman(act, s->xs[l], s->z[l], s->g[l], mu, err);
  return blua_act_xstep_lifted(act, s->xs[l], s->z[l], s->g[l], mu, o->gamma, err);
}

/* The gradients (times scale) of layer l's term; z[l] becomes its residual. */
static int wgrad(share *s, const net_desc *n, const blua_lifted_batch_opts *o, int l, double scale, blua_err *err) {
  const blua_act *act = n->layer[l - 1].act;
  blua_tensor **g = s->grads + n->off[l - 1];
  if (!n->is_op[l - 1])
    return blua_lifted_wgrad_xt(o->kind, act, l == n->L, o->gamma, s->xt[l], s->xs[l], s->z[l], scale, g[0], g[1], err);
  if (blua_lifted_residual(o->kind, act, l == n->L, o->gamma, s->z[l], s->xs[l], err)) return BLUA_ERROR;
  return blua_op_wgrad(s->ops[l - 1], n->params + n->off[l - 1], s->xs[l - 1], s->z[l], g, (float)scale, 0.0f, err);
}

/* One inner step of one share. */
static int share_run(share *s, const net_desc *n, const blua_lifted_batch_opts *o, blua_err *err) {
  int L = n->L;
  for (int l = 1; l <= L; l++) s->current[l] = 0;
  if (o->forward) {
    for (int l = 1; l < L; l++)
      if (pre_activation(s, n, l, err) || blua_act_forward(n->layer[l - 1].act, s->xs[l], s->z[l], err))
        return BLUA_ERROR;
    if (pre_activation(s, n, L, err)) return BLUA_ERROR;
    if (blua_lifted_energy(o->kind, n->layer[L - 1].act, 1, o->gamma, s->xs[L], s->z[L], &s->loss, err))
      return BLUA_ERROR;
  }
  for (int i = 0; i < o->nsteps; i++) {
    int l = o->steps[i];
    if (pre_activation(s, n, l, err) || pre_activation(s, n, l + 1, err) || xstep(s, n, o, l, o->mu[i], err))
      return BLUA_ERROR;
    s->current[l + 1] = 0; /* z[l+1] now holds the residual, and xs[l] has moved */
  }
  if (o->energies)
    for (int l = 1; l < L; l++) {
      if (pre_activation(s, n, l, err) ||
          blua_lifted_energy(o->kind, n->layer[l - 1].act, 0, o->gamma, s->xs[l], s->z[l], &s->energy[l - 1], err))
        return BLUA_ERROR;
      double alpha = o->l1 ? o->l1[l - 1] : 0.0;
      if (alpha > 0.0) s->energy[l - 1] += alpha * blua_tensor_abs_sum(s->xs[l]);
    }
  for (int l = 1; l <= L; l++) {
    if (pre_activation(s, n, l, err) || wgrad(s, n, o, l, l == L ? o->scale * o->beta : o->scale, err))
      return BLUA_ERROR;
    s->current[l] = 0;
  }
  return BLUA_OK;
}

/* The output width of layer l (0-based). */
static int64_t layer_width(const net_desc *n, int l) {
  return n->is_op[l] ? blua_shape_size(blua_op_out_shape(n->ops[l])) : blua_tensor_cols(n->layer[l].W);
}

static int check_opts(const net_desc *n, const blua_tensor *x, const blua_tensor *y, const blua_lifted_batch_opts *o,
                      blua_err *err) {
  char sx[48], sy[48];
  int L = n->L;
  if (x->dim != 2 || y->dim != 2 || blua_tensor_rows(x) != blua_tensor_rows(y))
    return blua_fail(err, "size mismatch: inputs %s, targets %s", blua_tensor_shape(x, sx, sizeof sx),
                     blua_tensor_shape(y, sy, sizeof sy));
  for (int l = 0; l < L; l++)
    if (!n->layer[l].act || (!n->is_op[l] && (!n->layer[l].W || !n->layer[l].b || n->layer[l].W->dim != 2)))
      return blua_fail(err, "bad layer %d: a 2-D weight, a bias and an activation expected", l + 1);
  if (o->nsteps < 0 || (o->nsteps > 0 && (!o->steps || !o->mu)))
    return blua_fail(err, "bad X-steps: %d steps", o->nsteps);
  for (int l = 0; o->l1 && l < L - 1; l++)
    if (!(o->l1[l] >= 0.0 && isfinite(o->l1[l])))
      return blua_fail(err, "bad L1 weight of layer %d: non-negative and finite expected, got %g", l + 1, o->l1[l]);
  for (int i = 0; i < o->nsteps; i++) {
    if (o->steps[i] < 1 || o->steps[i] >= L)
      return blua_fail(err, "bad X-step %d: layer %d is not a hidden layer (1..%d)", i + 1, o->steps[i], L - 1);
    if (!(o->mu[i] > 0) || isinf(o->mu[i]))
      return blua_fail(err, "bad X-step %d: mu must be positive and finite, got %g", i + 1, o->mu[i]);
  }
  return BLUA_OK;
}

/* The shapes the operators of a batch must agree on: each share's operator of a layer of the
 * same kind and shapes as share 0's, one after another from the inputs' width to the targets',
 * none shared between two shares (an operator's workspaces serve one call at a time). */
static int check_ops(const net_desc *n, int parts, const blua_tensor *x, const blua_tensor *y, blua_err *err) {
  int L = n->L;
  for (int i = 0; i < parts * L; i++)
    if (!n->ops[i]) return blua_fail(err, "missing operator: share %d, layer %d", i / L + 1, i % L + 1);
  int64_t width = blua_tensor_cols(x);
  for (int l = 0; l < L; l++) {
    const blua_op *op = n->ops[l];
    char d0[200], d[200];
    if (blua_shape_size(blua_op_in_shape(op)) != width)
      return blua_fail(err, "size mismatch: layer %d (%s) takes %lld features, got %lld", l + 1,
                       blua_op_describe(op, d0, sizeof d0), (long long)blua_shape_size(blua_op_in_shape(op)),
                       (long long)width);
    width = blua_shape_size(blua_op_out_shape(op));
    for (int p = 1; p < parts; p++) {
      const blua_op *q = n->ops[p * L + l];
      blua_shape a = blua_op_in_shape(op), b = blua_op_in_shape(q), c = blua_op_out_shape(op), e = blua_op_out_shape(q);
      if (strcmp(blua_op_kind(op), blua_op_kind(q)) || a.c != b.c || a.h != b.h || a.w != b.w || c.c != e.c ||
          c.h != e.h || c.w != e.w || blua_op_nparams(op) != blua_op_nparams(q))
        return blua_fail(err, "size mismatch: layer %d is %s in share 1 and %s in share %d", l + 1,
                         blua_op_describe(op, d0, sizeof d0), blua_op_describe(q, d, sizeof d), p + 1);
      for (int r = 0; r < p; r++)
        if (n->ops[r * L + l] == q)
          return blua_fail(err, "aliasing: shares %d and %d of a lifted batch run layer %d on the same operator "
                                "(each share needs operators of its own)", r + 1, p + 1, l + 1);
    }
  }
  char sy[48];
  if (blua_tensor_cols(y) != width)
    return blua_fail(err, "size mismatch: targets %s for %lld outputs", blua_tensor_shape(y, sy, sizeof sy),
                     (long long)width);
  for (int i = 0; i < n->np; i++)
    if (!n->params[i]) return blua_fail(err, "missing parameter %d of a lifted batch", i + 1);
  return BLUA_OK;
}

typedef struct {
  share *shares;
  const net_desc *n;
  const blua_lifted_batch_opts *o;
} run_ctx;

static void run_task(void *ctx, int p) {
  run_ctx *c = ctx;
  c->shares[p].status = share_run(&c->shares[p], c->n, c->o, &c->shares[p].err);
}

/* The batch of either entry point, its network described in n (wt made here). */
static int run_batch(net_desc *n, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *X,
                     blua_tensor *const *Z, blua_tensor *const *G, int parts, const blua_lifted_batch_opts *o,
                     blua_tensor *const *grads, blua_tensor *const *spare, double *loss, double *energy, blua_err *err) {
  int L = n->L;
  blua_team_join(); /* (rows of x and y the team may still be gathering: blua_tensor_gather_rows_post) */
  if (o->unsummed) *o->unsummed = 0;
  if (check_opts(n, x, y, o, err)) return BLUA_ERROR;
  int64_t rows = blua_tensor_rows(x);
  if (parts > rows) parts = rows > 0 ? (int)rows : 1;
  if (n->ops && check_ops(n, parts, x, y, err)) return BLUA_ERROR;
  if (parts > 1 && !spare) return blua_fail(err, "no spare gradients for %d shares", parts);
  for (int i = 0; i < parts * n->np; i++)
    if (!(i < n->np ? grads[i] : spare[i - n->np])) return blua_fail(err, "missing gradient %d of a lifted batch", i + 1);
  for (int l = 0; l < L; l++) {
    const blua_tensor *t[3] = {Z[l], G[l], l < L - 1 ? X[l] : Z[l]};
    int64_t width = layer_width(n, l);
    for (int k = 0; k < 3; k++)
      if (t[k]->dim != 2 || blua_tensor_rows(t[k]) != rows || blua_tensor_cols(t[k]) != width) {
        char st[48];
        return blua_fail(err, "size mismatch: scratch %s of layer %d for %lld rows and %lld outputs",
                         blua_tensor_shape(t[k], st, sizeof st), l + 1, (long long)rows, (long long)width);
      }
  }
  /* (overlapping scratch would give wrong numbers) */
  if (blua_batch_scratch_apart(L, x, y, Z, "Z", G, "G", X, err)) return BLUA_ERROR;
  share *shares = calloc((size_t)parts, sizeof *shares);
  int result = BLUA_OK;
  if (!shares) return blua_fail(err, "out of memory: a lifted batch in %d shares", parts);
  for (int l = 2; l <= L && result == BLUA_OK; l++)
    if (!n->is_op[l - 1] && !(n->wt[l] = blua_tensor_transpose((blua_tensor *)n->layer[l - 1].W, err))) result = BLUA_ERROR;
  int64_t largest = 0;
  for (int p = 0; p < parts && result == BLUA_OK; p++) {
    int64_t first, count;
    blua_share_bounds(rows, parts, p, &first, &count);
    if (count > largest) largest = count;
    /* share 0 writes the gradients in place; the others into their own, added afterwards */
    blua_tensor *const *own = p == 0 ? NULL : spare + (size_t)(p - 1) * (size_t)n->np;
    result = share_make(&shares[p], n, x, y, X, Z, G, grads, own, first, count, err);
    shares[p].ops = n->ops ? n->ops + (size_t)p * (size_t)L : NULL;
    shares[p].energy = energy ? energy + (size_t)p * (size_t)(L - 1) : NULL;
  }
  if (result == BLUA_OK && o->energies && !energy) result = blua_fail(err, "no room for the energies");
  if (result == BLUA_OK) {
    /* (the X-step makes views of chunks of shares over 4096 rows: those run one after another) */
    double work = 0.0; /* (multiply-adds of one share's forward pass; operators count as big) */
    for (int l = 0; l < L; l++)
      work += n->is_op[l] ? INFINITY : (double)largest * (double)blua_tensor_nelement(n->layer[l].W);
    int side_by_side = largest <= BLUA_XSTEP_CHUNK_ROWS && blua_shares_side_by_side(parts, work);
    run_ctx ctx = {shares, n, o};
    if (largest <= BLUA_XSTEP_CHUNK_ROWS) blua_team_for(parts, side_by_side, run_task, &ctx);
    else
      for (int p = 0; p < parts; p++) run_task(&ctx, p);
    for (int p = 0; p < parts && result == BLUA_OK; p++) {
      if (shares[p].status) {
        *err = shares[p].err;
        result = BLUA_ERROR;
        break;
      }
      if (loss) loss[p] = o->forward ? shares[p].loss : 0.0;
      if (p > 0 && o->unsummed && parts == 2) *o->unsummed = 1;
      else if (p > 0) result = blua_tensors_accumulate(n->np, grads, (const blua_tensor *const *)shares[p].grads, err);
    }
  }
  for (int p = 0; p < parts; p++) share_release(&shares[p], n);
  for (int l = 0; l <= L; l++) blua_tensor_release(n->wt[l]);
  free(shares);
  return result;
}

int blua_lifted_batch(int L, const blua_lifted_layer *layers, const blua_tensor *x, const blua_tensor *y,
                      blua_tensor *const *X, blua_tensor *const *Z, blua_tensor *const *G, int parts,
                      const blua_lifted_batch_opts *o, blua_tensor *const *grads, blua_tensor *const *spare,
                      double *loss, double *energy, blua_err *err) {
  if (L < 2 || L > MAXL) return blua_fail(err, "bad network: %d layers (2 to %d supported)", L, MAXL);
  net_desc n = {.L = L, .np = 2 * L};
  for (int l = 0; l < L; l++) n.layer[l] = layers[l];
  for (int l = 0; l <= L; l++) n.off[l] = 2 * l;
  return run_batch(&n, x, y, X, Z, G, parts < 1 ? 1 : parts, o, grads, spare, loss, energy, err);
}

int blua_lifted_batch_ops(int L, blua_op *const *ops, blua_tensor *const *params, const blua_act *const *acts,
                          const blua_tensor *x, const blua_tensor *y, blua_tensor *const *X, blua_tensor *const *Z,
                          blua_tensor *const *G, int parts, const blua_lifted_batch_opts *o, blua_tensor *const *grads,
                          blua_tensor *const *spare, double *loss, double *energy, blua_err *err) {
  if (L < 2 || L > MAXL) return blua_fail(err, "bad network: %d layers (2 to %d supported)", L, MAXL);
  if (parts < 1 || parts > BLUA_LIFTED_MAX_OP_SHARES)
    return blua_fail(err, "bad shares: %d (1 to %d with operators)", parts, BLUA_LIFTED_MAX_OP_SHARES);
  if (!ops || !params || !acts) return blua_fail(err, "missing operators, parameters or activations");
  net_desc n = {.L = L, .ops = ops, .params = params};
  for (int l = 0; l < L; l++) {
    if (!ops[l]) return blua_fail(err, "missing operator: share 1, layer %d", l + 1);
    int np = blua_op_nparams(ops[l]);
    n.off[l + 1] = n.off[l] + np;
    n.layer[l].act = acts[l];
    /* a dense operator runs as the dense kernels (the same products, the fused X-step) */
    n.is_op[l] = strcmp(blua_op_kind(ops[l]), "dense") != 0;
    if (!n.is_op[l]) {
      n.layer[l].W = params[n.off[l]];
      n.layer[l].b = params[n.off[l] + 1];
    }
  }
  n.np = n.off[L];
  return run_batch(&n, x, y, X, Z, G, parts, o, grads, spare, loss, energy, err);
}
