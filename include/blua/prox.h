/* Proximal activations: every activation σ is the proximal map of a convex Ψ,
 * σ = prox_Ψ = argmin_u ½‖u − z‖² + Ψ(u), and Φ = ½‖·‖² + Ψ has ∇Φ* = σ (docs/design.md, "Activations as proximal maps").
 * This header has the activation descriptor and the elementwise maps built on it (forward,
 * prox of μΦ, projection onto the range, linear mask, derivative, and the fused X-steps of the
 * lifted trainers); blua/penalty.h has the energies (Ψ, Φ*, Bregman and quadratic penalties).
 *
 * Conventions of every kernel here:
 * - tensors are float32, 1-D or 2-D; rows are samples. All operands of one call have the same
 *   shape. Softmax works per row (a 1-D tensor of n entries counts as n rows of one entry).
 * - any operand may be a non-contiguous view; contiguous operands take the fast path.
 * - the output may alias an input (in-place use such as forward(act, z, z) is fine).
 * - loops run OpenMP-parallel above BLUA_OMP_THRESHOLD elements; sums are accumulated in double.
 * - functions return BLUA_OK or BLUA_ERROR with a message "problem: details" in err. */
#ifndef BLUA_PROX_H
#define BLUA_PROX_H

#include "blua/tensor.h"

typedef enum blua_act_kind {
  BLUA_ACT_IDENTITY,
  BLUA_ACT_RELU,
  BLUA_ACT_LEAKY_RELU,     /* a = slope in (0, 1] */
  BLUA_ACT_CLIP,           /* a = lo < b = hi (hard tanh for [-1, 1]) */
  BLUA_ACT_SOFT_THRESHOLD, /* a = lambda > 0 */
  BLUA_ACT_SIGMOID,
  BLUA_ACT_TANH,
  BLUA_ACT_SOFTMAX         /* per row, onto the probability simplex; output layers */
} blua_act_kind;

#define BLUA_ACT_NKINDS 8

typedef struct blua_act {
  blua_act_kind kind;
  float a, b; /* parameters, see blua_act_kind; unused ones are 0 */
} blua_act;

/* Name of a kind ("leaky_relu", ...), or NULL for a value out of range. */
const char *blua_act_kind_name(blua_act_kind kind);
/* Looks a name up; BLUA_ERROR with "unknown activation: 'x' (accepted: clip, identity, ...)". */
int blua_act_kind_from_name(const char *name, blua_act_kind *kind, blua_err *err);
/* Number of parameters of a kind (0, 1 or 2), their names and their defaults, in the order
 * blua_act_init takes them: leaky_relu {slope = 0.01}, clip {lo = -1, hi = 1},
 * soft_threshold {lambda = 0.1}. */
int blua_act_nparams(blua_act_kind kind);
const char *blua_act_param_name(blua_act_kind kind, int i);
double blua_act_param_default(blua_act_kind kind, int i);

/* Validating constructor. p1, p2 are the kind's parameters in order; NAN means "default".
 * Out-of-range values give "bad parameter: leaky_relu slope must be in (0, 1], got 2". */
int blua_act_init(blua_act *act, const char *name, double p1, double p2, blua_err *err);

/* out = σ(z). */
int blua_act_forward(const blua_act *act, blua_tensor *out, const blua_tensor *z, blua_err *err);

/* out = prox_{μΦ}(v) = argmin_u μ(½u² + Ψ(u)) + ½(u − v)², μ > 0 (note: Φ, not Ψ).
 * Closed forms for the piecewise-linear kinds; for sigmoid and tanh the root z* of
 * μz + σ(z) = v by safeguarded Newton/bisection in double (|residual| ≤ 1e-10 (1 + |v|)),
 * then u = σ(z*); for softmax the simplex-constrained problem per row (Newton on the
 * multiplier of Σu = 1). */
int blua_act_prox(const blua_act *act, blua_tensor *out, const blua_tensor *v, double mu, blua_err *err);

/* out = projection of v onto the closure of the range of σ: the constraint set C of the
 * classical lifted model. relu: max(0, v); clip: [lo, hi]; sigmoid: [0, 1]; tanh: [-1, 1];
 * softmax: the simplex, per row; identity, leaky_relu, soft_threshold: v itself. */
int blua_act_project(const blua_act *act, blua_tensor *out, const blua_tensor *v, blua_err *err);

