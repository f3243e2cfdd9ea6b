/* Proximal activations: the descriptor and the elementwise (softmax: per-row) maps, including
 * the Bregman gradient σ(z) − y declared in penalty.h, since it shares σ with forward.
 *
 * Each map is written once as a scalar function of the kind; the loops switch on the kind
 * outside the loop and call the scalar function with a constant kind, so after inlining each
 * loop body is the bare formula (vectorisable for the piecewise-linear kinds). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blua/penalty.h"
#include "act_kernels.h"
#include "blua/prox.h"
#include "blua/prox_l1.h"
#include "vmath.h"
#include "par.h"


/* ---- names and parameters ---- */

static const char *const kind_names[BLUA_ACT_NKINDS] = {
    "identity", "relu", "leaky_relu", "clip", "soft_threshold", "sigmoid", "tanh", "softmax"};
static const char *const accepted_names = "clip, identity, leaky_relu, relu, sigmoid, soft_threshold, softmax, tanh";

const char *blua_act_kind_name(blua_act_kind kind) {
  return (unsigned)kind < BLUA_ACT_NKINDS ? kind_names[kind] : NULL;
}

int blua_act_kind_from_name(const char *name, blua_act_kind *kind, blua_err *err) {
  for (int k = 0; k < BLUA_ACT_NKINDS; k++)
    if (name && strcmp(name, kind_names[k]) == 0) {
      *kind = (blua_act_kind)k;
      return BLUA_OK;
    }
  return blua_fail(err, "unknown activation: '%s' (accepted: %s)", name ? name : "(null)", accepted_names);
}

int blua_act_nparams(blua_act_kind kind) {
  switch (kind) {
    case BLUA_ACT_LEAKY_RELU: case BLUA_ACT_SOFT_THRESHOLD: return 1;
    case BLUA_ACT_CLIP: return 2;
    default: return 0;
  }
}

const char *blua_act_param_name(blua_act_kind kind, int i) {
  if (i < 0 || i >= blua_act_nparams(kind)) return NULL;
  switch (kind) {
    case BLUA_ACT_LEAKY_RELU: return "slope";
    case BLUA_ACT_SOFT_THRESHOLD: return "lambda";
    case BLUA_ACT_CLIP: return i == 0 ? "lo" : "hi";
    default: return NULL;
  }
}

double blua_act_param_default(blua_act_kind kind, int i) {
  if (i < 0 || i >= blua_act_nparams(kind)) return NAN;
  switch (kind) {
    case BLUA_ACT_LEAKY_RELU: return 0.01;
    case BLUA_ACT_SOFT_THRESHOLD: return 0.1;
    case BLUA_ACT_CLIP: return i == 0 ? -1.0 : 1.0;
    default: return NAN;
  }
}

int blua_act_init(blua_act *act, const char *name, double p1, double p2, blua_err *err) {
  blua_act_kind kind;
  if (blua_act_kind_from_name(name, &kind, err) != BLUA_OK) return BLUA_ERROR;
  if (isnan(p1)) p1 = blua_act_param_default(kind, 0);
  if (isnan(p2)) p2 = blua_act_param_default(kind, 1);
  act->kind = kind;
  act->a = act->b = 0.0f;
  switch (kind) {
    case BLUA_ACT_LEAKY_RELU:
      if (!(p1 > 0.0 && p1 <= 1.0))
        return blua_fail(err, "bad parameter: leaky_relu slope must be in (0, 1], got %g", p1);
      act->a = (float)p1;
      break;
    case BLUA_ACT_CLIP:
      if (!isfinite(p1) || !isfinite(p2) || !((float)p1 < (float)p2))
        return blua_fail(err, "bad parameter: clip needs finite lo < hi, got lo = %g, hi = %g", p1, p2);
      act->a = (float)p1;
      act->b = (float)p2;
      break;
    case BLUA_ACT_SOFT_THRESHOLD:
      if (!(p1 > 0.0 && isfinite(p1)))
        return blua_fail(err, "bad parameter: soft_threshold lambda must be positive and finite, got %g", p1);
      act->a = (float)p1;
      break;
    default:
      break;
  }
  return BLUA_OK;
}

/* ---- scalar maps ---- */

