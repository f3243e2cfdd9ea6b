/* Elementwise maps and statistics on tensors (runtime/tensor_math.c): the trigonometric and
 * remainder maps, atan2 and lerp with a second tensor, running products, distances, renorm and
 * the order statistics (median, kthvalue, mode) along a dimension. Any view works (transposed,
 * narrowed, permuted). Dimensions and ranks are 0-based here; the Lua methods add 1. The core
 * never aborts: bad input gives BLUA_ERROR and a message in err. */
#ifndef BLUA_TENSOR_MATH_H
#define BLUA_TENSOR_MATH_H

#include "blua/error.h"
#include "blua/tensor.h"

typedef enum {
  /* x -> f(x), each computed in double by libm and rounded to float */
  BLUA_MATH_SIN,
  BLUA_MATH_COS,
  BLUA_MATH_TAN,
  BLUA_MATH_ASIN, /* NaN outside [-1, 1] */
  BLUA_MATH_ACOS,
  BLUA_MATH_ATAN,
  BLUA_MATH_SINH,
  BLUA_MATH_COSH,
  BLUA_MATH_FRAC, /* x - trunc(x): the sign of x; NaN for ±inf */
  BLUA_MATH_CINV, /* 1 / x: ±inf at ±0 */
  /* with the scalar a */
  BLUA_MATH_FMOD,      /* fmod(x, a): the sign of x (C's fmod); NaN when a = 0 */
  BLUA_MATH_REMAINDER, /* x - a floor(x / a) taken exactly: the sign of a (Lua's x % a); NaN when a = 0 */
  BLUA_MATH_COUNT
} blua_math_op;

/* t = op(t, a) entry by entry, in place (a is ignored by the unary ops). BLUA_ERROR for an
 * unknown op. Above BLUA_OMP_THRESHOLD entries the work goes to the OpenMP threads. */
int blua_tensor_math_map(blua_tensor *t, blua_math_op op, float a, blua_err *err);

/* t = atan2(t, u) (t the y, u the x, as C's atan2(y, x)), in double rounded to float, in place.
 * u has t's shape; it may be t itself but must not otherwise share memory with t. */
int blua_tensor_atan2(blua_tensor *t, const blua_tensor *u, blua_err *err);
/* t = t + w (u - t) in double rounded to float, in place; u as for atan2. */
int blua_tensor_lerp(blua_tensor *t, const blua_tensor *u, double w, blua_err *err);

/* The p-norm of t - u (same shapes), the differences taken in double, into *result: for p = 1
 * Σ|d|, p = 2 sqrt(Σ d²), p = 0 the count of non-zero differences (a NaN counts), p = +inf
 * max |d| (NaN if any difference is NaN), any other p > 0 (Σ|d|^p)^(1/p); the entries are
 * summed in row-major order. p must not be negative or NaN. No entries give 0. */
int blua_tensor_dist(const blua_tensor *t, const blua_tensor *u, double p, double *result, blua_err *err);

/* Torch7's renorm, in place: each slice of t at an index of dimension d (t has at least 2
 * dimensions) whose p-norm (p > 0, +inf for the largest magnitude) is above maxnorm (>= 0) is
 * scaled by maxnorm / (norm + 1e-7) in double; the others are left as they are. */
int blua_tensor_renorm(blua_tensor *t, double p, int d, double maxnorm, blua_err *err);

/* Order statistics of each line of t along d into vals and idx (t's shape with size 1 at d;
 * idx gets 1-based positions along d). The lines are ordered as blua_tensor_sort orders them:
 * ascending, NaN after every number, equal values by position.
 * kthvalue: the entry of rank k (0-based, k < size of d) in that order.
 * median: rank (n - 1) / 2 of n entries, the lower of the two middle ones when n is even.
 * mode: the most frequent value (all NaNs count as one value), the smallest of those equally
 * frequent; its index is the last position holding it.
 * An empty dimension d is an error. */
int blua_tensor_kthvalue(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int64_t k, int d, blua_err *err);
int blua_tensor_median(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int d, blua_err *err);
int blua_tensor_mode(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int d, blua_err *err);

#endif
