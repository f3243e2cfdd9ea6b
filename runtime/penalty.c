/* Energies of the proximal activations: Σ Ψ, Σ Φ*, Σ B_Ψ and the quadratic penalty.
 * Every sum is accumulated in double; the Bregman penalty is written per kind as a sum of
 * non-negative terms so that B(σ(z), z) comes out as (nearly) 0 instead of the difference of
 * two large numbers. */
#include <math.h>

#include "blua/penalty.h"
#include "act_kernels.h"
#include "ordered_sum.h"
#include "vmath.h"



/* Every sum is an ordered sum of blocks (ordered_sum.h), so an energy does not depend on the
 * thread count. Within a block, simd lets the compiler vectorise the piecewise-linear kinds
 * (written for it, see pos/neg below); row sums stay scalar. */
#define PAR (n > BLUA_OMP_THRESHOLD)
_Static_assert(ORDERED_SUM_BLOCK % SMOOTH_BLOCK == 0, "smooth blocks must not straddle the sum's blocks");
#define ELEMENT_SUM(acc, TERM) \
  ORDERED_SUM(acc, n, PAR, _Pragma("omp simd reduction(+ : bsum)") for (int64_t i = lo; i < hi; i++) bsum += TERM)

/* x log x (0 at 0), with the vectorisable log of vmath.h; the argument of vm_log is kept
 * positive so that entries the select discards compute nothing odd. */
INLINE double xlogx(double x) {
  double l = vm_log(x > 0.0 ? x : 1.0);
  return x > 0.0 ? x * l : 0.0;
}

/* softplus(w) = log(1 + e^w) and softplus(−w) from one exp and one log1p, without overflow. */
INLINE void softplus2(double w, double *pos, double *neg) {
  double l = vm_log1p(vm_exp(-fabs(w)));
  *pos = (w > 0.0 ? w : 0.0) + l;
  *neg = (w < 0.0 ? -w : 0.0) + l;
}

/* KL(Bernoulli(a) ‖ Bernoulli(σ(z))) for a in [0, 1], b = 1 − a, in float with the float exp and
 * log of vmath.h (the energies are a third of their cost in double). With e = e^{−|z|} and
 * c = 1 + e, 1/σ(z) and 1/(1 − σ(z)) are c and c e^{|z|} (z >= 0) or the other way round, so
 *   KL = a log(a c) + b log(b c) + (z >= 0 ? b : a) |z|,
 * where each log is of a product near 1 when a is near σ(z): the terms are small there instead
 * of cancelling, and the error is a few float roundings of a number of size 1 per entry (the
 * sums stay in double). */
INLINE double kl_bernoulli(float a, float b, float z, float scale) { /* at scale z */
  float az = __builtin_fabsf(z), c = 1.0f + vmf_exp(-scale * az);
  float la = vmf_log(a > 0.0f ? a * c : 1.0f), lb = vmf_log(b > 0.0f ? b * c : 1.0f);
  float logs = (a > 0.0f ? a * la : 0.0f) + (b > 0.0f ? b * lb : 0.0f);
  return (double)logs + (double)(z >= 0.0f ? b : a) * ((double)scale * az); /* (no overflow) */
}

/* Positive and negative parts, exact in double for float inputs. The piecewise kinds below
 * are written with them (and with conditionals that only choose between constants): GCC
 * if-converts, and so vectorises, a reduction loop only in that form. Entries off the
 * domain, NaN included, give +INFINITY. */
INLINE double pos(double x) { return 0.5 * (x + fabs(x)); }
INLINE double neg(double x) { return 0.5 * (x - fabs(x)); }

INLINE double psi1(blua_act_kind k, double a, double b, double u) {
  switch (k) {
    case BLUA_ACT_RELU: return u >= 0.0 ? 0.0 : INFINITY;
    case BLUA_ACT_LEAKY_RELU: { double un = neg(u); return 0.5 * (1.0 / a - 1.0) * un * un; }
    case BLUA_ACT_CLIP: return u >= a && u <= b ? 0.0 : INFINITY;
    case BLUA_ACT_SOFT_THRESHOLD: return a * fabs(u);
    case BLUA_ACT_SIGMOID: return u >= 0.0 && u <= 1.0 ? xlogx(u) + xlogx(1.0 - u) - 0.5 * u * u : INFINITY;
    case BLUA_ACT_TANH:
      return fabs(u) <= 1.0 ? 0.5 * (xlogx(1.0 + u) + xlogx(1.0 - u)) - 0.5 * u * u : INFINITY;
    default: return 0.0;
  }
}