INLINE float clipf1(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* The piecewise maps are written as selects between values (never between expressions) and
 * unconditional arithmetic: under the default -ftrapping-math the compiler will not speculate
 * a float operation that sits in one arm of a conditional, so such an arm keeps a branch
 * (mispredicted half the time on random signs) and the loop stays scalar. */

/* sign(x) max(|x| - t, 0) = max(x - t, 0) + min(x + t, 0); NaN stays NaN. */
INLINE float shrinkf1(float x, float t) {
  float down = x - t, up = x + t;
  return (down < 0.0f ? 0.0f : down) + (up > 0.0f ? 0.0f : up);
}

INLINE float fwd1(blua_act_kind k, float a, float b, float z) {
  switch (k) {
    case BLUA_ACT_RELU: return z < 0.0f ? 0.0f : z;
    case BLUA_ACT_LEAKY_RELU: {
      float pos = z < 0.0f ? 0.0f : z, neg = z < 0.0f ? z : 0.0f;
      return pos + a * neg;
    }
    case BLUA_ACT_CLIP: return clipf1(z, a, b);
    case BLUA_ACT_SOFT_THRESHOLD: return shrinkf1(z, a);
    case BLUA_ACT_SIGMOID: return vmf_sigmoid(z);
    case BLUA_ACT_TANH: return vmf_tanh(z);
    default: return z;
  }
}

/* prox_{μΦ} for sigmoid and tanh: the root z* of h(z) = μz + σ(z) − v, then u = σ(z*) =
 * v − μz*. Newton in double, safeguarded by the bracket [(v − 1)/μ, v/μ] (sigmoid) or
 * [(v − 1)/μ, (v + 1)/μ] (tanh) that the range of σ gives, starting from the root for the
 * hard (piecewise-linear) version of σ. With M = max|σ''| and d = h'(z) >= μ, a Newton step δ
 * with M|δ| <= d/2 has the root within 2|δ| (Kantorovich) and leaves |z_new − z*| <= 4Mδ²/d,
 * so u = v − μ z_new is within 4Mδ² of u*: once that is below tol the last step is taken
 * without evaluating σ again. Typically 2–3 evaluations of exp or tanh per entry. */
#define SMOOTH_TOL(v) (1e-10 * (1.0 + fabs(v)))

/* Beyond this |v|, u = v − μz loses u's digits to cancellation (u is at most 1 in size), so
 * the scalar solvers return σ(z) instead and the vector ones leave such entries to them. */
#define SMOOTH_BIG 1e6

static float sigmoid_prox1(double v, double mu) {
  if (!isfinite(v)) return isnan(v) ? (float)v : (v > 0 ? 1.0f : 0.0f);
  double lo = (v - 1.0) / mu, hi = v / mu, z;
  if (v >= 2.0 * mu + 1.0) z = lo; /* hard sigmoid clip(z/4 + 1/2, 0, 1) */
  else if (v <= -2.0 * mu) z = hi;
  else z = (v - 0.5) / (mu + 0.25);
  const double M = 0.0963, tol = SMOOTH_TOL(v); /* max |σ''| = 1/(6√3) */
  for (int it = 0; it < 100; it++) {
    double s = 1.0 / (1.0 + exp(-z)), h = mu * z + s - v;
    if (h > 0) hi = z; else lo = z;
    double d = mu + s * (1.0 - s), step = h / d, zn = z - step;
    /* converged (also when rounding put zn on an end of the bracket), else safeguard */
    if ((4.0 * M * step * step <= tol && M * fabs(step) <= 0.5 * d) || zn == z) {
      double u = fabs(v) > SMOOTH_BIG ? 1.0 / (1.0 + exp(-zn)) : v - mu * zn;
      return (float)(u < 0.0 ? 0.0 : (u > 1.0 ? 1.0 : u));
    }
    z = zn > lo && zn < hi ? zn : 0.5 * (lo + hi);
  }
  return (float)(1.0 / (1.0 + exp(-z)));
}

static float tanh_prox1(double v, double mu) {
  if (!isfinite(v)) return isnan(v) ? (float)v : (v > 0 ? 1.0f : -1.0f);
  double lo = (v - 1.0) / mu, hi = (v + 1.0) / mu, z;
  if (fabs(v) <= 1.0 + mu) z = v / (1.0 + mu); /* hard tanh clip(z, -1, 1) */
  else z = v > 0 ? lo : hi;
  const double M = 0.7699, tol = SMOOTH_TOL(v); /* max |tanh''| = 4/(3√3) */
  for (int it = 0; it < 100; it++) {
    double t = tanh(z), h = mu * z + t - v;
    if (h > 0) hi = z; else lo = z;
    double d = mu + 1.0 - t * t, step = h / d, zn = z - step;
    /* converged (also when rounding put zn on an end of the bracket), else safeguard */
    if ((4.0 * M * step * step <= tol && M * fabs(step) <= 0.5 * d) || zn == z) {
      double u = fabs(v) > SMOOTH_BIG ? tanh(zn) : v - mu * zn;
      return (float)(u < -1.0 ? -1.0 : (u > 1.0 ? 1.0 : u));
    }
    z = zn > lo && zn < hi ? zn : 0.5 * (lo + hi);
  }
  return (float)tanh(z);
}

/* The same solves for whole blocks of entries, vectorised, in float. Both maps are mirrored onto
 * the half where the equation is one-signed in curvature: prox(v) = 1 − prox(1 − v) for sigmoid
 * (root z* <= 0, where h(z) = μz + σ(z) − s is convex) and prox(v) = −prox(−v) for tanh (z* >= 0,
 * h concave). Newton's method then moves monotonically towards the root from the side where it
 * starts (from above for a convex h, from below for a concave one), so a fixed number of steps
 * needs neither a bracket nor a branch. The start is the best of a few bounds on that side,
 * among them one Newton step taken in closed form from the root of the μ = 0 problem
 * (z = logit s, resp. atanh v), which makes it close for small μ as well as for large.
 *
 * After the last step δ the result is σ(z) − σ'(z) δ (no further exp). For a convex h on the
 * sigmoid half, |σ''| <= σ' gives: δ <= 0.3 bounds the distance to the root by 1.43 δ and the
 * error of that result by 3 σ'(z) δ²; for tanh (|tanh''| <= 2 tanh'), δ <= 0.15 and 6 tanh'(z)
 * δ². The entries whose bound exceeds SMOOTH_FTOL (and |v| > SMOOTH_BIG, NaN, infinities) go to
 * the scalar solvers above. Float rounding in h moves u by about one float rounding of a number
 * of size 1 at most (the root is well conditioned in u): the results are within 1e-7 of prox. */
#define SMOOTH_FTOL 2e-8f

/* Steps for a step size μ (two Halley steps and the last Newton step, or three and the last):
 * a small μ makes σ's curvature dominate. On a dense grid of v in [−60, 60], denser near the
 * saturated ends, and μ in [1e-4, 1e5], at most 0.4 % of the entries fail the test (none for
 * sigmoid with μ >= 1e-3). */
static int smooth_steps(double mu) { return mu >= 0.01 ? 3 : 4; }

/* Whether the float solvers can take μ at all (else every entry goes to the scalar ones). */
static int smooth_float_mu(double mu) { return mu >= 1e-30 && mu <= 1e30; }

/* sigmoid, first phase: s (the mirrored v) and the start z. */
INLINE float sigmoid_start(float v, float mu, float inv_mu, float inv_mu4, float *s_out) {
  float s = v > 0.5f ? 1.0f - v : v; /* s <= 1/2 */
  /* upper bounds z_u of z*: the root of the tangent of h at 0, s/μ (h(s/μ) = σ(s/μ) > 0) and 0;
   * then, when σ_L = s − μ z_u > 0, the Newton step from the lower bound z_L = logit σ_L
   * (σ(z_L) = σ_L <= σ(z*)), where h = μ(z_L − z_u) is known without an exp */
  float z = (s - 0.5f) * inv_mu4, zs = s * inv_mu;
  z = zs < z ? zs : z;
  z = z < 0.0f ? z : 0.0f;
  float sl = s - mu * z, sp = sl > 0.0f ? (sl < 0.5f ? sl : 0.5f) : 0.25f, c = sp * (1.0f - sp);
  float zL = vmf_log(sp / (1.0f - sp)), zl = zL - mu * (zL - z) / (mu + c);
  *s_out = s;
  return sl > 0.0f && zl < z ? zl : z;
}

/* A Halley step. With e = e^z and p = 1 + e: σ = e/p, σ' = e/p², σ'' = e(1 − e)/p³; h, h' and
 * h'' times p², and the step num/den times p⁵/p⁵, so that it takes one division. */
INLINE float sigmoid_halley(float z, float s, float mu, float inv_mu) {
  const float lo = (s - 0.5f) * inv_mu; /* σ(z*) >= 0 (a guard against rounding only) */
  float e = vmf_exp(z), p = 1.0f + e, p2 = p * p;
  float hp = (mu * z - s) * p2 + e * p, dp = mu * p2 + e;
  float num = hp * dp * p, den = dp * dp * p - 0.5f * hp * e * (1.0f - e);
  float step = den > 0.5f * dp * dp * p ? num / den : hp / dp; /* else Newton */
  z -= step;
  return z > lo ? z : lo;
}

/* The last step, Newton with h in double: the float h would carry roundings of μz and s,
 * numbers up to |v| in size, where u only has those of σ(z). Returns u = σ − σ'δ, mirrored back,
 * and in *bound the error bound (plus 1 for |v| > SMOOTH_BIG; NaN for NaN v). */
INLINE float sigmoid_final(float z, float v, float mu, float *bound) {
  int up = v > 0.5f;
  double e = vmf_exp(z), sg = e / (1.0 + e), d1 = sg * (1.0 - sg);
  double sd = up ? 1.0 - (double)v : (double)v;
  double step = ((double)mu * z + sg - sd) / ((double)mu + d1), w = sg - d1 * step;
  float err = step <= 0.3 && step >= -0.3 ? (float)(3.0 * d1 * step * step) : 1.0f;
  w = w < 0.0 ? 0.0 : (w > 0.5 ? 0.5 : w);
  *bound = err + (__builtin_fabsf(v) <= (float)SMOOTH_BIG ? 0.0f : 1.0f); /* (a select, not &&: vectorises) */
  return (float)(up ? 1.0 - w : w);
}

/* tanh, first phase: a = |v| and the start z. */
INLINE float tanh_start(float v, float mu, float inv_mu, float inv_mu1, float *a_out) {
  float a = __builtin_fabsf(v);
  /* lower bounds z_l of z* >= 0: the Newton step from 0 and (a − 1)/μ; then, when
   * t_U = a − μ z_l < 1, the Newton step from the upper bound z_U = atanh t_U
   * (tanh z_U = t_U >= tanh z*), where h = μ(z_U − z_l) is known without an exp */
  float z = a * inv_mu1, zb = (a - 1.0f) * inv_mu;
  z = zb > z ? zb : z;
  float tu = a - mu * z, tp = tu < 1.0f ? (tu > 0.0f ? tu : 0.0f) : 0.5f, c = (1.0f - tp) * (1.0f + tp);
  float zU = 0.5f * vmf_log((1.0f + tp) / (1.0f - tp)), zl = zU - mu * (zU - z) / (mu + c);
  *a_out = a;
  return tu < 1.0f && zl > z ? zl : z;
}

/* A Halley step. With E = e^{−2z}, m = E − 1 and p = 1 + E: tanh = −m/p, tanh' = 4E/p²,
 * tanh'' = 8mE/p³; scaled as for sigmoid. */
INLINE float tanh_halley(float z, float a, float mu, float inv_mu) {
  const float hi = a * inv_mu; /* tanh z* >= 0 (a guard against rounding only) */
  float E, m = vmf_expm1_exp(-2.0f * z, &E), p = 1.0f + E, p2 = p * p, d4 = 4.0f * E;
  float hp = (mu * z - a) * p2 - m * p, dp = mu * p2 + d4;
  float num = hp * dp * p, den = dp * dp * p - hp * m * d4;
  float step = den > 0.5f * dp * dp * p ? num / den : hp / dp;
  z -= step;
  return z < hi ? z : hi;
}

/* The last step, as for sigmoid; tanh as 1 − 2E/p where E < 1/2. */
INLINE float tanh_final(float z, float v, float mu, float *bound) {
  float a = __builtin_fabsf(v), Ef, mf = vmf_expm1_exp(-2.0f * z, &Ef);
  double E = Ef, p = 1.0 + E, t = E < 0.5 ? 1.0 - 2.0 * E / p : -(double)mf / p, d1 = 4.0 * E / (p * p);
  double step = ((double)mu * z + t - a) / ((double)mu + d1), w = t - d1 * step;
  float err = step >= -0.15 && step <= 0.15 ? (float)(6.0 * d1 * step * step) : 1.0f;
  w = w > 1.0 ? 1.0 : w;
  *bound = err + (a <= (float)SMOOTH_BIG ? 0.0f : 1.0f);
  return __builtin_copysignf((float)w, v);
}

/* out[j] = prox_{μΦ}(v[j]) for j < n <= SMOOTH_BLOCK, sigmoid or tanh. out may alias v. The
 * phases (start, each Halley step, last step) are separate loops over the block: one entry's
 * steps form a long chain of dependent operations, and a loop over entries per step gives the
 * CPU independent vectors to overlap (1.8 times faster than all steps in one loop). */
SMOOTH_CLONES static void smooth_prox_block(blua_act_kind kind, double mu, const float *v, float *out, int64_t n) {
  float vb[SMOOTH_BLOCK], z[SMOOTH_BLOCK], s[SMOOTH_BLOCK], err[SMOOTH_BLOCK];
  memcpy(vb, v, (size_t)n * sizeof *vb);
  if (!smooth_float_mu(mu)) {
    for (int64_t j = 0; j < n; j++) out[j] = kind == BLUA_ACT_SIGMOID ? sigmoid_prox1(vb[j], mu) : tanh_prox1(vb[j], mu);
    return;
  }
  /* 1/μ and 1/(μ + 1/4) (sigmoid) or 1/(1 + μ) (tanh) for the start, once per block */
  const float m = (float)mu, inv = (float)(1.0 / mu);
  const int steps = smooth_steps(mu);
  if (kind == BLUA_ACT_SIGMOID) {
    const float inv2 = (float)(1.0 / (mu + 0.25));
#pragma omp simd
    for (int64_t j = 0; j < n; j++) z[j] = sigmoid_start(vb[j], m, inv, inv2, &s[j]);
    for (int it = 1; it < steps; it++) {
#pragma omp simd
      for (int64_t j = 0; j < n; j++) z[j] = sigmoid_halley(z[j], s[j], m, inv);
    }
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = sigmoid_final(z[j], vb[j], m, &err[j]);
  } else {
    const float inv2 = (float)(1.0 / (mu + 1.0));
#pragma omp simd
    for (int64_t j = 0; j < n; j++) z[j] = tanh_start(vb[j], m, inv, inv2, &s[j]);
    for (int it = 1; it < steps; it++) {
#pragma omp simd
      for (int64_t j = 0; j < n; j++) z[j] = tanh_halley(z[j], s[j], m, inv);
    }
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = tanh_final(z[j], vb[j], m, &err[j]);
  }
  for (int64_t j = 0; j < n; j++)
    if (!(err[j] <= SMOOTH_FTOL)) out[j] = kind == BLUA_ACT_SIGMOID ? sigmoid_prox1(vb[j], mu) : tanh_prox1(vb[j], mu);
}

/* Constants of prox_{μΦ} computed once per call: c = 1/(1+μ); d is a/(a+μ) for leaky_relu
 * and the threshold λμ/(1+μ) for soft_threshold. */
typedef struct {
  double mu;
  float c, d;
} prox_consts;

static prox_consts prox_setup(const blua_act *act, double mu) {
  prox_consts p = {mu, (float)(1.0 / (1.0 + mu)), 0.0f};
  if (act->kind == BLUA_ACT_LEAKY_RELU) p.d = (float)(act->a / (act->a + mu));
  if (act->kind == BLUA_ACT_SOFT_THRESHOLD) p.d = (float)(act->a * mu / (1.0 + mu));
  return p;
}

INLINE float prox1(blua_act_kind k, float a, float b, prox_consts p, float v) {
  switch (k) {
    case BLUA_ACT_RELU: { float t = v * p.c; return t < 0.0f ? 0.0f : t; }
    case BLUA_ACT_LEAKY_RELU: { float coef = v < 0.0f ? p.d : p.c; return coef * v; }
    case BLUA_ACT_CLIP: return clipf1(v * p.c, a, b);
    case BLUA_ACT_SOFT_THRESHOLD: return shrinkf1(v * p.c, p.d);
    case BLUA_ACT_SIGMOID: return sigmoid_prox1(v, p.mu);
    case BLUA_ACT_TANH: return tanh_prox1(v, p.mu);
    default: return v * p.c;
  }
}

INLINE float project1(blua_act_kind k, float a, float b, float v) {
  switch (k) {
    case BLUA_ACT_RELU: return v < 0.0f ? 0.0f : v;
    case BLUA_ACT_CLIP: return clipf1(v, a, b);
    case BLUA_ACT_SIGMOID: return clipf1(v, 0.0f, 1.0f);
    case BLUA_ACT_TANH: return clipf1(v, -1.0f, 1.0f);
    default: return v;
  }
}

INLINE float mask1(blua_act_kind k, float a, float b, float z) {
  switch (k) {
    case BLUA_ACT_IDENTITY: return 1.0f;
    case BLUA_ACT_RELU: return z > 0.0f ? 1.0f : 0.0f;
    case BLUA_ACT_LEAKY_RELU: return z >= 0.0f ? 1.0f : 0.0f;
    case BLUA_ACT_CLIP: return z > a && z < b ? 1.0f : 0.0f;
    case BLUA_ACT_SOFT_THRESHOLD: return fabsf(z) > a ? 1.0f : 0.0f;
    default: return 0.0f;
  }
}

INLINE float deriv1(blua_act_kind k, float a, float b, float z) {
  switch (k) {
    case BLUA_ACT_LEAKY_RELU: return z >= 0.0f ? 1.0f : a;
    case BLUA_ACT_SIGMOID: { float s = vmf_sigmoid(z); return s * (1.0f - s); }
    case BLUA_ACT_TANH: { float t = vmf_tanh(z); return (1.0f - t) * (1.0f + t); }
    default: return mask1(k, a, b, z);
  }
}


/* σ, σ' and σ(z) − y over a block of entries, sigmoid or tanh. */
SMOOTH_CLONES static void smooth_forward_block(blua_act_kind kind, const float *z, float *out, int64_t n) {
  if (kind == BLUA_ACT_SIGMOID) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = fwd1(BLUA_ACT_SIGMOID, 0.0f, 0.0f, z[j]);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = fwd1(BLUA_ACT_TANH, 0.0f, 0.0f, z[j]);
  }
}

