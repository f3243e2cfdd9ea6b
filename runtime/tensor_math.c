/* Elementwise maps and statistics on tensors: the core of runtime/ltensor_math.c
 * (blua/tensor_math.h). Every loop walks a tensor as runs along its last dimension (or as one
 * run when it is contiguous), so any view works. The maps call libm in double per entry and
 * round to float: the value does not depend on the thread count or the layout. */
#include "blua/tensor_math.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "par.h"

#define BIG(n) ((n) > BLUA_OMP_THRESHOLD)
/* Entries per piece when one contiguous run is split over threads. */
#define MATH_BLOCK 8192

static const char *shape_of(const blua_tensor *t, char *buf) { return blua_tensor_shape(t, buf, 160); }

static int size_mismatch(blua_err *err, const blua_tensor *a, const blua_tensor *b) {
  char sa[160], sb[160];
  return blua_fail(err, "size mismatch: %s and %s", shape_of(a, sa), shape_of(b, sb));
}

static int bad_dim(blua_err *err, const blua_tensor *t, int d) {
  char s[160];
  return blua_fail(err, "bad dimension: %d for %s", d + 1, shape_of(t, s));
}

/* ---- maps of one tensor ---- */

static inline float frac_of(float x) { return x - truncf(x); }

/* Lua's float x % a: fmod (exact), moved into the divisor's sign by adding a when the signs
 * differ; the one rounding is that of the sum, to double and then to float. */
static inline float remainder_of(float x, float a) {
  double m = fmod((double)x, (double)a);
  if (m > 0 ? a < 0 : (m < 0 && a > 0)) m += a;
  return (float)m;
}

/* p[k * step] = E(x) for k < n, x the old entry (a float). Adjacent entries get a loop of
 * their own, which the compiler makes a vector loop for the ops without a libm call. */
#define EACH(E)                            \
  do {                                     \
    if (step == 1) {                       \
      for (int64_t k = 0; k < n; k++) {    \
        float x = p[k];                    \
        p[k] = (E);                        \
      }                                    \
    } else {                               \
      for (int64_t k = 0; k < n; k++) {    \
        float x = p[k * step];             \
        p[k * step] = (E);                 \
      }                                    \
    }                                      \
  } while (0)

static void math_run(float *p, int64_t n, int64_t step, blua_math_op op, float a) {
  switch (op) {
    case BLUA_MATH_SIN: EACH((float)sin(x)); break;
    case BLUA_MATH_COS: EACH((float)cos(x)); break;
    case BLUA_MATH_TAN: EACH((float)tan(x)); break;
    case BLUA_MATH_ASIN: EACH((float)asin(x)); break;
    case BLUA_MATH_ACOS: EACH((float)acos(x)); break;
    case BLUA_MATH_ATAN: EACH((float)atan(x)); break;
    case BLUA_MATH_SINH: EACH((float)sinh(x)); break;
    case BLUA_MATH_COSH: EACH((float)cosh(x)); break;
    case BLUA_MATH_FRAC: EACH(frac_of(x)); break;
    case BLUA_MATH_CINV: EACH(1.0f / x); break;
    case BLUA_MATH_FMOD: EACH((float)fmod(x, a)); break;
    case BLUA_MATH_REMAINDER: EACH(remainder_of(x, a)); break;
    case BLUA_MATH_COUNT: break;
  }
}