/* out = 1 where σ acts as the identity (slope 1, docs/design.md, "Linear activations"), else 0: relu z > 0,
 * leaky_relu z >= 0, clip lo < z < hi, soft_threshold |z| > λ, identity everywhere,
 * sigmoid, tanh and softmax nowhere. */
int blua_act_linear_mask(const blua_act *act, blua_tensor *out, const blua_tensor *z, blua_err *err);

/* out = σ'(z) (back-propagation). At kinks the one-sided value of the mask convention.
 * Softmax has no elementwise derivative: BLUA_ERROR. */
int blua_act_derivative(const blua_act *act, blua_tensor *out, const blua_tensor *z, blua_err *err);

/* d = d ⊙ σ'(z) in place (back-propagation's delta through the activation) in one pass: the
 * bits of blua_act_derivative followed by an elementwise product. */
int blua_act_derivative_mul(const blua_act *act, blua_tensor *d, const blua_tensor *z, blua_err *err);

/* The X-steps (docs/design.md, "The X-step"), fused, in place on x (z, g, x of one shape; rows = samples):
 *   Bregman:   x ← prox_{μΦ}( x + μ (z − g) )
 *   classical: x ← Π_C( x − μ (γ (x − z) + g) )
 * z = W_l^T x_{l-1} + b_l (pre-activation of this layer, fixed), g = the gradient of the
 * next layer's term with respect to x (e.g. r W_{l+1}^T in batch form). μ > 0, γ >= 0. */
int blua_act_xstep_bregman(const blua_act *act, blua_tensor *x, const blua_tensor *z, const blua_tensor *g,
                           double mu, blua_err *err);
int blua_act_xstep_lifted(const blua_act *act, blua_tensor *x, const blua_tensor *z, const blua_tensor *g,
                          double mu, double gamma, blua_err *err);

/* The points the X-steps map, without the map (for activations defined outside the core):
 *   out = x + μ (z − g)            and            out = x − μ (γ (x − z) + g). */
int blua_xstep_bregman_point(blua_tensor *out, const blua_tensor *x, const blua_tensor *z, const blua_tensor *g,
                             double mu, blua_err *err);
int blua_xstep_lifted_point(blua_tensor *out, const blua_tensor *x, const blua_tensor *z, const blua_tensor *g,
                            double mu, double gamma, blua_err *err);

/* Prox of μΦ for an activation known only through evaluations of σ (user activations written
 * in Lua), by reverse communication so that σ is evaluated on whole tensors:
 *
 *   ps = blua_prox_solver_new(v, s0, mu, err);      s0 = σ(0) evaluated entrywise (v's shape)
 *   while (remaining > 0 && iterations < limit) {
 *     z = blua_prox_solver_trial(ps, err);           a new tensor of points; evaluate s = σ(z)
 *     blua_prox_solver_update(ps, s, &remaining, err);
 *   }
 *   u = blua_prox_solver_result(ps);                 prox_{μΦ}(v), a new reference
 *
 * Per entry it solves the increasing equation h(z) = μz + σ(z) − v = 0 and returns σ(z*).
 * Since σ is non-decreasing and 1-Lipschitz, σ(z) lies between σ(0) and σ(0) + z, so with
 * w = v − σ(0) the root lies between w/(1+μ) and w/μ; the two ends are evaluated first (the
 * bracket is widened if rounding or a non-proximal σ breaks it), then Illinois regula falsi
 * with a bisection every third step. An entry is done when |h| <= 1e-6 (1 + |v|), which bounds
 * the error of σ(z) by the same amount (|σ(z) − σ(z*)| <= |h(z)|), or when its bracket has
 * shrunk to adjacent floats. */
typedef struct blua_prox_solver blua_prox_solver;
blua_prox_solver *blua_prox_solver_new(const blua_tensor *v, const blua_tensor *s0, double mu, blua_err *err);
blua_tensor *blua_prox_solver_trial(blua_prox_solver *ps, blua_err *err);
int blua_prox_solver_update(blua_prox_solver *ps, const blua_tensor *s, int64_t *remaining, blua_err *err);
blua_tensor *blua_prox_solver_result(blua_prox_solver *ps);
int blua_prox_solver_iterations(const blua_prox_solver *ps);
void blua_prox_solver_free(blua_prox_solver *ps);

#endif
