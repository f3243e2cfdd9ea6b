/* Unit tests of the core of the elementwise maps and statistics (blua/tensor_math.h): every
 * map against libm in double rounded to float over a sweep of float bit patterns, both
 * layouts of the work split (one contiguous run, strided runs), the order statistics against a
 * brute-force rank count, and the error paths (status and message, never an abort). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blua/blua.h"
#include "blua/tensor_math.h"
#include "check.h"

static double ref_map(blua_math_op op, float x, float a) {
  switch (op) {
    case BLUA_MATH_SIN: return sin(x);
    case BLUA_MATH_COS: return cos(x);
    case BLUA_MATH_TAN: return tan(x);
    case BLUA_MATH_ASIN: return asin(x);
    case BLUA_MATH_ACOS: return acos(x);
    case BLUA_MATH_ATAN: return atan(x);
    case BLUA_MATH_SINH: return sinh(x);
    case BLUA_MATH_COSH: return cosh(x);
    case BLUA_MATH_FRAC: return (double)x - trunc(x);
    case BLUA_MATH_CINV: return 1.0 / x;
    case BLUA_MATH_FMOD: return fmod(x, a);
    case BLUA_MATH_REMAINDER: {
      double m = fmod(x, a);
      if ((m > 0 && a < 0) || (m < 0 && a > 0)) m += a;
      return m;
    }
    default: return NAN;
  }
}

/* Same float, or both NaN. */
static int same_float(float a, float b) { return (isnan(a) && isnan(b)) || bits_of_float(a) == bits_of_float(b); }

/* n floats spread over every exponent: bit patterns stepped by a large odd number. */
static void sweep(float *p, int64_t n) {
  uint32_t u = 12345;
  for (int64_t k = 0; k < n; k++, u += 2654435761u) p[k] = float_of_bits(u);
}

static void test_maps_match_libm(void) {
  blua_err err;
  /* Above the thread threshold (pieces on threads) and a strided 2-D view of it. */
  int64_t n = 3 * BLUA_OMP_THRESHOLD + 17;
  blua_tensor *t = blua_tensor_new1d(n, &err);
  float *src = malloc((size_t)n * sizeof *src);
  sweep(src, n);
  const float divisors[] = {3.0f, -0.75f, 0.0f, INFINITY};
  for (int op = 0; op < BLUA_MATH_COUNT; op++) {
    int nd = op == BLUA_MATH_FMOD || op == BLUA_MATH_REMAINDER ? 4 : 1;
    for (int k = 0; k < nd; k++) {
      float a = divisors[k];
      memcpy(blua_tensor_data(t), src, (size_t)n * sizeof *src);
      CHECK(blua_tensor_math_map(t, (blua_math_op)op, a, &err) == BLUA_OK);
      int64_t bad = 0;
      for (int64_t j = 0; j < n; j++)
        if (!same_float(blua_tensor_data(t)[j], (float)ref_map((blua_math_op)op, src[j], a))) bad++;
      if (bad) fprintf(stderr, "op %d, a %g: %lld entries differ\n", op, a, (long long)bad);
      CHECK(bad == 0);
    }
  }
  /* A transposed view maps entry by entry as its contiguous copy. */
  blua_tensor *m = blua_tensor_new2d(300, 250, &err), *mt = blua_tensor_transpose(m, &err);
  sweep(blua_tensor_data(m), 300 * 250);
  blua_tensor *copy = blua_tensor_clone(mt, &err);
  CHECK(blua_tensor_math_map(mt, BLUA_MATH_SIN, 0, &err) == BLUA_OK);
  CHECK(blua_tensor_math_map(copy, BLUA_MATH_SIN, 0, &err) == BLUA_OK);
  int same = 1;
  for (int64_t i = 0; i < 250; i++)
    for (int64_t j = 0; j < 300; j++) same &= same_float(*blua_tensor_at(mt, i, j), *blua_tensor_at(copy, i, j));
  CHECK(same);
  CHECK(blua_tensor_math_map(t, BLUA_MATH_COUNT, 0, &err) == BLUA_ERROR);
  CHECK(strstr(err.msg, "unknown map") != NULL);
  blua_tensor_release(copy);
  blua_tensor_release(mt);
  blua_tensor_release(m);
  blua_tensor_release(t);
  free(src);
}