int blua_tensor_math_map(blua_tensor *t, blua_math_op op, float a, blua_err *err) {
  if ((unsigned)op >= BLUA_MATH_COUNT) return blua_fail(err, "unknown map: op %d", (int)op);
  int64_t n = blua_tensor_nelement(t);
  if (n == 0) return BLUA_OK;
  float *p = blua_tensor_data(t);
  if (blua_tensor_is_contiguous(t)) {
    int64_t pieces = (n + MATH_BLOCK - 1) / MATH_BLOCK;
    BLUA_PAR(BIG(n), "omp parallel for schedule(dynamic)",
    for (int64_t i = 0; i < pieces; i++) {
      int64_t lo = i * MATH_BLOCK;
      math_run(p + lo, n - lo < MATH_BLOCK ? n - lo : MATH_BLOCK, 1, op, a);
    });
    return BLUA_OK;
  }
  int last = t->dim - 1;
  int64_t runs = blua_tensor_runs(t), len = t->size[last], step = t->stride[last];
  BLUA_PAR(BIG(n), "omp parallel for schedule(dynamic)",
  for (int64_t r = 0; r < runs; r++) math_run(p + blua_tensor_run_offset(t, r), len, step, op, a));
  return BLUA_OK;
}

/* ---- maps of two tensors into the first ---- */

typedef enum { PAIR_ATAN2, PAIR_LERP } pair_op;

static void pair_run(float *p, int64_t ps, const float *q, int64_t qs, int64_t n, pair_op op, double w) {
  if (op == PAIR_ATAN2) {
    for (int64_t k = 0; k < n; k++) p[k * ps] = (float)atan2(p[k * ps], q[k * qs]);
  } else {
    for (int64_t k = 0; k < n; k++) {
      double x = p[k * ps];
      p[k * ps] = (float)(x + w * ((double)q[k * qs] - x));
    }
  }
}

static int pair_map(blua_tensor *t, const blua_tensor *u, pair_op op, double w, blua_err *err) {
  if (!blua_tensor_same_shape(t, u)) return size_mismatch(err, t, u);
  /* An entry of t written before the entry of u that shares its memory is read would be wrong. */
  blua_named_tensor both[2] = {{t, "t", 0}, {u, "u", 0}};
  if (!blua_tensor_same_view(t, u) && blua_tensors_apart(2, both, err)) return BLUA_ERROR;
  int64_t n = blua_tensor_nelement(t);
  if (n == 0) return BLUA_OK;
  float *p = blua_tensor_data(t);
  const float *q = blua_tensor_data(u);
  if (blua_tensor_is_contiguous(t) && blua_tensor_is_contiguous(u)) {
    int64_t pieces = (n + MATH_BLOCK - 1) / MATH_BLOCK;
    BLUA_PAR(BIG(n), "omp parallel for schedule(dynamic)",
    for (int64_t i = 0; i < pieces; i++) {
      int64_t lo = i * MATH_BLOCK;
      pair_run(p + lo, 1, q + lo, 1, n - lo < MATH_BLOCK ? n - lo : MATH_BLOCK, op, w);
    });
    return BLUA_OK;
  }
  int last = t->dim - 1;
  int64_t runs = blua_tensor_runs(t), len = t->size[last], ps = t->stride[last], qs = u->stride[last];
  BLUA_PAR(BIG(n), "omp parallel for schedule(dynamic)",
  for (int64_t r = 0; r < runs; r++)
    pair_run(p + blua_tensor_run_offset(t, r), ps, q + blua_tensor_run_offset(u, r), qs, len, op, w));
  return BLUA_OK;
}

int blua_tensor_atan2(blua_tensor *t, const blua_tensor *u, blua_err *err) { return pair_map(t, u, PAIR_ATAN2, 0.0, err); }
int blua_tensor_lerp(blua_tensor *t, const blua_tensor *u, double w, blua_err *err) { return pair_map(t, u, PAIR_LERP, w, err); }

/* ---- along a dimension ---- */

/* ---- norms ---- */

/* The p-norm's accumulation of one magnitude m (p = 0: a count, +inf: the largest, a NaN
 * sticking), and the norm from the accumulated total. */
static inline double norm_add(double acc, double m, double p) {
  if (p == 2) return acc + m * m;
  if (p == 1) return acc + m;
  if (p == 0) return acc + (m != 0);
  if (isinf(p)) return isnan(acc) || isnan(m) ? NAN : (m > acc ? m : acc);
  return acc + pow(m, p);
}

