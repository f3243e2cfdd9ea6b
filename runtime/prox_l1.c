/* Proximal maps with an L1 penalty on top of an activation's Φ (blua/prox_l1.h): the L1 term
 * becomes a shift or a soft-threshold of the point, followed by the activation's own prox or
 * projection. */
#include "blua/prox_l1.h"

#include <math.h>
#include "par.h"

/* Which transformation T of the point the L1 term amounts to for this activation. */
typedef enum { SHIFT_DOWN, SHIFT_UP, SHRINK } l1_rule;

static int rule_of(const blua_act *act, l1_rule *rule, blua_err *err) {
  if (!act || (unsigned)act->kind >= BLUA_ACT_NKINDS) return blua_fail(err, "bad activation: not initialised");
  switch (act->kind) {
  case BLUA_ACT_RELU:
  case BLUA_ACT_SIGMOID: *rule = SHIFT_DOWN; break;
  case BLUA_ACT_CLIP: *rule = act->a >= 0 ? SHIFT_DOWN : act->b <= 0 ? SHIFT_UP : SHRINK; break;
  case BLUA_ACT_SOFTMAX: return blua_fail(err, "bad penalty: softmax takes no L1 penalty (an output layer)");
  default: *rule = SHRINK; break;
  }
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
  for (int64_t i = 0; i < n; i++) {
    float u = x[i];
    if (rule == SHIFT_DOWN) u -= s;
    else if (rule == SHIFT_UP) u += s;
    else u = u > s ? u - s : u < -s ? u + s : 0.0f;
    x[i] = u;
  });
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
