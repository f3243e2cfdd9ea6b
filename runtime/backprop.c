/* See blua/backprop.h. Tensor reference counts are not atomic, so every view a block needs
 * (its rows of each operand, the transposes, its own gradient tensors) is made before the
 * parallel loop and released after it; inside, the kernels touch only the block's own views. */
#include "blua/backprop.h"

#include <math.h>
#include <stdlib.h>

#include "blua/penalty.h"
#include "blua/prox_l1.h"
#include "blua/shares.h"
#include "blua/team.h"

enum { MAXL = 64 };

/* The views of one block of rows. */
typedef struct {
  blua_tensor *x, *y, *z[MAXL], *xs[MAXL], *xt[MAXL], *d[MAXL], *grads[2 * MAXL];
  double loss;
  int status;
  blua_err err;
} block;

static void block_release(block *b, int L) {
  blua_tensor_release(b->x);
  blua_tensor_release(b->y);
  for (int l = 0; l < L; l++) {
    blua_tensor_release(b->z[l]);
    blua_tensor_release(b->xs[l]);
    blua_tensor_release(b->xt[l]);
    blua_tensor_release(b->d[l]);
    blua_tensor_release(b->grads[2 * l]);
    blua_tensor_release(b->grads[2 * l + 1]);
  }
}

static int block_make(block *b, int L, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *Z,
                      blua_tensor *const *X, blua_tensor *const *D, blua_tensor *const *grads, blua_tensor *const *own, int64_t first, int64_t count,
                      blua_err *err) {
  if (!(b->x = blua_tensor_narrow((blua_tensor *)x, 0, first, count, err))) return BLUA_ERROR;
  if (!(b->y = blua_tensor_narrow((blua_tensor *)y, 0, first, count, err))) return BLUA_ERROR;
  for (int l = 0; l < L; l++) {
    if (!(b->z[l] = blua_tensor_narrow(Z[l], 0, first, count, err))) return BLUA_ERROR;
    if (!(b->d[l] = blua_tensor_narrow(D[l], 0, first, count, err))) return BLUA_ERROR;
    if (l < L - 1 && !(b->xs[l] = blua_tensor_narrow(X[l], 0, first, count, err))) return BLUA_ERROR;
    if (!(b->xt[l] = blua_tensor_transpose(l > 0 ? b->xs[l - 1] : b->x, err))) return BLUA_ERROR;
    for (int k = 2 * l; k < 2 * l + 2; k++) {
      /* (own: this block's spare gradient tensors, or NULL for the batch's own) */
      blua_tensor *t = own ? own[k] : grads[k];
      blua_tensor_retain(t);
      b->grads[k] = t;
    }
  }
  return BLUA_OK;
}

/* The forward and backward pass of one block; wt[l] is W_lᵀ. */
static int block_run(block *b, int L, const blua_lifted_layer *layers, blua_tensor *const *wt, double scale,
                     const double *l1, blua_err *err) {
  const blua_tensor *prev = b->x;
  for (int l = 0; l < L; l++) {
    if (blua_lifted_affine(b->z[l], prev, &layers[l], err)) return BLUA_ERROR;
    if (l < L - 1) {
      if (blua_act_forward(layers[l].act, b->xs[l], b->z[l], err)) return BLUA_ERROR;
      prev = b->xs[l];
    }
  }
  const blua_act *out = layers[L - 1].act;
  if (blua_act_bregman(out, b->y, b->z[L - 1], &b->loss, err)) return BLUA_ERROR;
  for (int l = 0; l < L - 1 && l1; l++) /* α‖σ(z_l)‖₁ */
    if (l1[l] > 0.0) b->loss += l1[l] * blua_tensor_abs_sum(b->xs[l]);
  if (blua_act_bregman_grad(out, b->d[L - 1], b->y, b->z[L - 1], err)) return BLUA_ERROR;
  for (int l = L - 1; l >= 0; l--) {
    if (blua_mm(b->grads[2 * l], 0.0f, (float)scale, b->xt[l], b->d[l], err)) return BLUA_ERROR;
    if (blua_tensor_sum_rows(b->grads[2 * l + 1], 0.0f, (float)scale, b->d[l], err)) return BLUA_ERROR;
    if (l > 0) {
      if (blua_mm(b->d[l - 1], 0.0f, 1.0f, b->d[l], wt[l], err)) return BLUA_ERROR;
      /* the L1 term's subgradient α sign(x) joins before the σ' factor */
      if (l1 && l1[l - 1] > 0.0 && blua_l1_subgradient_add(b->d[l - 1], b->xs[l - 1], l1[l - 1], err)) return BLUA_ERROR;
      if (blua_act_derivative_mul(layers[l - 1].act, b->d[l - 1], b->z[l - 1], err)) return BLUA_ERROR;
    }
  }
  return BLUA_OK;
}

typedef struct {
  block *blocks;
  int L;
  const blua_lifted_layer *layers;
  blua_tensor *const *wt;
  double scale;
  const double *l1;
} run_ctx;

static void run_task(void *ctx, int p) {
  run_ctx *c = ctx;
  c->blocks[p].status = block_run(&c->blocks[p], c->L, c->layers, c->wt, c->scale, c->l1, &c->blocks[p].err);
}