SMOOTH_CLONES static void smooth_deriv_block(blua_act_kind kind, const float *z, float *out, int64_t n) {
  if (kind == BLUA_ACT_SIGMOID) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = deriv1(BLUA_ACT_SIGMOID, 0.0f, 0.0f, z[j]);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = deriv1(BLUA_ACT_TANH, 0.0f, 0.0f, z[j]);
  }
}

SMOOTH_CLONES static void smooth_grad_block(blua_act_kind kind, const float *y, const float *z, float *out,
                                            int64_t n) {
  if (kind == BLUA_ACT_SIGMOID) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = fwd1(BLUA_ACT_SIGMOID, 0.0f, 0.0f, z[j]) - y[j];
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = fwd1(BLUA_ACT_TANH, 0.0f, 0.0f, z[j]) - y[j];
  }
}

/* Runs CALL(i, len) over the blocks of n entries, in parallel above the threshold. */
#define SMOOTH_BLOCKS(n, CALL)                                                    \
  do {                                                                            \
    const int64_t n_ = (n);                                                       \
    BLUA_PAR(n_ > BLUA_OMP_THRESHOLD, "omp parallel for schedule(dynamic, 8)",     \
    for (int64_t i = 0; i < n_; i += SMOOTH_BLOCK) {                              \
      int64_t len = n_ - i < SMOOTH_BLOCK ? n_ - i : SMOOTH_BLOCK;                \
      CALL;                                                                       \
    });                                                                           \
  } while (0)

