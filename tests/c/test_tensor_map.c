/* Unit tests of the elementwise maps (blua/tensor_map.h): every op writes the bits of its
 * scalar expression evaluated entry by entry here, on contiguous tensors whose sizes are not
 * multiples of any vector width, on transposed, narrowed and strided 1-D views (entries outside
 * the view untouched), on special values (NaN with payloads, signalling NaN, infinities, both
 * zeros, the largest and smallest floats), with special scalars, and with one and two threads
 * above the threading threshold. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/vmath.h"
#include "blua/blua.h"
#include "check.h"

/* The reference: one entry at a time, the expressions the maps promise (exp, log, log1p, tanh
 * and sigmoid: vmath.h's scalar code, compiled here for the baseline; test_map_accuracy.c
 * measures them against libm). */
static float reference(blua_map_op op, float x, float a, float b) {
  switch (op) {
    case BLUA_MAP_ABS: return fabsf(x);
    case BLUA_MAP_EXP: return vm_expf(x);
    case BLUA_MAP_LOG: return vm_logf(x);
    case BLUA_MAP_SQRT: return sqrtf(x);
    case BLUA_MAP_TANH: return vm_tanhf(x);
    case BLUA_MAP_SIGMOID: return vm_sigmoidf(x);
    case BLUA_MAP_SIGN: return (float)((x > 0) - (x < 0));
    case BLUA_MAP_NEG: return -x;
    case BLUA_MAP_SQUARE: return x * x;
    case BLUA_MAP_LOG1P: return vm_log1pf(x);
    /* floorf compiled inline (Release) returns a signalling NaN as it is, libm's quietens it:
     * the map promises the former. */
    case BLUA_MAP_FLOOR: return isnan(x) ? x : floorf(x);
    case BLUA_MAP_CEIL: return isnan(x) ? x : ceilf(x);
    case BLUA_MAP_ROUND: return isnan(x) ? x : roundf(x);
    case BLUA_MAP_CLAMP: return x < a ? a : (x > b ? b : x);
    case BLUA_MAP_GT: return x > a;
    case BLUA_MAP_GE: return x >= a;
    case BLUA_MAP_LT: return x < a;
    case BLUA_MAP_LE: return x <= a;
    case BLUA_MAP_EQ: return x == a;
    case BLUA_MAP_NE: return x != a;
    case BLUA_MAP_POW: return powf(x, a);
    case BLUA_MAP_MAX: return x > a ? x : a;
    case BLUA_MAP_MIN: return x < a ? x : a;
    case BLUA_MAP_COUNT: break;
  }
  return x;
}

static const char *op_name[BLUA_MAP_COUNT] = {"abs", "exp", "log", "sqrt", "tanh", "sigmoid", "sign",
                                              "neg", "square", "log1p", "floor", "ceil", "round", "clamp", "gt", "ge",
                                              "lt", "le", "eq", "ne", "pow", "max", "min"};

static float special(int i) {
  static const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7fa00000u, 0x7fc12345u, 0xff812345u};
  const float values[] = {INFINITY, -INFINITY, 0.0f, -0.0f, FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
                          1e-45f, -1e-45f, 1.0f, -1.0f, 0.5f, -0.5f, 2.5f, -2.5f, 88.72f, -103.9f,
                          1e8f, -1e8f, 8388607.5f, -8388607.5f, 0.49999997f, 3e38f, 1e-30f, -1e-30f};
  int n_nans = (int)(sizeof nans / sizeof nans[0]), n_values = (int)(sizeof values / sizeof values[0]);
  i %= n_nans + n_values;
  return i < n_nans ? float_of_bits(nans[i]) : values[i - n_nans];
}

/* Storage entry i: a special value, any bit pattern, or a small multiple of 1/4 (so that the
 * comparisons meet their thresholds exactly), in turn. */
static void fill_pattern(blua_tensor *t, uint32_t seed) {
  float *p = blua_tensor_data(t);
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < blua_tensor_nelement(t); i++) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    p[i] = i % 3 == 0 ? special((int)(i / 3)) : i % 3 == 1 ? float_of_bits(s) : (float)((int)(s % 33) - 16) * 0.25f;
  }
}