static void test_pairs(void) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(3, 4, &err), *u = blua_tensor_new2d(4, 3, &err);
  for (int k = 0; k < 12; k++) {
    blua_tensor_data(t)[k] = (float)k - 5.5f;
    blua_tensor_data(u)[k] = 2.0f - (float)k;
  }
  blua_tensor *ut = blua_tensor_transpose(u, &err), *t0 = blua_tensor_clone(t, &err);
  CHECK(blua_tensor_atan2(t, ut, &err) == BLUA_OK);
  int ok = 1;
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 4; j++)
      ok &= *blua_tensor_at(t, i, j) == (float)atan2(*blua_tensor_at(t0, i, j), *blua_tensor_at(ut, i, j));
  CHECK(ok);
  blua_tensor_copy(t, t0, &err);
  CHECK(blua_tensor_lerp(t, ut, 0.3, &err) == BLUA_OK);
  ok = 1;
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 4; j++) {
      double x = *blua_tensor_at(t0, i, j);
      ok &= *blua_tensor_at(t, i, j) == (float)(x + 0.3 * (*blua_tensor_at(ut, i, j) - x));
    }
  CHECK(ok);
  /* Errors: shape, a view overlapping t that is not t. */
  CHECK(blua_tensor_atan2(t, u, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: 3x4 and 4x3") == 0);
  blua_tensor *a = blua_tensor_narrow(t, 1, 0, 3, &err), *b = blua_tensor_narrow(t, 1, 1, 3, &err);
  CHECK(blua_tensor_lerp(a, b, 0.5, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "aliasing: t and u share memory") == 0);
  CHECK(blua_tensor_lerp(a, a, 0.5, &err) == BLUA_OK);
  blua_tensor_release(a);
  blua_tensor_release(b);
  blua_tensor_release(t0);
  blua_tensor_release(ut);
  blua_tensor_release(u);
  blua_tensor_release(t);
}

static void test_cumprod_dist_renorm(void) {
  blua_err err;
  int64_t size[3] = {2, 3, 2};
  blua_tensor *t = blua_tensor_new_nd(3, size, &err), *out = blua_tensor_new_nd(3, size, &err);
  for (int k = 0; k < 12; k++) blua_tensor_data(t)[k] = (float)(k % 5) - 1.5f;
  for (int d = 0; d < 3; d++) {
    CHECK(blua_tensor_cumprod(out, t, d, &err) == BLUA_OK);
    int ok = 1;
    for (int64_t k = 0; k < 12; k++) {
      int64_t c[3] = {k / 6, (k / 2) % 3, k % 2};
      double acc = 1.0;
      int64_t at[3] = {c[0], c[1], c[2]};
      for (int64_t j = 0; j <= c[d]; j++) {
        at[d] = j;
        acc *= blua_tensor_data(t)[at[0] * 6 + at[1] * 2 + at[2]];
      }
      ok &= blua_tensor_data(out)[k] == (float)acc;
    }
    CHECK(ok);
  }
  CHECK(blua_tensor_cumprod(out, t, 3, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad dimension: 4 for 2x3x2") == 0);
  CHECK(blua_tensor_cumprod(t, t, 0, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "aliasing: out and t share memory") == 0);

  double r = -1;
  blua_tensor_fill(out, 0.0f);
  CHECK(blua_tensor_dist(t, out, 1, &r, &err) == BLUA_OK);
  CHECK(r == blua_tensor_abs_sum(t));
  CHECK(blua_tensor_dist(t, out, 2, &r, &err) == BLUA_OK && r == blua_tensor_norm(t));
  CHECK(blua_tensor_dist(t, out, INFINITY, &r, &err) == BLUA_OK && r == 2.5);
  CHECK(blua_tensor_dist(t, out, 0, &r, &err) == BLUA_OK && r == 12);
  CHECK(blua_tensor_dist(t, out, -1, &r, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad norm: p = -1 (must be >= 0)") == 0);
  CHECK(blua_tensor_dist(t, out, NAN, &r, &err) == BLUA_ERROR);

  /* renorm along d = 1: each of the 3 slices 2x2; slice norms checked after. */
  blua_tensor_copy(out, t, &err);
  CHECK(blua_tensor_renorm(out, 2, 1, 1.0, &err) == BLUA_OK);
  for (int64_t i = 0; i < 3; i++) {
    blua_tensor *s = blua_tensor_select(out, 1, i, &err), *s0 = blua_tensor_select(t, 1, i, &err);
    double n0 = blua_tensor_norm(s0), n = blua_tensor_norm(s);
    CHECK(n0 > 1 ? fabs(n - 1.0) < 1e-6 : n == n0);
    blua_tensor_release(s);
    blua_tensor_release(s0);
  }
  CHECK(blua_tensor_renorm(out, 0, 1, 1.0, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad norm: p = 0 (must be > 0)") == 0);
  CHECK(blua_tensor_renorm(out, 2, 1, -1.0, &err) == BLUA_ERROR);
  CHECK(blua_tensor_renorm(out, 2, 1, NAN, &err) == BLUA_ERROR);
  CHECK(blua_tensor_renorm(out, 2, 5, 1.0, &err) == BLUA_ERROR);
  blua_tensor *v = blua_tensor_new1d(3, &err);
  CHECK(blua_tensor_renorm(v, 2, 0, 1.0, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad tensor: 3 has 1 dimension, renorm needs at least 2") == 0);
  blua_tensor_release(v);
  blua_tensor_release(out);
  blua_tensor_release(t);
}

/* The order statistics against counting: the entry of rank k has exactly k entries before it
 * in the sort order (smaller, or equal and earlier; NaN after numbers). */
static void test_order(void) {
  blua_err err;
  enum { R = 7, C = 9 };
  blua_tensor *t = blua_tensor_new2d(R, C, &err);
  float vals[] = {3, -1, 2, 2, NAN, 0, 5, 2, -1};
  for (int i = 0; i < R; i++)
    for (int j = 0; j < C; j++) *blua_tensor_at(t, i, j) = vals[(i * 4 + j) % 9] * (i % 2 ? 1.0f : -1.0f);
  blua_tensor *tt = blua_tensor_transpose(t, &err); /* lines along d = 0 of tt are t's rows */
  int64_t vs[2] = {1, R};
  blua_tensor *v = blua_tensor_new_nd(2, vs, &err), *ix = blua_tensor_new_nd(2, vs, &err);
  for (int64_t k = 0; k < C; k++) {
    CHECK(blua_tensor_kthvalue(v, ix, tt, k, 0, &err) == BLUA_OK);
    int ok = 1;
    for (int i = 0; i < R; i++) {
      int64_t at = (int64_t)*blua_tensor_at(ix, 0, i) - 1;
      float x = *blua_tensor_at(t, i, at);
      ok &= same_float(x, *blua_tensor_at(v, 0, i));
      int64_t before = 0;
      for (int j = 0; j < C; j++) {
        float y = *blua_tensor_at(t, i, j);
        int lt = isnan(x) ? !isnan(y) : (!isnan(y) && y < x);
        int eq = isnan(x) ? isnan(y) : y == x;
        before += lt || (eq && j < at);
      }
      ok &= before == k;
    }
    CHECK(ok);
  }
  CHECK(blua_tensor_median(v, ix, tt, 0, &err) == BLUA_OK);
  blua_tensor *v2 = blua_tensor_new_nd(2, vs, &err), *i2 = blua_tensor_new_nd(2, vs, &err);
  CHECK(blua_tensor_kthvalue(v2, i2, tt, (C - 1) / 2, 0, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(ix), blua_tensor_data(i2), R * sizeof(float)) == 0);
  /* mode of {2, 2, 5, 5, 1}: the smaller of the two pairs, at its last position */
  blua_tensor *m = blua_tensor_new1d(5, &err);
  float mv[] = {5, 2, 1, 5, 2};
  memcpy(blua_tensor_data(m), mv, sizeof mv);
  int64_t one = 1;
  blua_tensor *mo = blua_tensor_new_nd(1, &one, &err), *mi = blua_tensor_new_nd(1, &one, &err);
  CHECK(blua_tensor_mode(mo, mi, m, 0, &err) == BLUA_OK);
  CHECK(blua_tensor_data(mo)[0] == 2 && blua_tensor_data(mi)[0] == 5);
  /* errors */
  CHECK(blua_tensor_kthvalue(mo, mi, m, 5, 0, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "k out of range: 6 not in 1..5 for dimension 1 of 5") == 0);
  CHECK(blua_tensor_kthvalue(mo, mi, m, -1, 0, &err) == BLUA_ERROR);
  CHECK(blua_tensor_median(v, ix, tt, 1, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: reducing 9x7 along dimension 2 into 1x7") == 0);
  CHECK(blua_tensor_median(mo, mi, m, 1, &err) == BLUA_ERROR);
  CHECK(blua_tensor_mode(mo, mo, m, 0, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "aliasing: values and indices share memory") == 0);
  int64_t zs[2] = {2, 0}, zr[2] = {2, 1};
  blua_tensor *z = blua_tensor_new_nd(2, zs, &err), *zv = blua_tensor_new_nd(2, zr, &err), *zi = blua_tensor_new_nd(2, zr, &err);
  CHECK(blua_tensor_median(zv, zi, z, 1, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "empty dimension: 2 of 2x0 has no elements") == 0);
  blua_tensor *list[] = {z, zv, zi, mo, mi, m, v2, i2, v, ix, tt, t};
  for (size_t k = 0; k < sizeof list / sizeof list[0]; k++) blua_tensor_release(list[k]);
}

int main(void) {
  test_maps_match_libm();
  test_pairs();
  test_cumprod_dist_renorm();
  test_order();
  return check_summary();
}