int blua_backprop_batch(int L, const blua_lifted_layer *layers, const blua_tensor *x, const blua_tensor *y,
                        blua_tensor *const *Z, blua_tensor *const *X, blua_tensor *const *D, blua_tensor *const *G,
                        double scale, int parts, blua_tensor *const *grads, blua_tensor *const *spare, double *loss,
                        blua_err *err) {
  return blua_backprop_batch_l1(L, layers, NULL, x, y, Z, X, D, G, scale, parts, grads, spare, loss, err);
}

/* The batch step; with unsummed set and exactly two shares, share 1's gradients stay in spare
 * (*unsummed = 1) instead of being added into grads. */
static int backprop_batch(int L, const blua_lifted_layer *layers, const double *l1, const blua_tensor *x,
                          const blua_tensor *y, blua_tensor *const *Z, blua_tensor *const *X, blua_tensor *const *D,
                          double scale, int parts, blua_tensor *const *grads, blua_tensor *const *spare, double *loss,
                          int *unsummed, blua_err *err) {
  blua_team_join(); /* (rows of x and y the team may still be gathering: blua_tensor_gather_rows_post) */
  if (L < 1 || L > MAXL) return blua_fail(err, "bad network: %d layers (1 to %d supported)", L, MAXL);
  if (blua_batch_scratch_apart(L, x, y, Z, "Z", D, "D", X, err)) return BLUA_ERROR;
  for (int l = 0; l1 && l < L - 1; l++)
    if (!(l1[l] >= 0.0 && isfinite(l1[l])))
      return blua_fail(err, "bad L1 weight of layer %d: non-negative and finite expected, got %g", l + 1, l1[l]);
  int64_t rows = blua_tensor_rows(x);
  if (parts < 1) parts = 1;
  if (parts > rows) parts = rows > 0 ? (int)rows : 1;
  if (parts > 1 && !spare) return blua_fail(err, "no spare gradients for %d blocks", parts);
  block *blocks = calloc((size_t)parts, sizeof *blocks);
  blua_tensor *wt[MAXL] = {0};
  int result = BLUA_OK;
  if (!blocks) return blua_fail(err, "out of memory: back-propagation in %d blocks", parts);
  for (int l = 1; l < L && result == BLUA_OK; l++)
    if (!(wt[l] = blua_tensor_transpose((blua_tensor *)layers[l].W, err))) result = BLUA_ERROR;
  for (int p = 0; p < parts && result == BLUA_OK; p++) {
    int64_t first, count;
    blua_share_bounds(rows, parts, p, &first, &count);
    /* block 0 writes the gradients in place; the others into spare ones, added afterwards */
    blua_tensor *const *own = p == 0 ? NULL : spare + (size_t)(p - 1) * (size_t)(2 * L);
    result = block_make(&blocks[p], L, x, y, Z, X, D, grads, own, first, count, err);
  }
  if (result == BLUA_OK) {
    double work = 0.0; /* (multiply-adds of one share's forward pass) */
    for (int l = 0; l < L; l++) work += (double)(rows / parts) * (double)blua_tensor_nelement(layers[l].W);
    run_ctx ctx = {blocks, L, layers, wt, scale, l1};
    blua_team_for(parts, blua_shares_side_by_side(parts, work), run_task, &ctx);
    *loss = 0.0;
    for (int p = 0; p < parts && result == BLUA_OK; p++) {
      if (blocks[p].status) {
        *err = blocks[p].err;
        result = BLUA_ERROR;
        break;
      }
      *loss += blocks[p].loss;
      if (p > 0 && unsummed && parts == 2) *unsummed = 1;
      else if (p > 0) result = blua_tensors_accumulate(2 * L, grads, (const blua_tensor *const *)blocks[p].grads, err);
    }
  }
  for (int p = 0; p < parts; p++) block_release(&blocks[p], L);
  for (int l = 0; l < L; l++) blua_tensor_release(wt[l]);
  free(blocks);
  return result;
}

int blua_backprop_batch_l1(int L, const blua_lifted_layer *layers, const double *l1, const blua_tensor *x,
                           const blua_tensor *y, blua_tensor *const *Z, blua_tensor *const *X, blua_tensor *const *D,
                           blua_tensor *const *G, double scale, int parts, blua_tensor *const *grads,
                           blua_tensor *const *spare, double *loss, blua_err *err) {
  (void)G; /* (the derivative is multiplied into D in place: G is not needed) */
  return backprop_batch(L, layers, l1, x, y, Z, X, D, scale, parts, grads, spare, loss, NULL, err);
}

int blua_backprop_batch_unsummed(int L, const blua_lifted_layer *layers, const double *l1, const blua_tensor *x,
                                 const blua_tensor *y, blua_tensor *const *Z, blua_tensor *const *X,
                                 blua_tensor *const *D, double scale, int parts, blua_tensor *const *grads,
                                 blua_tensor *const *spare, double *loss, int *unsummed, blua_err *err) {
  *unsummed = 0;
  return backprop_batch(L, layers, l1, x, y, Z, X, D, scale, parts, grads, spare, loss, unsummed, err);
}
