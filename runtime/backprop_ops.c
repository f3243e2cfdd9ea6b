/* blua_backprop_ops (blua/backprop.h): back-propagation through a network of operators, its
 * rows split into parts that run side by side, one per OpenMP thread, each with its own
 * operator records and single-threaded kernels. As in backprop.c, every tensor view a part
 * needs is made before the parallel loop and released after it (reference counts are not
 * atomic); inside, a part touches only its own views, operators and gradient tensors. */
#include <math.h>
#include <stdlib.h>

#include "blua/backprop.h"
#include "blua/penalty.h"
#include "blua/prox_l1.h"
#include "blua/shares.h"
#include "blua/team.h"

enum { MAXL = 64 };

/* The views and gradients of one part of the rows. */
typedef struct {
  blua_tensor *x, *y, *z[MAXL], *xs[MAXL], *d[MAXL];
  blua_tensor **grads; /* the caller's for part 0, clones for the others */
  double loss;
  int status;
  blua_err err;
} part;

static void part_release(part *b, int L, int np, int own) {
  blua_tensor_release(b->x);
  blua_tensor_release(b->y);
  for (int l = 0; l < L; l++) {
    blua_tensor_release(b->z[l]);
    blua_tensor_release(b->xs[l]);
    blua_tensor_release(b->d[l]);
  }
  if (own && b->grads)
    for (int i = 0; i < np; i++) blua_tensor_release(b->grads[i]);
  if (own) free(b->grads);
}

static int part_make(part *b, int L, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *Z,
                     blua_tensor *const *X, blua_tensor *const *D, blua_tensor *const *grads, int np, int own, int64_t first, int64_t count, blua_err *err) {
  if (!(b->x = blua_tensor_narrow((blua_tensor *)x, 0, first, count, err))) return BLUA_ERROR;
  if (!(b->y = blua_tensor_narrow((blua_tensor *)y, 0, first, count, err))) return BLUA_ERROR;
  for (int l = 0; l < L; l++) {
    if (!(b->z[l] = blua_tensor_narrow(Z[l], 0, first, count, err))) return BLUA_ERROR;
    if (!(b->d[l] = blua_tensor_narrow(D[l], 0, first, count, err))) return BLUA_ERROR;
    if (l < L - 1 && !(b->xs[l] = blua_tensor_narrow(X[l], 0, first, count, err))) return BLUA_ERROR;
  }
  if (!own) {
    b->grads = (blua_tensor **)grads;
    return BLUA_OK;
  }
  if (!(b->grads = calloc((size_t)np, sizeof *b->grads))) return blua_fail(err, "out of memory: back-propagation");
  for (int i = 0; i < np; i++)
    if (!(b->grads[i] = blua_tensor_clone(grads[i], err))) return BLUA_ERROR;
  return BLUA_OK;
}

/* The forward and backward pass of one part; off[l] is layer l's first parameter. */
static int part_run(part *b, int L, blua_op *const *ops, blua_tensor *const *params, const int *off,
                    const blua_act *const *acts, const double *l1, double scale, blua_err *err) {
  const blua_tensor *prev = b->x;
  for (int l = 0; l < L; l++) {
    if (blua_op_forward(ops[l], params + off[l], prev, b->z[l], err)) return BLUA_ERROR;
    if (l < L - 1) {
      if (blua_act_forward(acts[l], b->xs[l], b->z[l], err)) return BLUA_ERROR;
      prev = b->xs[l];
    }
  }
  if (blua_act_bregman(acts[L - 1], b->y, b->z[L - 1], &b->loss, err)) return BLUA_ERROR;
  for (int l = 0; l < L - 1 && l1; l++) /* α‖σ(z_l)‖₁ */
    if (l1[l] > 0.0) b->loss += l1[l] * blua_tensor_abs_sum(b->xs[l]);
  if (blua_act_bregman_grad(acts[L - 1], b->d[L - 1], b->y, b->z[L - 1], err)) return BLUA_ERROR;
  for (int l = L - 1; l >= 0; l--) {
    const blua_tensor *in = l > 0 ? b->xs[l - 1] : b->x;
    if (blua_op_wgrad(ops[l], params + off[l], in, b->d[l], b->grads + off[l], (float)scale, 0.0f, err))
      return BLUA_ERROR;
    if (l > 0) {
      if (blua_op_adjoint(ops[l], params + off[l], b->d[l], b->d[l - 1], 1.0f, 0.0f, err)) return BLUA_ERROR;
      /* the L1 term's subgradient α sign(x) joins before the σ' factor */
      if (l1 && l1[l - 1] > 0.0 && blua_l1_subgradient_add(b->d[l - 1], b->xs[l - 1], l1[l - 1], err)) return BLUA_ERROR;
      if (blua_act_derivative_mul(acts[l - 1], b->d[l - 1], b->z[l - 1], err)) return BLUA_ERROR;
    }
  }
  return BLUA_OK;
}

