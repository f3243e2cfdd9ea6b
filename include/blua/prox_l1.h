/* An L1 penalty α‖u‖₁ on a layer's auxiliary variables, folded into the X-step's proximal
 * map (docs/design.md, "L1 penalties on auxiliary variables"):
 *
 *   prox_{μ(Φ + α|·|)}(v) = prox_{μΦ}(T(v)),
 *   T(v) = v − μα            when the range of σ lies in [0, ∞)   (ReLU, sigmoid, clip lo ≥ 0)
 *        = v + μα            when it lies in (−∞, 0]               (clip hi ≤ 0)
 *        = S_{μα}(v)         otherwise, where σ(0) = 0             (identity, leaky, clip, soft
 *                                                                   threshold, tanh)
 * The classical lifted model's projected step becomes Π_C(T(v)) the same way.
 * Softmax (a simplex-valued output layer) takes no L1 penalty: BLUA_ERROR.
 * Same conventions as blua/prox.h (any views, out may alias v, float32). */
#ifndef BLUA_PROX_L1_H
#define BLUA_PROX_L1_H

#include "blua/prox.h"

/* out = argmin_u μ(½u² + Ψ(u) + α|u|) + ½(u − v)², μ > 0, α ≥ 0. */
int blua_act_prox_l1(const blua_act *act, blua_tensor *out, const blua_tensor *v, double mu, double alpha,
                     blua_err *err);

/* out = argmin_{u ∈ C} t|u| + ½(u − v)² with C the closure of σ's range, t ≥ 0. */
int blua_act_project_l1(const blua_act *act, blua_tensor *out, const blua_tensor *v, double t, blua_err *err);

/* The X-steps of blua/prox.h with the L1 term α‖x‖₁ on the layer, fused, in place on x:
 *   Bregman:   x ← prox_{μ(Φ + α|·|)}( x + μ (z − g) )
 *   classical: x ← argmin_{u ∈ C} μα|u| + ½(u − (x − μ (γ (x − z) + g)))²
 * the bits of the plain point followed by blua_act_prox_l1 (threshold μα) or
 * blua_act_project_l1 (t = μα) on it. α ≥ 0; softmax: BLUA_ERROR. */
int blua_act_xstep_bregman_l1(const blua_act *act, blua_tensor *x, const blua_tensor *z, const blua_tensor *g,
                              double mu, double alpha, blua_err *err);
int blua_act_xstep_lifted_l1(const blua_act *act, blua_tensor *x, const blua_tensor *z, const blua_tensor *g,
                             double mu, double gamma, double alpha, blua_err *err);

/* d += α sign(x) (0 at 0), elementwise (2-D, one shape): back-propagation's gradient of
 * α‖x‖₁ joining the delta before the activation's derivative; the bits of d + α·sign(x) as
 * tensor operations compute them. α ≥ 0 and finite. */
int blua_l1_subgradient_add(blua_tensor *d, const blua_tensor *x, double alpha, blua_err *err);

#endif
