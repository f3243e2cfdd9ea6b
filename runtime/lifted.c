/* Batch kernels of the lifted trainers: affine maps, next-layer residuals, fused X-steps,
 * W-gradients and energies. See blua/lifted.h. */
#include "blua/lifted.h"

#include <string.h>

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "blua/penalty.h"
#include "blua/prox_l1.h"
#include "par.h"

static int check_rows(const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  char sa[48], sb[48];
  if (blua_tensor_rows(a) != blua_tensor_rows(b))
    return blua_fail(err, "size mismatch: batches of %s and %s", blua_tensor_shape(a, sa, sizeof sa),
                     blua_tensor_shape(b, sb, sizeof sb));
  return BLUA_OK;
}

int blua_lifted_affine(blua_tensor *z, const blua_tensor *x_prev, const blua_lifted_layer *layer, blua_err *err) {
  /* z = 1 b^T first, then z += x_prev W in the same GEMM call (beta = 1). */
  int64_t rows = blua_tensor_rows(z), cols = blua_tensor_cols(z);
  const blua_tensor *bt = layer->b;
  /* The bias is any vector view: 1-D, 1 x n or n x 1, with its own step. */
  int is_vector = bt->dim == 1 || (bt->dim == 2 && (bt->size[0] == 1 || bt->size[1] == 1));
  if (z->dim != 2 || !is_vector || blua_tensor_nelement(bt) != cols) {
    char sz[160], sb[160];
    return blua_fail(err, "size mismatch: bias %s for output %s", blua_tensor_shape(bt, sb, sizeof sb),
                     blua_tensor_shape(z, sz, sizeof sz));
  }
  const float *b = blua_tensor_data(bt);
  int64_t bs = bt->dim == 1 || bt->size[0] != 1 ? bt->stride[0] : bt->stride[1];
  if (z->stride[1] == 1 && bs == 1) { /* (the trainers' own layout: whole rows at once) */
    for (int64_t i = 0; i < rows; i++) memcpy(blua_tensor_at(z, i, 0), b, (size_t)cols * sizeof *b);
    return blua_mm(z, 1.0f, 1.0f, x_prev, layer->W, err);
  }
  BLUA_PAR(rows * cols > BLUA_OMP_THRESHOLD, "omp parallel for",
  for (int64_t i = 0; i < rows; i++) {
    float *p = blua_tensor_at(z, i, 0);
    int64_t cs = z->stride[1];
    for (int64_t j = 0; j < cols; j++) p[j * cs] = b[j * bs];
  });
  return blua_mm(z, 1.0f, 1.0f, x_prev, layer->W, err);
}

int blua_lifted_residual(blua_penalty_kind kind, const blua_act *act, int is_output, double gamma,
                         blua_tensor *z, const blua_tensor *x_next, blua_err *err) {
  if (kind == BLUA_PENALTY_BREGMAN || is_output) return blua_act_bregman_grad(act, z, x_next, z, err);
  return blua_tensor_add(z, z, -1.0f, x_next, err) != BLUA_OK ? BLUA_ERROR
                                                              : blua_tensor_affine(z, z, (float)gamma, 0.0f, err);
}

/* The X-step on rows [first, first + count): residual, GEMM and prox back to back, so the
 * chunk's operands are still in cache when the next pass reads them. */
static int xstep_rows(blua_penalty_kind kind, const blua_act *act, double alpha, const blua_lifted_layer *next,
                      int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn, blua_tensor *x,
                      const blua_tensor *x_next, double mu, double gamma, blua_tensor *g, const blua_tensor *wt,
                      blua_err *err) {
  if (blua_lifted_residual(kind, next->act, next_is_output, gamma, zn, x_next, err)) return BLUA_ERROR;
  if (blua_mm(g, 0.0f, (float)next_weight, zn, wt, err)) return BLUA_ERROR;
  if (alpha > 0.0) /* (an L1 term on x: blua/prox_l1.h) */
    return kind == BLUA_PENALTY_BREGMAN ? blua_act_xstep_bregman_l1(act, x, z, g, mu, alpha, err)
                                        : blua_act_xstep_lifted_l1(act, x, z, g, mu, gamma, alpha, err);
  if (kind == BLUA_PENALTY_BREGMAN) return blua_act_xstep_bregman(act, x, z, g, mu, err);
  return blua_act_xstep_lifted(act, x, z, g, mu, gamma, err);
}

#define XSTEP_CHUNK_ROWS BLUA_XSTEP_CHUNK_ROWS

int blua_lifted_xstep_wt(blua_penalty_kind kind, const blua_act *act, const blua_lifted_layer *next,
                         int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn, blua_tensor *x,
                         const blua_tensor *x_next, double mu, double gamma, blua_tensor *g, const blua_tensor *wt,
                         blua_err *err) {
  return blua_lifted_xstep_l1_wt(kind, act, 0.0, next, next_is_output, next_weight, z, zn, x, x_next, mu, gamma, g, wt,
                                 err);
}