/* Maps `view` (a view of the contiguous `base`) with op, a, b and compares all of base's bits
 * with the reference applied to the view's entries. */
static int map_matches(blua_tensor *base, blua_tensor *view, blua_map_op op, float a, float b) {
  int64_t n = blua_tensor_nelement(base), m = blua_tensor_nelement(view);
  float *before = malloc((size_t)n * sizeof(float)), *want = malloc((size_t)n * sizeof(float));
  memcpy(before, blua_tensor_data(base), (size_t)n * sizeof(float));
  memcpy(want, before, (size_t)n * sizeof(float));
  int64_t shift = (int64_t)(view->offset - base->offset);
  for (int64_t k = 0; k < m; k++) {
    int64_t at = shift + blua_tensor_offset_of(view, k);
    want[at] = reference(op, before[at], a, b);
  }
  blua_err err;
  int ok = blua_tensor_map(view, op, a, b, &err) == BLUA_OK;
  const float *got = blua_tensor_data(base);
  for (int64_t i = 0; ok && i < n; i++) {
    if (bits_of_float(got[i]) != bits_of_float(want[i])) {
      fprintf(stderr, "%s(%g, %g) at %lld: %a (0x%08x) from %a, want %a (0x%08x)\n", op_name[op], a, b, (long long)i,
              got[i], bits_of_float(got[i]), before[i], want[i], bits_of_float(want[i]));
      ok = 0;
    }
  }
  memcpy(blua_tensor_data(base), before, (size_t)n * sizeof(float));
  free(before);
  free(want);
  return ok;
}

/* Every op with every scalar argument of interest on one view. */
static void check_all_ops(blua_tensor *base, blua_tensor *view, int few) {
  const float scalars[] = {0.0f, -0.0f, 0.5f, 2.0f, -1.5f, NAN, INFINITY, -INFINITY, 1e-45f};
  const float bounds[][2] = {{0.0f, 1.0f}, {-0.0f, 0.0f}, {0.0f, -0.0f}, {NAN, 1.0f},   {-1.0f, NAN},
                             {2.0f, 2.0f}, {-INFINITY, INFINITY}, {-FLT_MAX, 0.25f}, {1e-45f, 1e-45f}};
  int n_scalars = few ? 2 : (int)(sizeof scalars / sizeof scalars[0]);
  int n_bounds = few ? 2 : (int)(sizeof bounds / sizeof bounds[0]);
  for (int op = 0; op < BLUA_MAP_COUNT; op++) {
    if (op < BLUA_MAP_CLAMP) {
      CHECK(map_matches(base, view, (blua_map_op)op, 0.0f, 0.0f));
    } else if (op == BLUA_MAP_CLAMP) {
      for (int i = 0; i < n_bounds; i++) CHECK(map_matches(base, view, BLUA_MAP_CLAMP, bounds[i][0], bounds[i][1]));
    } else {
      for (int i = 0; i < n_scalars; i++) CHECK(map_matches(base, view, (blua_map_op)op, scalars[i], 0.0f));
    }
  }
}

static void test_contiguous(void) {
  blua_err err;
  const int64_t sizes[] = {1, 7, 33, 1000};
  for (int i = 0; i < 4; i++) {
    blua_tensor *t = blua_tensor_new1d(sizes[i], &err);
    fill_pattern(t, (uint32_t)i);
    check_all_ops(t, t, 0);
    blua_tensor_release(t);
  }
  blua_tensor *m = blua_tensor_new2d(33, 31, &err);
  fill_pattern(m, 7);
  check_all_ops(m, m, 0);
  blua_tensor_release(m);
}