INLINE double conj1(blua_act_kind k, double a, double b, double z) {
  switch (k) {
    case BLUA_ACT_RELU: { double zp = pos(z); return 0.5 * zp * zp; }
    case BLUA_ACT_LEAKY_RELU: { double zp = pos(z), zn = neg(z); return 0.5 * (zp * zp + a * zn * zn); }
    case BLUA_ACT_CLIP: { /* sup over [lo, hi] of z u − u²/2, attained at the clip c */
      double c = z < a ? a : (z > b ? b : z);
      return z * c - 0.5 * c * c;
    }
    case BLUA_ACT_SOFT_THRESHOLD: { double s = pos(fabs(z) - a); return 0.5 * s * s; }
    case BLUA_ACT_SIGMOID: { double sp, sn; softplus2(z, &sp, &sn); return sp; }
    case BLUA_ACT_TANH: return fabs(z) + vm_log1p(vm_exp(-2.0 * fabs(z))) - 0.69314718055994530942; /* log cosh z */
    default: return 0.5 * z * z;
  }
}

/* B_Ψ(y, z) = Φ(y) + Φ*(z) − yz, per kind, as a sum of non-negative pieces. */
INLINE double bregman1(blua_act_kind k, double a, double b, double y, double z) {
  switch (k) {
    case BLUA_ACT_RELU: { /* ½(y − z⁺)² − y z⁻ */
      double zp = pos(z), off = y >= 0.0 ? 0.0 : INFINITY;
      return 0.5 * (y - zp) * (y - zp) - y * neg(z) + off;
    }
    case BLUA_ACT_LEAKY_RELU: { /* ½(y⁺ − z⁺)² + (y⁻ − a z⁻)²/(2a) − y⁺z⁻ − y⁻z⁺ */
      double yp = pos(y), yn = neg(y), zp = pos(z), zn = neg(z), d = yn - a * zn;
      return 0.5 * (yp - zp) * (yp - zp) + (0.5 / a) * d * d - yp * zn - yn * zp;
    }
    case BLUA_ACT_CLIP: { /* ½(y−z)² − ½(z−c)² = ½(y−c)² + (y−c)(c−z) */
      double c = z < a ? a : (z > b ? b : z), off = y >= a && y <= b ? 0.0 : INFINITY;
      return 0.5 * (y - c) * (y - c) + (y - c) * (c - z) + off;
    }
    case BLUA_ACT_SOFT_THRESHOLD: { /* s = σ(z), r = z − s with |r| <= λ */
      double s = pos(z - a) + neg(z + a), r = z - s;
      return 0.5 * (y - s) * (y - s) + a * fabs(y) - y * r;
    }
    case BLUA_ACT_SIGMOID: /* KL(Bernoulli(y) ‖ Bernoulli(σ(z))) */
      return y >= 0.0 && y <= 1.0 ? kl_bernoulli((float)y, 1.0f - (float)y, (float)z, 1.0f) : INFINITY;
    case BLUA_ACT_TANH: /* the sigmoid penalty at ((1 + y)/2, 2z) */
      return fabs(y) <= 1.0 ? kl_bernoulli(0.5f * (1.0f + (float)y), 0.5f * (1.0f - (float)y), (float)z, 2.0f) : INFINITY;
    default: return 0.5 * (y - z) * (y - z);
  }
}

/* out = Σ TERM over j in [0, n) in L running sums (L a power of two, at most 16), lane k
 * taking the entries j ≡ k (mod L), then folded in halves (lane k + L/2 onto lane k, and so
 * on). The compiler vectorises across the lanes at whatever width the clone has, and the order
 * of the additions is this one on every machine (a simd reduction's partial sums would follow
 * the vector width). */
#define LANE_SUM(out, n, L, TERM)                                                                  \
  do {                                                                                             \
    double l_[16] = {0};                                                                           \
    const int64_t n_ = (n);                                                                        \
    int64_t j0_ = 0;                                                                               \
    for (; j0_ + (L) <= n_; j0_ += (L)) {                                                          \
      _Pragma("omp simd") for (int k_ = 0; k_ < (L); k_++) {                                       \
        const int64_t j = j0_ + k_;                                                                \
        l_[k_] += TERM;                                                                            \
      }                                                                                            \
    }                                                                                              \
    for (int k_ = 0; j0_ + k_ < n_; k_++) {                                                        \
      const int64_t j = j0_ + k_;                                                                  \
      l_[k_] += TERM;                                                                              \
    }                                                                                              \
    for (int w_ = (L) / 2; w_ >= 1; w_ /= 2)                                                       \
      for (int k_ = 0; k_ < w_; k_++) l_[k_] += l_[k_ + w_];                                       \
    (out) = l_[0];                                                                                 \
  } while (0)

