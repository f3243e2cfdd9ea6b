/* Unit tests of blua_tensor_expand and blua_tensor_overlapping (blua/tensor.h): the view's
 * sizes and steps, reads through the core's copies, reductions and products (an expanded BLAS
 * operand is copied), views of expanded views, and every bad size as a status and a message. */
#include <stdint.h>
#include <string.h>

#include "blua/blua.h"
#include "check.h"

static float entry(const blua_tensor *t, int64_t k) { return blua_tensor_data(t)[blua_tensor_offset_of(t, k)]; }

static void test_expand_view(void) {
  blua_err err;
  blua_tensor *x = blua_tensor_new2d(3, 1, &err);
  for (int i = 0; i < 3; i++) blua_tensor_data(x)[i] = (float)(i + 1);
  CHECK(!blua_tensor_overlapping(x));
  int64_t s34[2] = {3, 4};
  blua_tensor *e = blua_tensor_expand(x, 2, s34, &err);
  CHECK(e != NULL && e->storage == x->storage);
  CHECK(e->size[0] == 3 && e->size[1] == 4 && e->stride[0] == 1 && e->stride[1] == 0);
  CHECK(blua_tensor_overlapping(e));
  CHECK(!blua_tensor_is_contiguous(e));
  for (int k = 0; k < 12; k++) CHECK(entry(e, k) == (float)(k / 4 + 1));
  CHECK(blua_tensor_sum(e) == 24.0);
  CHECK(blua_tensor_max(e) == 3.0);
  blua_tensor *c = blua_tensor_clone(e, &err);
  CHECK(blua_tensor_is_contiguous(c) && !blua_tensor_overlapping(c));
  for (int k = 0; k < 12; k++) CHECK(blua_tensor_data(c)[k] == (float)(k / 4 + 1));
  blua_tensor *ct = blua_tensor_contiguous(e, &err);
  CHECK(ct != e && blua_tensor_equal(ct, e));
  /* a product with the expanded operand on either side, also transposed */
  blua_tensor *ones = blua_tensor_new2d(4, 2, &err), *p = blua_tensor_new2d(3, 2, &err);
  blua_tensor_fill(ones, 1.0f);
  CHECK(blua_mm(p, 0.0f, 1.0f, e, ones, &err) == BLUA_OK);
  for (int k = 0; k < 6; k++) CHECK(blua_tensor_data(p)[k] == (float)(4 * (k / 2 + 1)));
  blua_tensor *et = blua_tensor_transpose(e, &err), *q = blua_tensor_new2d(4, 4, &err), *one3 = blua_tensor_new2d(3, 4, &err);
  blua_tensor_fill(one3, 1.0f);
  CHECK(blua_tensor_overlapping(et));
  CHECK(blua_mm(q, 0.0f, 1.0f, et, one3, &err) == BLUA_OK);
  for (int k = 0; k < 16; k++) CHECK(blua_tensor_data(q)[k] == 6.0f);
  /* views of the view: a narrowed one still overlaps, a selected column does not */
  blua_tensor *n = blua_tensor_narrow(e, 1, 1, 2, &err), *col = blua_tensor_select(e, 1, 2, &err);
  CHECK(blua_tensor_overlapping(n) && !blua_tensor_overlapping(col));
  for (int k = 0; k < 3; k++) CHECK(entry(col, k) == (float)(k + 1));
  /* a view of a non-contiguous tensor is refused, as for any other */
  int64_t s12[1] = {12};
  CHECK(blua_tensor_view_nd(e, 1, s12, &err) == NULL);
  /* leading dimensions, 0 sizes, and an empty view overlaps nothing */
  int64_t s234[3] = {2, 3, 4}, s04[2] = {0, 4}, s30[2] = {3, 0};
  blua_tensor *l = blua_tensor_expand(x, 3, s234, &err);
  CHECK(l && l->stride[0] == 0 && blua_tensor_sum(l) == 48.0);
  blua_tensor *z = blua_tensor_expand(x, 2, s30, &err);
  CHECK(z && blua_tensor_nelement(z) == 0 && !blua_tensor_overlapping(z));
  /* bad sizes */
  CHECK(blua_tensor_expand(x, 2, s04, &err) == NULL);
  CHECK(strcmp(err.msg, "bad sizes: 0x4 cannot expand a 3x1 tensor (dimension 1 has size 3, not 1)") == 0);
  CHECK(blua_tensor_expand(x, 1, s34, &err) == NULL);
  CHECK(strcmp(err.msg, "bad sizes: 1 given to expand a 3x1 tensor (2..8 expected)") == 0);
  CHECK(blua_tensor_expand(x, BLUA_MAX_DIM + 1, s34, &err) == NULL);
  int64_t neg[2] = {3, -1}, huge[2] = {3, INT64_MAX}, big[3] = {(int64_t)1 << 31, 3, (int64_t)1 << 31};
  CHECK(blua_tensor_expand(x, 2, neg, &err) == NULL);
  CHECK(strcmp(err.msg, "bad size: 3x-1 (sizes must be non-negative)") == 0);
  CHECK(blua_tensor_expand(x, 2, huge, &err) == NULL);
  CHECK(blua_tensor_expand(x, 3, big, &err) == NULL);
  CHECK(strncmp(err.msg, "tensor too large", 16) == 0);
  blua_tensor *all[] = {x, e, c, ct, ones, p, et, q, one3, n, col, l, z};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

int main(void) {
  test_expand_view();
  return check_summary();
}
