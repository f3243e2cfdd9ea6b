/* Fused optimiser updates (blua/optim.h). */
#include "blua/optim.h"

#include <math.h>

static int same_shapes(const blua_tensor *x, const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  char sx[48], so[48];
  const blua_tensor *bad = !blua_tensor_same_shape(x, a) ? a : (b && !blua_tensor_same_shape(x, b)) ? b : NULL;
  if (bad)
    return blua_fail(err, "size mismatch: parameter %s and state %s", blua_tensor_shape(x, sx, sizeof sx),
                     blua_tensor_shape(bad, so, sizeof so));
  return BLUA_OK;
}

int blua_adam_step(blua_tensor *x, const blua_tensor *g, blua_tensor *m, blua_tensor *v, double lr, double beta1,
                   double beta2, double eps, double weight_decay, long t, blua_err *err) {
  if (same_shapes(x, g, m, err) || same_shapes(x, v, NULL, err)) return BLUA_ERROR;
  if (t < 1) return blua_fail(err, "bad step: Adam's step count starts at 1, got %ld", t);
  double c1 = 1.0 - pow(beta1, (double)t), c2 = 1.0 - pow(beta2, (double)t);
  float step = (float)(lr / c1), b1 = (float)beta1, b2 = (float)beta2, e = (float)eps;
  float isc2 = (float)(1.0 / sqrt(c2)), decay = (float)(lr * weight_decay);
  int64_t rows = blua_tensor_rows(x), cols = blua_tensor_cols(x);
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