static inline double norm_end(double acc, double p) {
  if (p == 2) return sqrt(acc);
  if (p == 0 || p == 1 || isinf(p)) return acc;
  return pow(acc, 1.0 / p);
}

int blua_tensor_dist(const blua_tensor *t, const blua_tensor *u, double p, double *result, blua_err *err) {
  if (!blua_tensor_same_shape(t, u)) return size_mismatch(err, t, u);
  if (!(p >= 0)) return blua_fail(err, "bad norm: p = %g (must be >= 0)", p);
  int last = t->dim - 1;
  int64_t runs = blua_tensor_runs(t), len = t->size[last], ts = t->stride[last], us = u->stride[last];
  double acc = 0.0;
  for (int64_t r = 0; r < runs; r++) {
    const float *pt = blua_tensor_data(t) + blua_tensor_run_offset(t, r);
    const float *pu = blua_tensor_data(u) + blua_tensor_run_offset(u, r);
    for (int64_t j = 0; j < len; j++) acc = norm_add(acc, fabs((double)pt[j * ts] - (double)pu[j * us]), p);
  }
  *result = norm_end(acc, p);
  return BLUA_OK;
}

/* The header of t's slice at index i of dimension d: one dimension fewer. */
static blua_tensor slice_view(const blua_tensor *t, int d, int64_t i) {
  blua_tensor v = *t;
  v.offset += (size_t)(i * t->stride[d]);
  for (int e = d; e < t->dim - 1; e++) {
    v.size[e] = t->size[e + 1];
    v.stride[e] = t->stride[e + 1];
  }
  v.dim = t->dim - 1;
  v.size[v.dim] = 1;
  v.stride[v.dim] = 1;
  return v;
}

static void renorm_slice(blua_tensor *s, double p, double maxnorm) {
  int last = s->dim - 1;
  int64_t runs = blua_tensor_runs(s), len = s->size[last], step = s->stride[last];
  double acc = 0.0;
  for (int64_t r = 0; r < runs; r++) {
    const float *q = blua_tensor_data(s) + blua_tensor_run_offset(s, r);
    for (int64_t j = 0; j < len; j++) acc = norm_add(acc, fabs((double)q[j * step]), p);
  }
  double norm = norm_end(acc, p);
  if (!(norm > maxnorm)) return;
  double scale = maxnorm / (norm + 1e-7);
  for (int64_t r = 0; r < runs; r++) {
    float *q = blua_tensor_data(s) + blua_tensor_run_offset(s, r);
    for (int64_t j = 0; j < len; j++) q[j * step] = (float)(q[j * step] * scale);
  }
}

int blua_tensor_renorm(blua_tensor *t, double p, int d, double maxnorm, blua_err *err) {
  char s[160];
  if (t->dim < 2) return blua_fail(err, "bad tensor: %s has 1 dimension, renorm needs at least 2", shape_of(t, s));
  if (d < 0 || d >= t->dim) return bad_dim(err, t, d);
  if (!(p > 0)) return blua_fail(err, "bad norm: p = %g (must be > 0)", p);
  if (!(maxnorm >= 0)) return blua_fail(err, "bad maxnorm: %g (must be >= 0)", maxnorm);
  int64_t slices = t->size[d];
  BLUA_PAR(BIG(blua_tensor_nelement(t)) && slices > 1, "omp parallel for schedule(dynamic)",
  for (int64_t i = 0; i < slices; i++) {
    blua_tensor v = slice_view(t, d, i);
    renorm_slice(&v, p, maxnorm);
  });
  return BLUA_OK;
}

/* ---- order statistics ---- */

typedef struct {
  float v;
  int64_t i; /* 0-based position along the line */
} entry;