/* Σ Ψ, Σ Φ* and Σ B over a block of entries for sigmoid and tanh (see act_kernels.h). */
#define SMOOTH_SUM_BLOCK(name, ARGS, TERM)                                       \
  SMOOTH_CLONES static double name ARGS {                                        \
    double acc = 0.0;                                                            \
    if (kind == BLUA_ACT_SIGMOID) {                                              \
      const blua_act_kind k = BLUA_ACT_SIGMOID;                                  \
      LANE_SUM(acc, n, 16, TERM);                                                \
    } else {                                                                     \
      const blua_act_kind k = BLUA_ACT_TANH;                                     \
      LANE_SUM(acc, n, 16, TERM);                                                \
    }                                                                            \
    return acc;                                                                  \
  }

/* Σ B over a block of entries for the piecewise kinds, compiled for AVX-512 and AVX2 as well
 * (the terms are in double: 8 and 4 of them a vector, against 2 in the baseline). */
SMOOTH_CLONES static double piecewise_bregman_block(blua_act_kind kind, double a, double b, const float *y,
                                                    const float *z, int64_t n) {
  double acc = 0.0;
#define LOOP(K) LANE_SUM(acc, n, 8, bregman1(K, a, b, y[j], z[j]))
  DISPATCH(kind, LOOP)
#undef LOOP
  return acc;
}

SMOOTH_SUM_BLOCK(smooth_psi_block, (blua_act_kind kind, const float *u, int64_t n), psi1(k, 0, 0, u[j]))
SMOOTH_SUM_BLOCK(smooth_conj_block, (blua_act_kind kind, const float *z, int64_t n), conj1(k, 0, 0, z[j]))
SMOOTH_SUM_BLOCK(smooth_bregman_block, (blua_act_kind kind, const float *y, const float *z, int64_t n),
                 bregman1(k, 0, 0, y[j], z[j]))

/* acc += the sum of CALL(i, len) over the SMOOTH_BLOCK blocks of n entries, an ordered sum
 * (ORDERED_SUM_BLOCK is a multiple of SMOOTH_BLOCK). */
#define SMOOTH_SUM(n, acc, CALL)                                          \
  ORDERED_SUM(acc, n, PAR, for (int64_t i = lo; i < hi; i += SMOOTH_BLOCK) { \
    int64_t len = hi - i < SMOOTH_BLOCK ? hi - i : SMOOTH_BLOCK;            \
    bsum += CALL;                                                           \
  })

/* ---- operands ---- */

static int check_act(const blua_act *act, blua_err *err) {
  if (!act || (unsigned)act->kind >= BLUA_ACT_NKINDS) return blua_fail(err, "bad activation: not initialised");
  return BLUA_OK;
}

/* The data of t, contiguous: t itself (retained) or a copy; *hold gets the reference. */
static const float *contiguous_data(const blua_tensor *t, blua_tensor **hold, blua_err *err) {
  *hold = blua_tensor_contiguous((blua_tensor *)t, err);
  return *hold ? blua_tensor_data(*hold) : NULL;
}

static int check_pair(const blua_tensor *y, const blua_tensor *z, blua_err *err) {
  if (blua_tensor_same_shape(y, z)) return BLUA_OK;
  char s1[48], s2[48];
  return blua_fail(err, "size mismatch: y %s, z %s", blua_tensor_shape(y, s1, sizeof s1),
                   blua_tensor_shape(z, s2, sizeof s2));
}

/* Whether a row lies on the simplex (within BLUA_SIMPLEX_TOL for the sum); *sum gets Σ u. */
static int on_simplex(const float *u, int64_t n, double *sum) {
  double s = 0.0;
  int ok = 1;
  for (int64_t j = 0; j < n; j++) {
    if (!(u[j] >= 0.0f)) ok = 0;
    s += u[j];
  }
  *sum = s;
  return ok && fabs(s - 1.0) <= BLUA_SIMPLEX_TOL;
}

/* Max and log Σ e^{z − max} of a row. */
static void logsumexp_row(const float *z, int64_t n, double *m, double *logs) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; j++) mx = z[j] > mx ? z[j] : mx;
  double s = 0.0;
  for (int64_t j = 0; j < n; j++) s += exp((double)z[j] - mx);
  *m = mx;
  *logs = log(s);
}

/* ---- kernels ---- */

int blua_act_psi(const blua_act *act, const blua_tensor *u, double *result, blua_err *err) {
  if (check_act(act, err)) return BLUA_ERROR;
  blua_tensor *hold;
  const float *x = contiguous_data(u, &hold, err);
  if (!x) return BLUA_ERROR;
  const double a = act->a, b = act->b;
  int64_t n = blua_tensor_nelement(u);
  double acc = 0.0;
  if (act->kind == BLUA_ACT_SOFTMAX) {
    int64_t rows = blua_tensor_rows(u), cols = blua_tensor_cols(u);
    ORDERED_SUM(acc, rows, PAR, for (int64_t i = lo; i < hi; i++) {
      const float *r = x + i * cols;
      double s;
      if (!on_simplex(r, cols, &s)) {
        bsum += INFINITY;
        continue;
      }
      double t = 0.0;
      for (int64_t j = 0; j < cols; j++) t += xlogx(r[j]) - 0.5 * (double)r[j] * r[j];
      bsum += t;
    });
  } else if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_SUM(n, acc, smooth_psi_block(kind, x + i, len));
  } else {
#define LOOP(K) ELEMENT_SUM(acc, psi1(K, a, b, x[i]))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  blua_tensor_release(hold);
  *result = acc;
  return BLUA_OK;
}