static void test_views(void) {
  blua_err err;
  /* Transposed: runs of 33 entries 31 apart. */
  blua_tensor *m = blua_tensor_new2d(33, 31, &err);
  fill_pattern(m, 11);
  blua_tensor *tr = blua_tensor_transpose(m, &err);
  check_all_ops(m, tr, 0);
  /* Narrowed columns: runs of 7 adjacent entries, the rest of each row untouched. */
  blua_tensor *cols = blua_tensor_narrow(m, 1, 3, 7, &err);
  check_all_ops(m, cols, 0);
  /* Narrowed rows of the transpose: strided runs that start inside a row. */
  blua_tensor *part = blua_tensor_narrow(tr, 0, 2, 5, &err);
  check_all_ops(m, part, 0);
  /* A column as a 1-D tensor: one run of 33 entries 31 apart. */
  blua_tensor *col = blua_tensor_select(m, 1, 4, &err);
  CHECK(col && col->dim == 1 && col->stride[0] == 31);
  check_all_ops(m, col, 0);
  blua_tensor_release(col);
  blua_tensor_release(part);
  blua_tensor_release(cols);
  blua_tensor_release(tr);
  blua_tensor_release(m);

  /* 3-D with the outer dimensions swapped. */
  int64_t size[3] = {5, 6, 7};
  blua_tensor *cube = blua_tensor_new_nd(3, size, &err);
  fill_pattern(cube, 13);
  blua_tensor *swapped = blua_tensor_transpose_dims(cube, 0, 2, &err);
  check_all_ops(cube, swapped, 0);
  blua_tensor_release(swapped);
  blua_tensor_release(cube);

  /* Empty tensors are left alone. */
  blua_tensor *empty = blua_tensor_new2d(0, 5, &err);
  CHECK(blua_tensor_map(empty, BLUA_MAP_EXP, 0.0f, 0.0f, &err) == BLUA_OK);
  blua_tensor_release(empty);
}

/* Above BLUA_OMP_THRESHOLD: the same bits with one and with two threads, for a contiguous
 * tensor (pieces of one run), a transposed one (runs) and a strided 1-D view (pieces of one
 * strided run). */
static void test_threads(void) {
  blua_err err;
  int saved = blua_get_num_threads();
  blua_tensor *flat = blua_tensor_new1d(70001, &err);
  blua_tensor *m = blua_tensor_new2d(257, 263, &err);
  blua_tensor *pairs = blua_tensor_new2d(40000, 2, &err);
  fill_pattern(flat, 17);
  fill_pattern(m, 19);
  fill_pattern(pairs, 23);
  blua_tensor *tr = blua_tensor_transpose(m, &err);
  blua_tensor *col = blua_tensor_select(pairs, 1, 1, &err);
  CHECK(blua_tensor_nelement(tr) > BLUA_OMP_THRESHOLD && blua_tensor_nelement(col) > BLUA_OMP_THRESHOLD);
  for (int threads = 1; threads <= 2; threads++) {
    blua_set_num_threads(threads);
    check_all_ops(flat, flat, 1);
    check_all_ops(m, tr, 1);
    check_all_ops(pairs, col, 1);
  }
  blua_set_num_threads(saved);
  blua_tensor_release(col);
  blua_tensor_release(tr);
  blua_tensor_release(pairs);
  blua_tensor_release(m);
  blua_tensor_release(flat);
}

static void test_errors(void) {
  blua_err err;
  blua_tensor *t = blua_tensor_new1d(3, &err);
  blua_tensor_fill(t, 5.0f);
  CHECK(blua_tensor_map(t, BLUA_MAP_CLAMP, 1.0f, 0.0f, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad clamp bounds: 1 > 0") == 0);
  CHECK(blua_tensor_map(t, BLUA_MAP_COUNT, 0.0f, 0.0f, &err) == BLUA_ERROR);
  CHECK(strstr(err.msg, "unknown map op") != NULL);
  CHECK(blua_tensor_map(t, (blua_map_op)-1, 0.0f, 0.0f, &err) == BLUA_ERROR);
  CHECK(blua_tensor_sum(t) == 15.0);
  blua_tensor_release(t);
}

int main(void) {
  test_contiguous();
  test_views();
  test_threads();
  test_errors();
  return check_summary();
}