/* blua_tensor_sort's order: ascending, NaN after every number, ties by position. */
static int entry_order(const void *a, const void *b) {
  const entry *x = a, *y = b;
  int xn = isnan(x->v), yn = isnan(y->v);
  if (xn != yn) return xn - yn;
  if (!xn && x->v != y->v) return x->v < y->v ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

static int same_value(float a, float b) { return a == b || (isnan(a) && isnan(b)); }

/* Rank of the mode in the sorted line e[0..n): the end of the longest run of equal values
 * (the first such run, so the smallest value, when several are longest). */
static int64_t mode_rank(const entry *e, int64_t n) {
  int64_t best = 0, best_len = 0, start = 0;
  for (int64_t j = 0; j < n; j++) {
    if (j + 1 < n && same_value(e[j].v, e[j + 1].v)) continue;
    if (j - start + 1 > best_len) {
      best_len = j - start + 1;
      best = j;
    }
    start = j + 1;
  }
  return best;
}

enum { ORDER_KTH, ORDER_MEDIAN, ORDER_MODE };

static int reduced_ok(const blua_tensor *out, const blua_tensor *t, int d, blua_err *err) {
  int ok = out->dim == t->dim;
  for (int e = 0; ok && e < t->dim; e++) ok = out->size[e] == (e == d ? 1 : t->size[e]);
  if (ok) return BLUA_OK;
  char s1[160], s2[160];
  return blua_fail(err, "size mismatch: reducing %s along dimension %d into %s", shape_of(t, s1), d + 1, shape_of(out, s2));
}

static int order_stat(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int d, int kind, int64_t k,
                      blua_err *err) {
  char s[160];
  if (d < 0 || d >= t->dim) return bad_dim(err, t, d);
  if (reduced_ok(vals, t, d, err) || reduced_ok(idx, t, d, err)) return BLUA_ERROR;
  int64_t len = t->size[d];
  if (len == 0) return blua_fail(err, "empty dimension: %d of %s has no elements", d + 1, shape_of(t, s));
  if (kind == ORDER_KTH && (k < 0 || k >= len))
    return blua_fail(err, "k out of range: %lld not in 1..%lld for dimension %d of %s", (long long)k + 1, (long long)len,
                     d + 1, shape_of(t, s));
  blua_named_tensor all[3] = {{vals, "values", 0}, {idx, "indices", 0}, {t, "t", 0}};
  if (blua_tensors_apart(3, all, err)) return BLUA_ERROR;
  entry *e = malloc((size_t)len * sizeof *e);
  if (!e) return blua_fail(err, "out of memory: ordering %lld entries", (long long)len);
  blua_tensor tv = blua_tensor_lines_along(t, d), vv = blua_tensor_lines_along(vals, d), iv = blua_tensor_lines_along(idx, d);
  int64_t runs = blua_tensor_runs(&tv), step = t->stride[d];
  for (int64_t r = 0; r < runs; r++) {
    const float *p = blua_tensor_data(t) + blua_tensor_run_offset(&tv, r);
    for (int64_t j = 0; j < len; j++) e[j] = (entry){p[j * step], j};
    qsort(e, (size_t)len, sizeof *e, entry_order);
    int64_t rank = kind == ORDER_KTH ? k : kind == ORDER_MEDIAN ? (len - 1) / 2 : mode_rank(e, len);
    blua_tensor_data(vals)[blua_tensor_run_offset(&vv, r)] = e[rank].v;
    blua_tensor_data(idx)[blua_tensor_run_offset(&iv, r)] = (float)(e[rank].i + 1);
  }
  free(e);
  return BLUA_OK;
}

int blua_tensor_kthvalue(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int64_t k, int d, blua_err *err) {
  return order_stat(vals, idx, t, d, ORDER_KTH, k, err);
}
int blua_tensor_median(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int d, blua_err *err) {
  return order_stat(vals, idx, t, d, ORDER_MEDIAN, 0, err);
}
int blua_tensor_mode(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int d, blua_err *err) {
  return order_stat(vals, idx, t, d, ORDER_MODE, 0, err);
}
