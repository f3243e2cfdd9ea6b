/* Elementwise maps of one tensor in place: t[i] = f(t[i]) for the unary functions and the
 * comparisons and clamps with scalar arguments that the Lua methods t:abs(), t:clamp(lo, hi),
 * t:gt(a), t:cmax(a), ... expose. Any view works. The values written are the bits of the plain
 * C expression of each op evaluated one entry at a time (libm for pow; exp, log, log1p, tanh
 * and sigmoid in double by the project's own routines, then rounded to float: the correctly
 * rounded float but for a handful of the 2^32 floats, and a NaN quietened with its sign and
 * payload kept), whatever the thread count and vector width. */
#ifndef BLUA_TENSOR_MAP_H
#define BLUA_TENSOR_MAP_H

#include "blua/error.h"
#include "blua/tensor.h"

typedef enum {
  /* x -> f(x) */
  BLUA_MAP_ABS,     /* fabsf(x) */
  BLUA_MAP_EXP,     /* e^x */
  BLUA_MAP_LOG,     /* log x: -inf at ±0, NaN below 0 */
  BLUA_MAP_SQRT,    /* sqrtf(x) */
  BLUA_MAP_TANH,    /* tanh x */
  BLUA_MAP_SIGMOID, /* 1 / (1 + e^-x) */
  BLUA_MAP_SIGN,    /* 1, 0 or -1 (+0 for NaN and both zeros) */
  BLUA_MAP_NEG,     /* -x */
  BLUA_MAP_SQUARE,  /* x * x */
  BLUA_MAP_LOG1P,   /* log(1 + x): -inf at -1, NaN below */
  BLUA_MAP_FLOOR,   /* floorf(x); a NaN comes back unchanged, a signalling one too */
  BLUA_MAP_CEIL,    /* ceilf(x); NaN as floor */
  BLUA_MAP_ROUND,   /* roundf(x): the nearest integer, halves away from zero; NaN as floor */
  /* with the scalars a (and b) */
  BLUA_MAP_CLAMP, /* x < a ? a : (x > b ? b : x): NaN stays NaN; needs a <= b */
  BLUA_MAP_GT,    /* x > a as 1 or 0 (0 when either is NaN); likewise the next three */
  BLUA_MAP_GE,
  BLUA_MAP_LT,
  BLUA_MAP_LE,
  BLUA_MAP_EQ,    /* x == a as 1 or 0 (0 when either is NaN) */
  BLUA_MAP_NE,    /* x != a as 1 or 0 (1 when either is NaN, as IEEE comparison gives) */
  BLUA_MAP_POW, /* powf(x, a) */
  BLUA_MAP_MAX, /* x > a ? x : a (a when either is NaN) */
  BLUA_MAP_MIN, /* x < a ? x : a (a when either is NaN) */
  BLUA_MAP_COUNT
} blua_map_op;

/* t = op(t, a, b) entry by entry, in place; a and b are ignored by the ops that take fewer.
 * BLUA_ERROR (t unchanged) for an unknown op or a clamp with a > b. Above BLUA_OMP_THRESHOLD
 * entries the work is split over the OpenMP threads. */
int blua_tensor_map(blua_tensor *t, blua_map_op op, float a, float b, blua_err *err);

#endif