/* Elementwise loops over n entries with chunks of `chunk` (locals of the kernel). Chunks are
 * handed out dynamically: on a machine shared with other jobs a static split leaves the
 * loop waiting for the thread whose core is busy. */
#define PAR_FOR(...) BLUA_PAR_SIMD(n > BLUA_OMP_THRESHOLD, "omp parallel for simd schedule(dynamic, chunk)", __VA_ARGS__)


/* ---- softmax rows ---- */

static void softmax_row(float *o, const float *z, int64_t n) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = z[j] > m ? z[j] : m;
  double s = 0.0;
  for (int64_t j = 0; j < n; j++) {
    float e = expf(z[j] - m);
    o[j] = e;
    s += e;
  }
  float inv = (float)(1.0 / s);
  for (int64_t j = 0; j < n; j++) o[j] *= inv;
}

/* Root t of e^t + μ t = c (t = log u), by Newton. The function is convex and increasing, so
 * Newton from a point right of the root descends monotonically; hi is such a point
 * (at c/μ the residual is e^{c/μ} > 0; at max(0, log c) it is >= 0). A warm start t0 left of
 * the root overshoots once and is clamped back to hi. */
static double solve_exp_linear(double c, double mu, double t0) {
  double hi = c / mu;
  if (c > 0) {
    double l = c >= 1.0 ? log(c) : 0.0;
    if (l < hi) hi = l;
  }
  double t = t0 <= hi ? t0 : hi; /* also replaces a NaN t0 */
  for (int it = 0; it < 200; it++) {
    double e = exp(t);
    double tn = t - (e + mu * t - c) / (e + mu);
    if (tn > hi) tn = hi;
    if (fabs(tn - t) <= 1e-15 * (1.0 + fabs(t))) return tn;
    t = tn;
  }
  return t;
}

/* prox of μ(Σ u log u + ι_Δ) at the row v: u_j + μ log u_j = v_j − μ − ν with ν chosen so that
 * Σ u = 1. Σ u(ν) is convex and decreasing in ν; Newton from ν0 = max v − μ − 1 (where the
 * largest entry alone is 1, so the sum is >= 1) increases ν monotonically to the root.
 * buf holds 2n doubles; o may alias v. */
static void softmax_prox_row(float *o, const float *v, int64_t n, double mu, double *buf) {
  double *vv = buf, *t = buf + n, vmax = -INFINITY;
  for (int64_t j = 0; j < n; j++) {
    vv[j] = v[j];
    t[j] = NAN;
    if (vv[j] > vmax) vmax = vv[j];
  }
  if (!isfinite(vmax)) {
    for (int64_t j = 0; j < n; j++) o[j] = NAN;
    return;
  }
  /* The prox is the same for v and v + c·1 (the multiplier ν takes up c), so the largest entry
   * is taken out first: with it left in, vv − μ − ν cancels to garbage once |v| dwarfs μ
   * (v = (3e38, 1, 0), μ = 1 gave (0.567, 0, 0)). */
  for (int64_t j = 0; j < n; j++) vv[j] -= vmax;
  double nu = -mu - 1.0;
  for (int it = 0; it < 100; it++) {
    double f = -1.0, df = 0.0;
    for (int64_t j = 0; j < n; j++) {
      t[j] = solve_exp_linear(vv[j] - mu - nu, mu, t[j]);
      double u = exp(t[j]);
      f += u;
      df -= u / (u + mu);
    }
    if (fabs(f) <= 1e-13 || df == 0.0) break;
    double step = -f / df;
    nu += step;
    if (fabs(step) <= 1e-15 * (1.0 + fabs(nu))) break;
  }
  for (int64_t j = 0; j < n; j++) o[j] = (float)exp(t[j]);
}