typedef struct {
  part *bs;
  int L;
  blua_op *const *ops;
  blua_tensor *const *params;
  const int *off;
  const blua_act *const *acts;
  const double *l1;
  double scale;
} run_ctx;

static void run_task(void *ctx, int p) {
  run_ctx *c = ctx;
  c->bs[p].status = part_run(&c->bs[p], c->L, c->ops + (size_t)p * c->L, c->params, c->off, c->acts, c->l1, c->scale,
                             &c->bs[p].err);
}

int blua_backprop_ops(int L, blua_op *const *ops, blua_tensor *const *params, const blua_act *const *acts,
                      const blua_tensor *x, const blua_tensor *y, blua_tensor *const *Z, blua_tensor *const *X,
                      blua_tensor *const *D, blua_tensor *const *G, double scale, int parts,
                      blua_tensor *const *grads, double *loss, blua_err *err) {
  return blua_backprop_ops_l1(L, ops, params, acts, NULL, x, y, Z, X, D, G, scale, parts, grads, loss, err);
}

int blua_backprop_ops_l1(int L, blua_op *const *ops, blua_tensor *const *params, const blua_act *const *acts,
                         const double *l1, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *Z,
                         blua_tensor *const *X, blua_tensor *const *D, blua_tensor *const *G, double scale, int parts,
                         blua_tensor *const *grads, double *loss, blua_err *err) {
  (void)G; /* (the derivative is multiplied into D in place: G is not needed) */
  blua_team_join(); /* (rows of x and y the team may still be gathering: blua_tensor_gather_rows_post) */
  if (L < 1 || L > MAXL) return blua_fail(err, "bad network: %d layers (1 to %d supported)", L, MAXL);
  if (blua_batch_scratch_apart(L, x, y, Z, "Z", D, "D", X, err)) return BLUA_ERROR;
  for (int l = 0; l1 && l < L - 1; l++)
    if (!(l1[l] >= 0.0 && isfinite(l1[l])))
      return blua_fail(err, "bad L1 weight of layer %d: non-negative and finite expected, got %g", l + 1, l1[l]);
  if (parts < 1) parts = 1;
  int off[MAXL + 1];
  off[0] = 0;
  for (int i = 0; i < parts * L; i++)
    if (!ops[i]) return blua_fail(err, "missing operator: back-propagation part %d, layer %d", i / L + 1, i % L + 1);
  for (int l = 0; l < L; l++) off[l + 1] = off[l] + blua_op_nparams(ops[l]);
  int np = off[L];
  for (int i = 0; i < np; i++)
    if (!grads[i] || !params[i]) return blua_fail(err, "missing parameter or gradient %d: back-propagation", i + 1);
  int64_t rows = blua_tensor_rows(x);
  if (blua_tensor_rows(y) != rows)
    return blua_fail(err, "size mismatch: back-propagation of %lld samples with %lld targets", (long long)rows,
                     (long long)blua_tensor_rows(y));
  if (parts > rows) parts = rows > 0 ? (int)rows : 1;
  for (int p = 1; p < parts; p++)
    for (int l = 0; l < L; l++)
      if (ops[p * L + l] == ops[l])
        return blua_fail(err, "aliasing: back-propagation in %d parts needs operators of their own per part", parts);
  part *bs = calloc((size_t)parts, sizeof *bs);
  if (!bs) return blua_fail(err, "out of memory: back-propagation in %d parts", parts);
  int result = BLUA_OK;
  for (int p = 0; p < parts && result == BLUA_OK; p++) {
    int64_t first, count;
    blua_share_bounds(rows, parts, p, &first, &count); /* the layout of every row share */
    result = part_make(&bs[p], L, x, y, Z, X, D, grads, np, p > 0, first, count, err);
  }
  if (result == BLUA_OK) {
    run_ctx ctx = {bs, L, ops, params, off, acts, l1, scale};
    blua_team_for(parts, blua_shares_side_by_side(parts, INFINITY), run_task, &ctx); /* (operators: big) */
    *loss = 0.0;
    /* The parts' sums in part order. */
    for (int p = 0; p < parts && result == BLUA_OK; p++) {
      if (bs[p].status) {
        *err = bs[p].err;
        result = BLUA_ERROR;
        break;
      }
      *loss += bs[p].loss;
      for (int i = 0; i < np && result == BLUA_OK && p > 0; i++)
        if (grads[i]) result = blua_tensor_add(grads[i], grads[i], 1.0f, bs[p].grads[i], err);
    }
  }
  for (int p = 0; p < parts; p++) part_release(&bs[p], L, np, p > 0);
  free(bs);
  return result;
}
