/* Proximal maps with an L1 penalty on top of an activation's Φ (blua/prox_l1.h): the L1 term
 * becomes a shift or a soft-threshold of the point, followed by the activation's own prox or
 * projection. */
#include "blua/prox_l1.h"

#include <math.h>

#include "act_kernels.h"
#include "par.h"

static int rule_of(const blua_act *act, l1_rule *rule, blua_err *err) {
  if (!act || (unsigned)act->kind >= BLUA_ACT_NKINDS) return blua_fail(err, "bad activation: not initialised");
  if (l1_rule_of(act, rule)) return blua_fail(err, "bad penalty: softmax takes no L1 penalty (an output layer)");
  return BLUA_OK;
}

/* A contiguous copy of v with T applied, threshold t = μα. */
static blua_tensor *transformed(const blua_act *act, const blua_tensor *v, double t, blua_err *err) {
  l1_rule rule;
  if (rule_of(act, &rule, err)) return NULL;
  if (!(t >= 0.0 && isfinite(t))) {
    blua_fail(err, "bad penalty: the L1 weight must be non-negative and finite, got %g", t);
    return NULL;
  }
  blua_tensor *w = blua_tensor_clone(v, err);
  if (!w) return NULL;
  float *x = blua_tensor_data(w);
  const int64_t n = blua_tensor_nelement(w);
  const float s = (float)t;
  BLUA_PAR(n > BLUA_OMP_THRESHOLD, "omp parallel for schedule(static)",
  for (int64_t i = 0; i < n; i++) x[i] = l1_apply(rule, s, x[i]));
  return w;
}

int blua_act_prox_l1(const blua_act *act, blua_tensor *out, const blua_tensor *v, double mu, double alpha,
                     blua_err *err) {
  if (!(mu > 0.0 && isfinite(mu))) return blua_fail(err, "bad step: mu must be positive and finite, got %g", mu);
  if (!(alpha >= 0.0 && isfinite(alpha)))
    return blua_fail(err, "bad penalty: the L1 weight must be non-negative and finite, got %g", alpha);
  blua_tensor *w = transformed(act, v, mu * alpha, err);
  if (!w) return BLUA_ERROR;
  int status = blua_act_prox(act, out, w, mu, err);
  blua_tensor_release(w);
  return status;
}

int blua_act_project_l1(const blua_act *act, blua_tensor *out, const blua_tensor *v, double t, blua_err *err) {
  blua_tensor *w = transformed(act, v, t, err);
  if (!w) return BLUA_ERROR;
  int status = blua_act_project(act, out, w, err);
  blua_tensor_release(w);
  return status;
}

int blua_l1_subgradient_add(blua_tensor *d, const blua_tensor *x, double alpha, blua_err *err) {
  if (!(alpha >= 0.0 && isfinite(alpha)))
    return blua_fail(err, "bad penalty: the L1 weight must be non-negative and finite, got %g", alpha);
  if (blua_tensor_check_matrix(d, err) || blua_tensor_check_matrix(x, err)) return BLUA_ERROR;
  if (!blua_tensor_same_shape(d, x)) {
    char sd[48], sx[48];
    return blua_fail(err, "size mismatch: delta %s, activations %s", blua_tensor_shape(d, sd, sizeof sd),
                     blua_tensor_shape(x, sx, sizeof sx));
  }
  const int64_t rows = blua_tensor_rows(d), cols = blua_tensor_cols(d);
  const int64_t dc = blua_tensor_colstride(d), xc = blua_tensor_colstride(x);
  const float a = (float)alpha;
  BLUA_PAR(rows * cols > BLUA_OMP_THRESHOLD, "omp parallel for schedule(static)",
  for (int64_t i = 0; i < rows; i++) {
    float *pd = blua_tensor_at(d, i, 0);
    const float *px = blua_tensor_at(x, i, 0);
    for (int64_t j = 0; j < cols; j++) {
      float v = px[j * xc], sign = (float)((v > 0.0f) - (v < 0.0f));
      pd[j * dc] = pd[j * dc] + a * sign;
    }
  });
  return BLUA_OK;
}