/* Euclidean projection of the row v onto the simplex (Michelot's method: the threshold θ of
 * the active set grows monotonically and the set shrinks until it is stable). o may alias v. */
static void simplex_row(float *o, const float *v, int64_t n) {
  if (n == 0) return;
  double s = 0.0;
  for (int64_t j = 0; j < n; j++) s += v[j];
  double theta = (s - 1.0) / (double)n;
  int64_t count = n;
  for (int64_t pass = 0; pass <= n; pass++) {
    double s2 = 0.0;
    int64_t c2 = 0;
    for (int64_t j = 0; j < n; j++)
      if (v[j] > theta) {
        s2 += v[j];
        c2++;
      }
    if (c2 == 0) break; /* only for NaN input */
    theta = (s2 - 1.0) / (double)c2;
    if (c2 == count) break;
    count = c2;
  }
  for (int64_t j = 0; j < n; j++) {
    double x = v[j] - theta;
    o[j] = (float)(x > 0.0 ? x : 0.0);
  }
}

/* ---- operands ---- */

/* Inputs as contiguous float arrays of one shape, and the output either written in place
 * (contiguous destination) or through a contiguous buffer copied back at the end. An input
 * that is a view into the destination's storage at another offset is copied first, so
 * overlapping operands cannot feed a loop its own results. */
typedef struct {
  const float *in[3];
  float *out;
  blua_tensor *hold[3];
  blua_tensor *buffer, *dst;
  int64_t n, rows, cols;
} operands;

static int begin(operands *o, blua_tensor *dst, int nin, const blua_tensor *const *in, const char *const *names,
                 blua_err *err) {
  memset(o, 0, sizeof *o);
  const blua_tensor *ref = dst ? dst : in[0];
  for (int k = 0; k < nin; k++)
    if (!blua_tensor_same_shape(ref, in[k])) {
      char s1[48], s2[48];
      return blua_fail(err, "size mismatch: %s %s, %s %s", dst ? "out" : names[0], blua_tensor_shape(ref, s1, sizeof s1),
                       names[k], blua_tensor_shape(in[k], s2, sizeof s2));
    }
  o->n = blua_tensor_nelement(ref);
  o->rows = blua_tensor_rows(ref);
  o->cols = blua_tensor_cols(ref);
  for (int k = 0; k < nin; k++) {
    blua_tensor *t = (blua_tensor *)in[k];
    int overlaps = dst && t->storage == dst->storage && t->offset != dst->offset;
    o->hold[k] = overlaps || !blua_tensor_is_contiguous(t) ? blua_tensor_clone(t, err) : (blua_tensor_retain(t), t);
    if (!o->hold[k]) goto fail;
    o->in[k] = blua_tensor_data(o->hold[k]);
  }
  if (dst) {
    o->dst = dst;
    if (!blua_tensor_is_contiguous(dst)) {
      o->buffer = blua_tensor_empty_like(dst, err);
      if (!o->buffer) goto fail;
    }
    o->out = blua_tensor_data(o->buffer ? o->buffer : dst);
  }
  return BLUA_OK;
fail:
  for (int k = 0; k < 3; k++) blua_tensor_release(o->hold[k]);
  return BLUA_ERROR;
}

static int finish(operands *o, int status, blua_err *err) {
  if (status == BLUA_OK && o->buffer) status = blua_tensor_copy(o->dst, o->buffer, err);
  blua_tensor_release(o->buffer);
  for (int k = 0; k < 3; k++) blua_tensor_release(o->hold[k]);
  return status;
}

static int check_act(const blua_act *act, blua_err *err) {
  if (!act || (unsigned)act->kind >= BLUA_ACT_NKINDS) return blua_fail(err, "bad activation: not initialised");
  return BLUA_OK;
}

static int check_mu(double mu, blua_err *err) {
  if (!(mu > 0.0 && isfinite(mu))) return blua_fail(err, "bad step: mu must be positive and finite, got %g", mu);
  return BLUA_OK;
}

/* Per-row work with a scratch buffer of 2 cols doubles per thread (softmax prox). */
#define ROWS_WITH_BUFFER(o, ...)                                                         \
  do {                                                                                   \
    int nomem_ = 0;                                                                      \
    int64_t rows_ = (o).rows, cols_ = (o).cols, n_ = (o).n;                              \
    BLUA_PAR(n_ > BLUA_OMP_THRESHOLD, "omp parallel reduction(| : nomem_)", {           \
      double *buf = malloc((size_t)(2 * cols_ + 2) * sizeof *buf);                       \
      if (!buf) nomem_ = 1;                                                              \
      _Pragma("omp for schedule(static)")                                                \
      for (int64_t i = 0; i < rows_; i++)                                                \
        if (buf) { __VA_ARGS__; }                                                        \
      free(buf);                                                                         \
    });                                                                                  \
    if (nomem_) status = blua_fail(err, "out of memory: scratch rows of %lld entries", (long long)cols_); \
  } while (0)

/* ---- kernels ---- */

