/* Unit tests of the truth tests of runtime/tensor_apply.c (all, any): NaN and -0, empty tensors,
 * and views (transposed, narrowed) that must be read through their strides, entries outside the
 * view left out. */
#include <math.h>
#include <string.h>

#include "blua/blua.h"
#include "blua/tensor_apply.h"
#include "check.h"

static blua_tensor *matrix(int64_t rows, int64_t cols, const float *vals) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(rows, cols, &err);
  if (rows * cols > 0) memcpy(blua_tensor_data(t), vals, (size_t)(rows * cols) * sizeof *vals);
  return t;
}

static void test_values(void) {
  blua_tensor *ones = matrix(2, 2, (const float[]){1, -2, NAN, 0.5f});
  CHECK(blua_tensor_all(ones) == 1);
  CHECK(blua_tensor_any(ones) == 1);
  blua_tensor *negzero = matrix(1, 3, (const float[]){1, 2, -0.0f});
  CHECK(blua_tensor_all(negzero) == 0);
  CHECK(blua_tensor_any(negzero) == 1);
  blua_tensor *zeros = matrix(1, 2, (const float[]){0, -0.0f});
  CHECK(blua_tensor_all(zeros) == 0);
  CHECK(blua_tensor_any(zeros) == 0);
  blua_tensor *nan = matrix(1, 1, (const float[]){NAN});
  CHECK(blua_tensor_all(nan) == 1 && blua_tensor_any(nan) == 1);
  blua_tensor *empty = matrix(3, 0, NULL);
  CHECK(blua_tensor_all(empty) == 1);
  CHECK(blua_tensor_any(empty) == 0);
  blua_tensor *all[] = {ones, negzero, zeros, nan, empty};
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) blua_tensor_release(all[k]);
}

static void test_views(void) {
  blua_err err;
  /* 3x3 with zeros at (0,1) and (2,0) */
  blua_tensor *m = matrix(3, 3, (const float[]){1, 0, 1, 1, 1, 1, 0, 1, 1});
  blua_tensor *col3 = blua_tensor_narrow(m, 1, 2, 1, &err);   /* column 3: 1 1 1 */
  CHECK(col3 && blua_tensor_all(col3) == 1);
  blua_tensor *cols23 = blua_tensor_narrow(m, 1, 1, 2, &err); /* holds the zero at (0,1) */
  CHECK(cols23 && blua_tensor_all(cols23) == 0);
  blua_tensor *mt = blua_tensor_transpose(m, &err);
  blua_tensor *row2t = mt ? blua_tensor_narrow(mt, 0, 1, 1, &err) : NULL; /* m's column 2: 0 1 1 */
  CHECK(row2t && blua_tensor_all(row2t) == 0 && blua_tensor_any(row2t) == 1);
  blua_tensor *row3t = mt ? blua_tensor_narrow(mt, 0, 2, 1, &err) : NULL; /* m's column 3 */
  CHECK(row3t && blua_tensor_all(row3t) == 1);

  blua_tensor *z = matrix(2, 3, (const float[]){0, 0, 0, 0, 0, 7});
  blua_tensor *zt = blua_tensor_transpose(z, &err);
  blua_tensor *head = zt ? blua_tensor_narrow(zt, 0, 0, 2, &err) : NULL; /* leaves out the 7 */
  CHECK(head && blua_tensor_any(head) == 0);
  CHECK(zt && blua_tensor_any(zt) == 1);
  blua_tensor *all[] = {m, col3, cols23, mt, row2t, row3t, z, zt, head};
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) blua_tensor_release(all[k]);
}

int main(void) {
  test_values();
  test_views();
  return check_summary();
}