int blua_lifted_xstep_l1_wt(blua_penalty_kind kind, const blua_act *act, double alpha, const blua_lifted_layer *next,
                            int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn,
                            blua_tensor *x, const blua_tensor *x_next, double mu, double gamma, blua_tensor *g,
                            const blua_tensor *wt, blua_err *err) {
  if (!(mu > 0)) return blua_fail(err, "bad step: mu must be positive, got %g", mu);
  if (!(alpha >= 0 && alpha < INFINITY))
    return blua_fail(err, "bad L1 weight: %g (non-negative and finite expected)", alpha);
  if (check_rows(z, x, err) || check_rows(x, x_next, err) || check_rows(zn, x_next, err) || check_rows(g, x, err))
    return BLUA_ERROR;
  int64_t rows = blua_tensor_rows(x);
  if (rows <= XSTEP_CHUNK_ROWS)
    return xstep_rows(kind, act, alpha, next, next_is_output, next_weight, z, zn, x, x_next, mu, gamma, g, wt, err);
  int status = BLUA_OK;
  for (int64_t first = 0; first < rows && status == BLUA_OK; first += XSTEP_CHUNK_ROWS) {
    int64_t count = rows - first < XSTEP_CHUNK_ROWS ? rows - first : XSTEP_CHUNK_ROWS;
    blua_tensor *part[5] = {
        blua_tensor_narrow((blua_tensor *)z, 0, first, count, err), blua_tensor_narrow(zn, 0, first, count, err),
        blua_tensor_narrow(x, 0, first, count, err), blua_tensor_narrow((blua_tensor *)x_next, 0, first, count, err),
        blua_tensor_narrow(g, 0, first, count, err)};
    status = part[0] && part[1] && part[2] && part[3] && part[4] ? BLUA_OK : BLUA_ERROR;
    if (status == BLUA_OK)
      status = xstep_rows(kind, act, alpha, next, next_is_output, next_weight, part[0], part[1], part[2], part[3], mu, gamma,
                          part[4], wt, err);
    for (int i = 0; i < 5; i++) blua_tensor_release(part[i]);
  }
  return status;
}

int blua_lifted_xstep(blua_penalty_kind kind, const blua_act *act, const blua_lifted_layer *next,
                      int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn,
                      blua_tensor *x, const blua_tensor *x_next, double mu, double gamma, blua_tensor *g,
                      blua_err *err) {
  return blua_lifted_xstep_l1(kind, act, 0.0, next, next_is_output, next_weight, z, zn, x, x_next, mu, gamma, g, err);
}

int blua_lifted_xstep_l1(blua_penalty_kind kind, const blua_act *act, double alpha, const blua_lifted_layer *next,
                         int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn, blua_tensor *x,
                         const blua_tensor *x_next, double mu, double gamma, blua_tensor *g, blua_err *err) {
  /* g = r W_{l+1}^T: a transposed view of W goes to BLAS as it is. */
  blua_tensor *wt = blua_tensor_transpose((blua_tensor *)next->W, err);
  if (!wt) return BLUA_ERROR;
  int status = blua_lifted_xstep_l1_wt(kind, act, alpha, next, next_is_output, next_weight, z, zn, x, x_next, mu, gamma,
                                       g, wt, err);
  blua_tensor_release(wt);
  return status;
}

int blua_lifted_wgrad_xt(blua_penalty_kind kind, const blua_act *act, int is_output, double gamma,
                         const blua_tensor *xt, const blua_tensor *x, blua_tensor *z, double scale, blua_tensor *gW,
                         blua_tensor *gb, blua_err *err) {
  if (check_rows(z, x, err)) return BLUA_ERROR;
  if (xt->dim != 2 || blua_tensor_cols(xt) != blua_tensor_rows(x)) {
    char sa[48], sb[48];
    return blua_fail(err, "size mismatch: batches of %s (transposed) and %s", blua_tensor_shape(xt, sa, sizeof sa),
                     blua_tensor_shape(x, sb, sizeof sb));
  }
  if (blua_lifted_residual(kind, act, is_output, gamma, z, x, err)) return BLUA_ERROR;
  if (blua_mm(gW, 0.0f, (float)scale, xt, z, err)) return BLUA_ERROR;
  return blua_tensor_sum_rows(gb, 0.0f, (float)scale, z, err);
}

int blua_lifted_wgrad(blua_penalty_kind kind, const blua_act *act, int is_output, double gamma,
                      const blua_tensor *x_prev, const blua_tensor *x, blua_tensor *z, double scale,
                      blua_tensor *gW, blua_tensor *gb, blua_err *err) {
  if (check_rows(x_prev, x, err) || check_rows(z, x, err)) return BLUA_ERROR;
  blua_tensor *xt = blua_tensor_transpose((blua_tensor *)x_prev, err);
  if (!xt) return BLUA_ERROR;
  int status = blua_lifted_wgrad_xt(kind, act, is_output, gamma, xt, x, z, scale, gW, gb, err);
  blua_tensor_release(xt);
  return status;
}

int blua_lifted_energy(blua_penalty_kind kind, const blua_act *act, int is_output, double gamma,
                       const blua_tensor *x, const blua_tensor *z, double *energy, blua_err *err) {
  if (kind == BLUA_PENALTY_BREGMAN || is_output) return blua_act_bregman(act, x, z, energy, err);
  return blua_quadratic_penalty(x, z, gamma, energy, err);
}