int blua_act_conj(const blua_act *act, const blua_tensor *z, double *result, blua_err *err) {
  if (check_act(act, err)) return BLUA_ERROR;
  blua_tensor *hold;
  const float *x = contiguous_data(z, &hold, err);
  if (!x) return BLUA_ERROR;
  const double a = act->a, b = act->b;
  int64_t n = blua_tensor_nelement(z);
  double acc = 0.0;
  if (act->kind == BLUA_ACT_SOFTMAX) {
    int64_t rows = blua_tensor_rows(z), cols = blua_tensor_cols(z);
    ORDERED_SUM(acc, rows, PAR, for (int64_t i = lo; i < hi; i++) {
      double m, logs;
      logsumexp_row(x + i * cols, cols, &m, &logs);
      bsum += m + logs;
    });
  } else if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_SUM(n, acc, smooth_conj_block(kind, x + i, len));
  } else {
#define LOOP(K) ELEMENT_SUM(acc, conj1(K, a, b, x[i]))
    DISPATCH(act->kind, LOOP)
#undef LOOP
  }
  blua_tensor_release(hold);
  *result = acc;
  return BLUA_OK;
}

int blua_act_bregman(const blua_act *act, const blua_tensor *y, const blua_tensor *z, double *result,
                     blua_err *err) {
  if (check_act(act, err) || check_pair(y, z, err)) return BLUA_ERROR;
  blua_tensor *hy, *hz;
  const float *yy = contiguous_data(y, &hy, err);
  if (!yy) return BLUA_ERROR;
  const float *x = contiguous_data(z, &hz, err);
  if (!x) {
    blua_tensor_release(hy);
    return BLUA_ERROR;
  }
  const double a = act->a, b = act->b;
  int64_t n = blua_tensor_nelement(z);
  double acc = 0.0;
  if (act->kind == BLUA_ACT_SOFTMAX) {
    /* Σ y log y + logsumexp(z) − ⟨y, z⟩ = Σ_j y_j (log y_j − logsoftmax_j) + lse (1 − Σ y). */
    int64_t rows = blua_tensor_rows(z), cols = blua_tensor_cols(z);
    ORDERED_SUM(acc, rows, PAR, for (int64_t i = lo; i < hi; i++) {
      const float *yi = yy + i * cols, *zi = x + i * cols;
      double s, m, logs;
      if (!on_simplex(yi, cols, &s)) {
        bsum += INFINITY;
        continue;
      }
      logsumexp_row(zi, cols, &m, &logs);
      double t = (m + logs) * (1.0 - s);
      for (int64_t j = 0; j < cols; j++) t += xlogx(yi[j]) - yi[j] * ((double)zi[j] - m - logs);
      bsum += t;
    });
  } else if (is_smooth(act->kind)) {
    const blua_act_kind kind = act->kind;
    SMOOTH_SUM(n, acc, smooth_bregman_block(kind, yy + i, x + i, len));
  } else {
    const blua_act_kind kind = act->kind;
    ORDERED_SUM(acc, n, PAR, bsum += piecewise_bregman_block(kind, a, b, yy + lo, x + lo, hi - lo));
  }
  blua_tensor_release(hy);
  blua_tensor_release(hz);
  *result = acc;
  return BLUA_OK;
}

int blua_quadratic_penalty(const blua_tensor *y, const blua_tensor *z, double gamma, double *result,
                           blua_err *err) {
  if (check_pair(y, z, err)) return BLUA_ERROR;
  if (!(gamma >= 0.0 && isfinite(gamma)))
    return blua_fail(err, "bad penalty: gamma must be non-negative and finite, got %g", gamma);
  blua_tensor *hy, *hz;
  const float *yy = contiguous_data(y, &hy, err);
  if (!yy) return BLUA_ERROR;
  const float *x = contiguous_data(z, &hz, err);
  if (!x) {
    blua_tensor_release(hy);
    return BLUA_ERROR;
  }
  int64_t n = blua_tensor_nelement(y);
  double acc = 0.0;
  ELEMENT_SUM(acc, ((double)yy[i] - x[i]) * ((double)yy[i] - x[i]));
  blua_tensor_release(hy);
  blua_tensor_release(hz);
  *result = 0.5 * gamma * acc;
  return BLUA_OK;
}