int blua_act_forward(const blua_act *act, blua_tensor *out, const blua_tensor *z, blua_err *err) {
  if (check_act(act, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[1] = {z};
  const char *names[1] = {"z"};
  if (begin(&o, out, 1, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0];
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  if (act->kind == BLUA_ACT_SOFTMAX) {
    int64_t rows = o.rows, cols = o.cols;
    BLUA_PAR(n > BLUA_OMP_THRESHOLD, "omp parallel for schedule(static)",
    for (int64_t i = 0; i < rows; i++) softmax_row(r + i * cols, x + i * cols, cols));
  } else if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_BLOCKS(n, smooth_forward_block(kind, x + i, r + i, len));
  } else {
#define LOOP(K) PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = fwd1(K, a, b, x[i]))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, BLUA_OK, err);
}

int blua_act_prox(const blua_act *act, blua_tensor *out, const blua_tensor *v, double mu, blua_err *err) {
  if (check_act(act, err) || check_mu(mu, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[1] = {v};
  const char *names[1] = {"v"};
  if (begin(&o, out, 1, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0];
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  int status = BLUA_OK;
  const prox_consts p = prox_setup(act, mu);
  if (act->kind == BLUA_ACT_SOFTMAX) {
    ROWS_WITH_BUFFER(o, softmax_prox_row(r + i * cols_, x + i * cols_, cols_, mu, buf));
  } else if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_BLOCKS(n, smooth_prox_block(kind, mu, x + i, r + i, len));
  } else {
#define LOOP(K) PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = prox1(K, a, b, p, x[i]))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, status, err);
}

int blua_act_project(const blua_act *act, blua_tensor *out, const blua_tensor *v, blua_err *err) {
  if (check_act(act, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[1] = {v};
  const char *names[1] = {"v"};
  if (begin(&o, out, 1, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0];
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  if (act->kind == BLUA_ACT_SOFTMAX) {
    int64_t rows = o.rows, cols = o.cols;
    BLUA_PAR(n > BLUA_OMP_THRESHOLD, "omp parallel for schedule(static)",
    for (int64_t i = 0; i < rows; i++) simplex_row(r + i * cols, x + i * cols, cols));
  } else {
#define LOOP(K) PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = project1(K, a, b, x[i]))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, BLUA_OK, err);
}

int blua_act_linear_mask(const blua_act *act, blua_tensor *out, const blua_tensor *z, blua_err *err) {
  if (check_act(act, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[1] = {z};
  const char *names[1] = {"z"};
  if (begin(&o, out, 1, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0];
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  if (act->kind == BLUA_ACT_SOFTMAX) {
    memset(r, 0, (size_t)n * sizeof *r);
  } else {
#define LOOP(K) PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = mask1(K, a, b, x[i]))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, BLUA_OK, err);
}

int blua_act_derivative(const blua_act *act, blua_tensor *out, const blua_tensor *z, blua_err *err) {
  if (check_act(act, err)) return BLUA_ERROR;
  if (act->kind == BLUA_ACT_SOFTMAX)
    return blua_fail(err, "not elementwise: the softmax derivative is a Jacobian per row (use bregman_grad, "
                          "softmax(z) - y, for a softmax output)");
  operands o;
  const blua_tensor *in[1] = {z};
  const char *names[1] = {"z"};
  if (begin(&o, out, 1, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0];
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_BLOCKS(n, smooth_deriv_block(kind, x + i, r + i, len));
  } else {
#define LOOP(K) PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = deriv1(K, a, b, x[i]))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, BLUA_OK, err);
}

/* d = d σ'(z) on a block of up to SMOOTH_BLOCK entries. */
static void smooth_deriv_mul_block(blua_act_kind kind, const float *z, const float *d, float *out, int64_t n) {
  float slope[SMOOTH_BLOCK];
  smooth_deriv_block(kind, z, slope, n);
  for (int64_t k = 0; k < n; k++) out[k] = d[k] * slope[k];
}

int blua_act_derivative_mul(const blua_act *act, blua_tensor *d, const blua_tensor *z, blua_err *err) {
  if (check_act(act, err)) return BLUA_ERROR;
  if (act->kind == BLUA_ACT_SOFTMAX)
    return blua_fail(err, "not elementwise: the softmax derivative is a Jacobian per row (use bregman_grad, "
                          "softmax(z) - y, for a softmax output)");
  operands o;
  const blua_tensor *in[2] = {z, d};
  const char *names[2] = {"z", "d"};
  if (begin(&o, d, 2, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0], *dd = o.in[1];
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_BLOCKS(n, smooth_deriv_mul_block(kind, x + i, dd + i, r + i, len));
  } else {
#define LOOP(K) PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = dd[i] * deriv1(K, a, b, x[i]))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, BLUA_OK, err);
}

int blua_act_bregman_grad(const blua_act *act, blua_tensor *out, const blua_tensor *y, const blua_tensor *z,
                          blua_err *err) {
  if (check_act(act, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[2] = {y, z};
  const char *names[2] = {"y", "z"};
  if (begin(&o, out, 2, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *yy = o.in[0], *x = o.in[1];
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  if (act->kind == BLUA_ACT_SOFTMAX) {
    int64_t rows = o.rows, cols = o.cols;
    BLUA_PAR(n > BLUA_OMP_THRESHOLD, "omp parallel for schedule(static)",
    for (int64_t i = 0; i < rows; i++) {
      /* softmax_row reads z[j] before writing r[j], and y[j] is read after: aliasing is fine
       * as long as r is not y, so keep y's row values first when it is. */
      float *ri = r + i * cols;
      const float *yi = yy + i * cols;
      if (ri == yi) {
        for (int64_t j = 0; j < cols; j++) ri[j] = -yi[j];
        float m = -INFINITY;
        const float *zi = x + i * cols;
        for (int64_t j = 0; j < cols; j++) m = zi[j] > m ? zi[j] : m;
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++) s += expf(zi[j] - m);
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < cols; j++) ri[j] += expf(zi[j] - m) * inv;
      } else {
        softmax_row(ri, x + i * cols, cols);
        for (int64_t j = 0; j < cols; j++) ri[j] -= yi[j];
      }
    });
  } else if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_BLOCKS(n, smooth_grad_block(kind, yy + i, x + i, r + i, len));
  } else {
#define LOOP(K) PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = fwd1(K, a, b, x[i]) - yy[i])
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, BLUA_OK, err);
}

int blua_act_xstep_bregman(const blua_act *act, blua_tensor *xt, const blua_tensor *z, const blua_tensor *g,
                           double mu, blua_err *err) {
  if (check_act(act, err) || check_mu(mu, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[3] = {xt, z, g};
  const char *names[3] = {"x", "z", "g"};
  if (begin(&o, xt, 3, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0], *zz = o.in[1], *gg = o.in[2], m = (float)mu;
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  int status = BLUA_OK;
  const prox_consts p = prox_setup(act, mu);
  if (act->kind == BLUA_ACT_SOFTMAX) {
    ROWS_WITH_BUFFER(o, {
      float *ri = r + i * cols_;
      for (int64_t j = 0; j < cols_; j++) {
        int64_t k = i * cols_ + j;
        ri[j] = x[k] + m * (zz[k] - gg[k]);
      }
      softmax_prox_row(ri, ri, cols_, mu, buf);
    });
  } else if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_BLOCKS(n, {
      float vb[SMOOTH_BLOCK];
      for (int64_t j = 0; j < len; j++) vb[j] = x[i + j] + m * (zz[i + j] - gg[i + j]);
      smooth_prox_block(kind, mu, vb, r + i, len);
    });
  } else {
#define LOOP(K) PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = prox1(K, a, b, p, x[i] + m * (zz[i] - gg[i])))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, status, err);
}

static int check_gamma(double gamma, blua_err *err) {
  if (!(gamma >= 0.0 && isfinite(gamma)))
    return blua_fail(err, "bad penalty: gamma must be non-negative and finite, got %g", gamma);
  return BLUA_OK;
}

int blua_act_xstep_lifted(const blua_act *act, blua_tensor *xt, const blua_tensor *z, const blua_tensor *g,
                          double mu, double gamma, blua_err *err) {
  if (check_act(act, err) || check_mu(mu, err) || check_gamma(gamma, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[3] = {xt, z, g};
  const char *names[3] = {"x", "z", "g"};
  if (begin(&o, xt, 3, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0], *zz = o.in[1], *gg = o.in[2], m = (float)mu, gm = (float)gamma;
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  if (act->kind == BLUA_ACT_SOFTMAX) {
    int64_t rows = o.rows, cols = o.cols;
    BLUA_PAR(n > BLUA_OMP_THRESHOLD, "omp parallel for schedule(static)",
    for (int64_t i = 0; i < rows; i++) {
      float *ri = r + i * cols;
      for (int64_t j = 0; j < cols; j++) {
        int64_t k = i * cols + j;
        ri[j] = x[k] - m * (gm * (x[k] - zz[k]) + gg[k]);
      }
      simplex_row(ri, ri, cols);
    });
  } else {
#define LOOP(K) \
  PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = project1(K, a, b, x[i] - m * (gm * (x[i] - zz[i]) + gg[i])))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, BLUA_OK, err);
}

/* The X-steps with an L1 term (blua/prox_l1.h): the point of the plain X-step, the L1 term's
 * transformation T with threshold μα, then the prox or the projection, in one pass. */
static int check_l1(const blua_act *act, double mu, double alpha, l1_rule *rule, blua_err *err) {
  if (!(alpha >= 0.0 && isfinite(alpha)))
    return blua_fail(err, "bad penalty: the L1 weight must be non-negative and finite, got %g", alpha);
  if (l1_rule_of(act, rule)) return blua_fail(err, "bad penalty: softmax takes no L1 penalty (an output layer)");
  if (!isfinite(mu * alpha)) return blua_fail(err, "bad penalty: the L1 threshold mu alpha = %g is not finite", mu * alpha);
  return BLUA_OK;
}

int blua_act_xstep_bregman_l1(const blua_act *act, blua_tensor *xt, const blua_tensor *z, const blua_tensor *g,
                              double mu, double alpha, blua_err *err) {
  l1_rule rule;
  if (check_act(act, err) || check_mu(mu, err) || check_l1(act, mu, alpha, &rule, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[3] = {xt, z, g};
  const char *names[3] = {"x", "z", "g"};
  if (begin(&o, xt, 3, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0], *zz = o.in[1], *gg = o.in[2], m = (float)mu, t = (float)(mu * alpha);
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
  const prox_consts p = prox_setup(act, mu);
  if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_BLOCKS(n, {
      float vb[SMOOTH_BLOCK];
      for (int64_t j = 0; j < len; j++) vb[j] = l1_apply(rule, t, x[i + j] + m * (zz[i + j] - gg[i + j]));
      smooth_prox_block(kind, mu, vb, r + i, len);
    });
  } else {
#define LOOP(K) \
  PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = prox1(K, a, b, p, l1_apply(rule, t, x[i] + m * (zz[i] - gg[i]))))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  return finish(&o, BLUA_OK, err);
}

int blua_act_xstep_lifted_l1(const blua_act *act, blua_tensor *xt, const blua_tensor *z, const blua_tensor *g,
                             double mu, double gamma, double alpha, blua_err *err) {
  l1_rule rule;
  if (check_act(act, err) || check_mu(mu, err) || check_gamma(gamma, err) || check_l1(act, mu, alpha, &rule, err))
    return BLUA_ERROR;
  operands o;
  const blua_tensor *in[3] = {xt, z, g};
  const char *names[3] = {"x", "z", "g"};
  if (begin(&o, xt, 3, in, names, err)) return BLUA_ERROR;
  const float a = act->a, b = act->b, *x = o.in[0], *zz = o.in[1], *gg = o.in[2], m = (float)mu, gm = (float)gamma,
              t = (float)(mu * alpha);
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(act->kind, n);
#define LOOP(K)                                                                                                   \
  PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = project1(K, a, b, l1_apply(rule, t, x[i] - m * (gm * (x[i] - zz[i]) + gg[i]))))
  DISPATCH(act->kind, LOOP)
#undef LOOP
  return finish(&o, BLUA_OK, err);
}

int blua_xstep_bregman_point(blua_tensor *out, const blua_tensor *xt, const blua_tensor *z, const blua_tensor *g,
                             double mu, blua_err *err) {
  if (check_mu(mu, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[3] = {xt, z, g};
  const char *names[3] = {"x", "z", "g"};
  if (begin(&o, out, 3, in, names, err)) return BLUA_ERROR;
  const float *x = o.in[0], *zz = o.in[1], *gg = o.in[2], m = (float)mu;
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(BLUA_ACT_IDENTITY, n);
  PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = x[i] + m * (zz[i] - gg[i]));
  return finish(&o, BLUA_OK, err);
}

int blua_xstep_lifted_point(blua_tensor *out, const blua_tensor *xt, const blua_tensor *z, const blua_tensor *g,
                            double mu, double gamma, blua_err *err) {
  if (check_mu(mu, err) || check_gamma(gamma, err)) return BLUA_ERROR;
  operands o;
  const blua_tensor *in[3] = {xt, z, g};
  const char *names[3] = {"x", "z", "g"};
  if (begin(&o, out, 3, in, names, err)) return BLUA_ERROR;
  const float *x = o.in[0], *zz = o.in[1], *gg = o.in[2], m = (float)mu, gm = (float)gamma;
  float *r = o.out;
  int64_t n = o.n;
  const int64_t chunk = chunk_of(BLUA_ACT_IDENTITY, n);
  PAR_FOR(for (int64_t i = 0; i < n; i++) r[i] = x[i] - m * (gm * (x[i] - zz[i]) + gg[i]));
  return finish(&o, BLUA_OK, err);
}

/* ---- prox of μΦ from evaluations of σ (reverse communication) ---- */

enum { NEED_LO, NEED_HI, NEED_LO_HAVE_HI, BRACKETED, DONE };

struct blua_prox_solver {
  blua_tensor *v, *u, *z; /* v (contiguous), the result, the current trial points */
  float *lo, *hi, *flo, *fhi;
  signed char *side;      /* Illinois: which end moved last (-1 lo, +1 hi, 0 none) */
  unsigned char *state;
  double mu;
  int64_t n, remaining;
  int iter;
};

void blua_prox_solver_free(blua_prox_solver *ps) {
  if (!ps) return;
  blua_tensor_release(ps->v);
  blua_tensor_release(ps->u);
  blua_tensor_release(ps->z);
  free(ps->lo);
  free(ps->state);
  free(ps);
}

blua_prox_solver *blua_prox_solver_new(const blua_tensor *v, const blua_tensor *s0, double mu, blua_err *err) {
  if (check_mu(mu, err)) return NULL;
  if (!blua_tensor_same_shape(v, s0)) {
    char s1[48], s2[48];
    blua_fail(err, "size mismatch: v %s, sigma(0) %s", blua_tensor_shape(v, s1, sizeof s1),
              blua_tensor_shape(s0, s2, sizeof s2));
    return NULL;
  }
  blua_prox_solver *ps = calloc(1, sizeof *ps);
  if (!ps) {
    blua_fail(err, "out of memory: prox solver");
    return NULL;
  }
  int64_t n = blua_tensor_nelement(v);
  ps->mu = mu;
  ps->n = ps->remaining = n;
  blua_tensor *s0c = blua_tensor_contiguous((blua_tensor *)s0, err);
  ps->v = blua_tensor_clone(v, err);
  ps->u = blua_tensor_empty_like(v, err);
  ps->z = blua_tensor_empty_like(v, err);
  ps->lo = malloc((size_t)(4 * n + 1) * sizeof(float));
  ps->state = malloc((size_t)(2 * n + 1));
  if (!s0c || !ps->v || !ps->u || !ps->z || !ps->lo || !ps->state) {
    if (s0c && ps->v && ps->u && ps->z) blua_fail(err, "out of memory: prox solver of %lld entries", (long long)n);
    blua_tensor_release(s0c);
    blua_prox_solver_free(ps);
    return NULL;
  }
  ps->hi = ps->lo + n;
  ps->flo = ps->hi + n;
  ps->fhi = ps->flo + n;
  ps->side = (signed char *)ps->state + n;
  const float *vv = blua_tensor_data(ps->v), *s = blua_tensor_data(s0c);
  float *z = blua_tensor_data(ps->z), *u = blua_tensor_data(ps->u);
  int64_t remaining = 0;
  for (int64_t j = 0; j < n; j++) {
    double w = (double)vv[j] - s[j];
    ps->side[j] = 0;
    if (!isfinite(w)) {
      ps->state[j] = DONE;
      u[j] = z[j] = NAN;
      continue;
    }
    double a = w / (1.0 + mu), b = w / mu;
    double lo = w < 0 ? b : a, hi = w < 0 ? a : b;
    /* Round outwards so the float bracket contains the exact one. */
    ps->lo[j] = nextafterf((float)lo, -INFINITY);
    ps->hi[j] = nextafterf((float)hi, INFINITY);
    if (!isfinite(ps->lo[j])) ps->lo[j] = -FLT_MAX;
    if (!isfinite(ps->hi[j])) ps->hi[j] = FLT_MAX;
    z[j] = ps->lo[j];
    u[j] = NAN;
    ps->state[j] = NEED_LO;
    remaining++;
  }
  ps->remaining = remaining;
  blua_tensor_release(s0c);
  return ps;
}

blua_tensor *blua_prox_solver_trial(blua_prox_solver *ps, blua_err *err) { return blua_tensor_clone(ps->z, err); }

blua_tensor *blua_prox_solver_result(blua_prox_solver *ps) {
  blua_tensor_retain(ps->u);
  return ps->u;
}

int blua_prox_solver_iterations(const blua_prox_solver *ps) { return ps->iter; }

/* Moves an end of the bracket away from z by at least twice the current width. */
static float widen(float z, float width, int up) {
  float d = width > 1e-3f * (1.0f + fabsf(z)) ? width : 1e-3f * (1.0f + fabsf(z));
  float r = up ? z + 2.0f * d : z - 2.0f * d;
  return isfinite(r) ? r : (up ? FLT_MAX : -FLT_MAX);
}

int blua_prox_solver_update(blua_prox_solver *ps, const blua_tensor *st, int64_t *remaining, blua_err *err) {
  if (!blua_tensor_same_shape(ps->v, st)) {
    char s1[48], s2[48];
    return blua_fail(err, "size mismatch: sigma(z) is %s for z of %s", blua_tensor_shape(st, s1, sizeof s1),
                     blua_tensor_shape(ps->v, s2, sizeof s2));
  }
  blua_tensor *sc = blua_tensor_contiguous((blua_tensor *)st, err);
  if (!sc) return BLUA_ERROR;
  const float *s = blua_tensor_data(sc), *v = blua_tensor_data(ps->v);
  float *z = blua_tensor_data(ps->z), *u = blua_tensor_data(ps->u);
  float *lo = ps->lo, *hi = ps->hi, *flo = ps->flo, *fhi = ps->fhi;
  signed char *side = ps->side;
  unsigned char *state = ps->state;
  const double mu = ps->mu;
  const int64_t n = ps->n;
  const int bisect = ps->iter % 3 == 2;
  int64_t left = 0;
  ps->iter++;
  BLUA_PAR(n > BLUA_OMP_THRESHOLD, "omp parallel for schedule(static) reduction(+ : left)",
  for (int64_t j = 0; j < n; j++) {
    if (state[j] == DONE) continue;
    float zj = z[j];
    double f = mu * zj + s[j] - v[j];
    u[j] = s[j];
    if (!(fabs(f) > 1e-6 * (1.0 + fabs(v[j])))) { /* converged, or NaN from σ */
      state[j] = DONE;
      continue;
    }
    float width = hi[j] - lo[j];
    switch (state[j]) {
      case NEED_LO:
      case NEED_LO_HAVE_HI:
        if (f < 0) {
          lo[j] = zj;
          flo[j] = (float)f;
          state[j] = state[j] == NEED_LO ? NEED_HI : BRACKETED;
        } else { /* rounding left the root below lo: lo becomes hi, look further down */
          hi[j] = zj;
          fhi[j] = (float)f;
          lo[j] = widen(zj, width, 0);
          state[j] = NEED_LO_HAVE_HI;
        }
        break;
      case NEED_HI:
        if (f > 0) {
          hi[j] = zj;
          fhi[j] = (float)f;
          state[j] = BRACKETED;
        } else {
          lo[j] = zj;
          flo[j] = (float)f;
          hi[j] = widen(zj, width, 1);
        }
        break;
      default: /* BRACKETED: Illinois, halving the stale end's value when one end sticks */
        if (f > 0) {
          hi[j] = zj;
          fhi[j] = (float)f;
          if (side[j] == 1) flo[j] *= 0.5f;
          side[j] = 1;
        } else {
          lo[j] = zj;
          flo[j] = (float)f;
          if (side[j] == -1) fhi[j] *= 0.5f;
          side[j] = -1;
        }
        break;
    }
    float next;
    if (state[j] == NEED_LO || state[j] == NEED_LO_HAVE_HI) {
      next = lo[j];
    } else if (state[j] == NEED_HI) {
      next = hi[j];
    } else {
      double l = lo[j], h = hi[j], fl = flo[j], fh = fhi[j];
      double c = bisect ? 0.5 * (l + h) : (l * fh - h * fl) / (fh - fl);
      next = (float)c;
      if (!(next > lo[j] && next < hi[j])) next = (float)(0.5 * (l + h));
      if (!(next > lo[j] && next < hi[j])) { /* the bracket is two adjacent floats */
        state[j] = DONE;
        continue;
      }
    }
    z[j] = next;
    left++;
  });
  blua_tensor_release(sc);
  ps->remaining = left;
  *remaining = left;
  return BLUA_OK;
}
