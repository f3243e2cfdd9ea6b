/* Fused optimiser updates (blua/optim.h). */
#include "blua/optim.h"

#include <math.h>

#include "blua/team.h"

static int same_shapes(const blua_tensor *x, const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  char sx[48], so[48];
  const blua_tensor *bad = !blua_tensor_same_shape(x, a) ? a : (b && !blua_tensor_same_shape(x, b)) ? b : NULL;
  if (bad)
    return blua_fail(err, "size mismatch: parameter %s and state %s", blua_tensor_shape(x, sx, sizeof sx),
                     blua_tensor_shape(bad, so, sizeof so));
  /* The strided loops address elements as (row, column): N-d views must collapse to that. */
  if (blua_tensor_check_matrix(x, err) || blua_tensor_check_matrix(a, err) || (b && blua_tensor_check_matrix(b, err)))
    return BLUA_ERROR;
  return BLUA_OK;
}

static int all_contiguous(const blua_tensor *a, const blua_tensor *b, const blua_tensor *c, const blua_tensor *d) {
  return blua_tensor_is_contiguous(a) && blua_tensor_is_contiguous(b) && blua_tensor_is_contiguous(c) &&
         (!d || blua_tensor_is_contiguous(d));
}

typedef struct {
  float *px, *pm, *pv;
  const float *pg;
  float step, b1, b2, e, isc2, decay;
} adam_ctx;

/* The flat optimiser loops are bound by vector division and square root: compiled for AVX-512
 * and AVX2 as well, they take 16 and 8 entries at a time (the same bits: both operations are
 * correctly rounded at every width, and no multiply-add is fused). */
#if defined(__x86_64__) && (defined(__clang__) ? __clang_major__ >= 14 : defined(__GNUC__))
#define OPTIM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OPTIM_CLONES
#endif

/* Adam on entries [lo, hi) of contiguous tensors. */
OPTIM_CLONES static void adam_range(void *ctx, int64_t lo, int64_t hi) {
  adam_ctx *c = ctx;
  float *px = c->px, *pm = c->pm, *pv = c->pv;
  const float *pg = c->pg;
  float step = c->step, b1 = c->b1, b2 = c->b2, e = c->e, isc2 = c->isc2, decay = c->decay;
#pragma omp simd
  for (int64_t k = lo; k < hi; k++) {
    pm[k] = b1 * pm[k] + (1.0f - b1) * pg[k];
    pv[k] = b2 * pv[k] + (1.0f - b2) * pg[k] * pg[k];
    px[k] -= step * pm[k] / (sqrtf(pv[k]) * isc2 + e) + decay * px[k];
  }
}

int blua_adam_step(blua_tensor *x, const blua_tensor *g, blua_tensor *m, blua_tensor *v, double lr, double beta1,
                   double beta2, double eps, double weight_decay, long t, blua_err *err) {
  if (same_shapes(x, g, m, err) || same_shapes(x, v, NULL, err)) return BLUA_ERROR;
  if (t < 1) return blua_fail(err, "bad step: Adam's step count starts at 1, got %ld", t);
  double c1 = 1.0 - pow(beta1, (double)t), c2 = 1.0 - pow(beta2, (double)t);
  float step = (float)(lr / c1), b1 = (float)beta1, b2 = (float)beta2, e = (float)eps;
  float isc2 = (float)(1.0 / sqrt(c2)), decay = (float)(lr * weight_decay);
  int64_t rows = blua_tensor_rows(x), cols = blua_tensor_cols(x);
  if (all_contiguous(x, g, m, v)) {
    /* The common case (the trainers' own parameters): one flat loop the compiler vectorises. */
    int64_t n = rows * cols;
    adam_ctx c = {blua_tensor_data(x), blua_tensor_data(m), blua_tensor_data(v), blua_tensor_data(g),
                  step, b1, b2, e, isc2, decay};
    blua_team_range(n, BLUA_TEAM_GRAIN, n > BLUA_OMP_THRESHOLD, adam_range, &c);
    return BLUA_OK;
  }
#pragma omp parallel for if (rows * cols > BLUA_OMP_THRESHOLD)
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      float *px = blua_tensor_at(x, i, j), *pm = blua_tensor_at(m, i, j), *pv = blua_tensor_at(v, i, j);
      float gi = *blua_tensor_at(g, i, j);
      *pm = b1 * *pm + (1.0f - b1) * gi;
      *pv = b2 * *pv + (1.0f - b2) * gi * gi;
      *px -= step * *pm / (sqrtf(*pv) * isc2 + e) + decay * *px;
    }
  return BLUA_OK;
}

int blua_sgd_step(blua_tensor *x, const blua_tensor *g, blua_tensor *buf, double lr, double momentum,
                  int nesterov, double weight_decay, blua_err *err) {
  if (same_shapes(x, g, buf, err)) return BLUA_ERROR;
  float mu = (float)momentum, wd = (float)weight_decay, rate = (float)lr;
  int64_t rows = blua_tensor_rows(x), cols = blua_tensor_cols(x);
  if (all_contiguous(x, g, buf, NULL)) {
    int64_t n = rows * cols;
    float *px = blua_tensor_data(x), *pb = blua_tensor_data(buf);
    const float *pg = blua_tensor_data(g);
#pragma omp parallel for simd if (parallel : n > BLUA_OMP_THRESHOLD)
    for (int64_t k = 0; k < n; k++) {
      float d = pg[k] + wd * px[k];
      pb[k] = mu * pb[k] + d;
      px[k] -= rate * (nesterov ? d + mu * pb[k] : pb[k]);
    }
    return BLUA_OK;
  }
#pragma omp parallel for if (rows * cols > BLUA_OMP_THRESHOLD)
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      float *px = blua_tensor_at(x, i, j), *pb = blua_tensor_at(buf, i, j);
      float d = *blua_tensor_at(g, i, j) + wd * *px;
      *pb = mu * *pb + d;
      *px -= rate * (nesterov ? d + mu * *pb : *pb);
    }
  return BLUA_OK;
}
