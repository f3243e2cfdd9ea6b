/* Unit tests of the shape and small linear algebra core (blua/tensor_shape.h): addcmul and
 * addcdiv, addmv and addr through BLAS (on transposed and strided operands, and with the
 * result sharing memory with an operand), range and linspace with their limits, diag, trace,
 * tril/triu, repeat and equal; batched products (bmm, baddbmm, addbmm) on views and aliases; every bad input comes back as a status and a message. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "blua/blua.h"
#include "check.h"

static blua_tensor *matrix(int64_t r, int64_t c, const float *v) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(r, c, &err);
  memcpy(blua_tensor_data(t), v, (size_t)(r * c) * sizeof(float));
  return t;
}

static blua_tensor *vector(int64_t n, const float *v) {
  blua_err err;
  blua_tensor *t = blua_tensor_new1d(n, &err);
  memcpy(blua_tensor_data(t), v, (size_t)n * sizeof(float));
  return t;
}

/* Entry k (row-major) of any view. */
static float entry(const blua_tensor *t, int64_t k) { return blua_tensor_data(t)[blua_tensor_offset_of(t, k)]; }

static void test_addcmul(void) {
  blua_err err;
  const float tv[] = {1, 2, 3, 4, 5, 6}, av[] = {1, -2, 3, 0.5f, 2, 4}, bv[] = {2, 2, -1, 4, 0, 8};
  blua_tensor *t = matrix(2, 3, tv), *a = matrix(2, 3, av), *b = matrix(2, 3, bv);
  CHECK(blua_tensor_addcmul(t, 2.0, a, b, 0, &err) == BLUA_OK);
  for (int k = 0; k < 6; k++) CHECK(entry(t, k) == (float)(tv[k] + 2.0 * av[k] * bv[k]));
  /* a transposed view against its contiguous copy */
  blua_tensor *at = blua_tensor_transpose(a, &err), *bt = blua_tensor_transpose(b, &err);
  blua_tensor *ac = blua_tensor_clone(at, &err), *bc = blua_tensor_clone(bt, &err);
  const float sv[] = {1, 1, 1, 1, 1, 1};
  blua_tensor *s1 = matrix(3, 2, sv), *s2 = matrix(3, 2, sv);
  CHECK(blua_tensor_addcmul(s1, -0.5, at, bt, 1, &err) == BLUA_OK);
  CHECK(blua_tensor_addcmul(s2, -0.5, ac, bc, 1, &err) == BLUA_OK);
  for (int k = 0; k < 6; k++) CHECK(entry(s1, k) == entry(s2, k) || (isnan(entry(s1, k)) && isnan(entry(s2, k))));
  CHECK(isinf(*blua_tensor_at(s1, 1, 1))); /* 2 / 0 */
  /* a source overlapping t one entry further: read before written */
  const float uv[] = {1, 2, 3, 4};
  blua_tensor *u = vector(4, uv), *ones = blua_tensor_new1d(3, &err);
  blua_tensor_fill(ones, 1.0f);
  blua_tensor *head = blua_tensor_narrow(u, 0, 0, 3, &err), *tail = blua_tensor_narrow(u, 0, 1, 3, &err);
  CHECK(blua_tensor_addcmul(head, 1.0, tail, ones, 0, &err) == BLUA_OK);
  CHECK(entry(u, 0) == 3 && entry(u, 1) == 5 && entry(u, 2) == 7 && entry(u, 3) == 4);
  CHECK(blua_tensor_addcmul(t, 1.0, at, b, 0, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: 2x3 += 3x2 * 2x3") == 0);
  blua_tensor *all[] = {t, a, b, at, bt, ac, bc, s1, s2, u, ones, head, tail};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

static void test_addmv_addr(void) {
  blua_err err;
  const float mv[] = {1, 2, 3, 4, 5, 6}, xv[] = {1, -1, 2}, yv[] = {10, 20};
  blua_tensor *m = matrix(2, 3, mv), *x = vector(3, xv), *y = vector(2, yv);
  CHECK(blua_addmv(y, 0.5f, 2.0f, m, x, &err) == BLUA_OK);
  CHECK(entry(y, 0) == 5 + 2 * (1 - 2 + 6) && entry(y, 1) == 10 + 2 * (4 - 5 + 12));
  /* m transposed (3x2) times a strided 3-vector: every other entry of a 6-vector */
  blua_tensor *mt = blua_tensor_transpose(m, &err);
  const float lv[] = {1, 9, 1, 9, 1, 9};
  blua_tensor *l = vector(6, lv), *ls = blua_tensor_view(l, 2, 3, 2, &err);
  blua_tensor *col = blua_tensor_select(ls, 1, 0, &err); /* {1, 1, 1}, stride 2 */
  blua_tensor *z = blua_tensor_new1d(2, &err);
  blua_tensor *lhs = blua_tensor_transpose(mt, &err); /* back to 2x3 through two transposes */
  CHECK(blua_addmv(z, 0.0f, 1.0f, lhs, col, &err) == BLUA_OK);
  CHECK(entry(z, 0) == 6 && entry(z, 1) == 15);
  blua_tensor *w = blua_tensor_new1d(3, &err);
  CHECK(blua_addmv(w, 0.0f, 1.0f, mt, z, &err) == BLUA_OK); /* mt·{6, 15} */
  CHECK(entry(w, 0) == 66 && entry(w, 1) == 87 && entry(w, 2) == 108);
  /* the result sharing the vector's memory */
  const float sq[] = {2, 1, 1, 3}, pv[] = {1, 2};
  blua_tensor *s = matrix(2, 2, sq), *p = vector(2, pv);
  CHECK(blua_addmv(p, 0.0f, 1.0f, s, p, &err) == BLUA_OK);
  CHECK(entry(p, 0) == 4 && entry(p, 1) == 7);
  /* addr: a = beta a + alpha x yᵀ (x = y = {4, 7}); then x a column of a itself */
  CHECK(blua_addr(s, 1.0f, 1.0f, p, p, &err) == BLUA_OK);
  CHECK(entry(s, 0) == 2 + 16 && entry(s, 1) == 1 + 28 && entry(s, 2) == 1 + 28 && entry(s, 3) == 3 + 49);
  blua_tensor *sc = blua_tensor_select(s, 1, 0, &err); /* column 1 {18, 29} */
  CHECK(blua_addr(s, 0.0f, 1.0f, sc, p, &err) == BLUA_OK);
  CHECK(entry(s, 0) == 18 * 4 && entry(s, 1) == 18 * 7 && entry(s, 2) == 29 * 4 && entry(s, 3) == 29 * 7);
  /* an empty inner dimension: beta·y, and 0 when beta is 0 even over NaN */
  blua_tensor *e = blua_tensor_new2d(2, 0, &err), *e0 = blua_tensor_new1d(0, &err);
  blua_tensor_fill(y, NAN);
  CHECK(blua_addmv(y, 0.0f, 1.0f, e, e0, &err) == BLUA_OK);
  CHECK(entry(y, 0) == 0 && entry(y, 1) == 0);
  CHECK(blua_addmv(y, 1.0f, 1.0f, m, y, &err) == BLUA_ERROR);
  CHECK(strstr(err.msg, "size mismatch: 2 + 2x3 * 2") == err.msg);
  CHECK(blua_addr(m, 1.0f, 1.0f, x, x, &err) == BLUA_ERROR);
  CHECK(strstr(err.msg, "size mismatch: 2x3 + 3 (x) 3") == err.msg);
  blua_tensor *all[] = {m, x, y, mt, l, ls, col, z, lhs, w, s, p, sc, e, e0};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

static void test_sequences(void) {
  blua_err err;
  blua_tensor *r = blua_tensor_range(1, 2, 0.25, &err);
  CHECK(r && r->size[0] == 5 && entry(r, 4) == 2.0f && entry(r, 1) == 1.25f);
  blua_tensor_release(r);
  r = blua_tensor_range(3, -3, -3, &err);
  CHECK(r && r->size[0] == 3 && entry(r, 2) == -3.0f);
  blua_tensor_release(r);
  CHECK(blua_tensor_range(0, 1e300, 1e-300, &err) == NULL && strstr(err.msg, "tensor too large") == err.msg);
  CHECK(blua_tensor_range(0, 1, -1, &err) == NULL && strstr(err.msg, "bad range") == err.msg);
  CHECK(blua_tensor_range(0, 1, 0, &err) == NULL);
  CHECK(blua_tensor_range(NAN, 1, 1, &err) == NULL);
  CHECK(blua_tensor_range(0, 1, NAN, &err) == NULL);
  CHECK(blua_tensor_range(-DBL_MAX, DBL_MAX, 1, &err) == NULL);
  r = blua_tensor_linspace(-1, 1, 5, 0, &err);
  CHECK(r && entry(r, 0) == -1 && entry(r, 1) == -0.5f && entry(r, 2) == 0 && entry(r, 4) == 1);
  blua_tensor_release(r);
  r = blua_tensor_linspace(-2, 3, 6, 1, &err);
  CHECK(r && entry(r, 0) == 0.01f && entry(r, 2) == 1 && entry(r, 5) == 1000);
  blua_tensor_release(r);
  r = blua_tensor_linspace(7, 7, 1, 0, &err);
  CHECK(r && r->size[0] == 1 && entry(r, 0) == 7);
  blua_tensor_release(r);
  CHECK(blua_tensor_linspace(0, 1, 1, 0, &err) == NULL && strstr(err.msg, "bad number of points") == err.msg);
  CHECK(blua_tensor_linspace(0, 1, 0, 0, &err) == NULL);
  CHECK(blua_tensor_linspace(0, INFINITY, 3, 0, &err) == NULL && strstr(err.msg, "bad bounds") == err.msg);
  CHECK(blua_tensor_linspace(-DBL_MAX, DBL_MAX, 3, 0, &err) == NULL);
  CHECK(blua_tensor_linspace(0, 1, BLUA_MAX_ELEMENTS + 1, 0, &err) == NULL && strstr(err.msg, "too large"));
}

static void test_diag_tri_trace(void) {
  blua_err err;
  const float mv[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  blua_tensor *m = matrix(3, 4, mv), *mt = blua_tensor_transpose(m, &err);
  blua_tensor *d = blua_tensor_diag(m, 1, &err);
  CHECK(d && d->size[0] == 3 && entry(d, 0) == 2 && entry(d, 2) == 12);
  blua_tensor_release(d);
  d = blua_tensor_diag(mt, 1, &err); /* the transpose's diagonal 1 is m's diagonal -1 */
  CHECK(d && d->size[0] == 2 && entry(d, 0) == 5 && entry(d, 1) == 10);
  blua_tensor_release(d);
  d = blua_tensor_diag(m, 4, &err);
  CHECK(d && d->size[0] == 0);
  blua_tensor_release(d);
  CHECK(blua_tensor_diag(m, 5, &err) == NULL && strstr(err.msg, "bad diagonal") == err.msg);
  CHECK(blua_tensor_diag(m, -4, &err) == NULL);
  CHECK(blua_tensor_diag(m, INT64_MAX, &err) == NULL);
  CHECK(blua_tensor_diag(m, INT64_MIN, &err) == NULL);
  const float vv[] = {5, 6};
  blua_tensor *v = vector(2, vv);
  d = blua_tensor_diag(v, -2, &err);
  CHECK(d && d->size[0] == 4 && *blua_tensor_at(d, 2, 0) == 5 && *blua_tensor_at(d, 3, 1) == 6 && blua_tensor_sum(d) == 11);
  blua_tensor_release(d);
  CHECK(blua_tensor_diag(v, (int64_t)1 << 33, &err) == NULL && strstr(err.msg, "tensor too large") == err.msg);
  double tr = 0;
  CHECK(blua_tensor_trace(mt, &tr, &err) == BLUA_OK && tr == 18);
  CHECK(blua_tensor_trace(v, &tr, &err) == BLUA_ERROR && strcmp(err.msg, "a matrix expected: 2") == 0);
  blua_tensor *lo = blua_tensor_tri(mt, 0, 0, &err), *up = blua_tensor_tri(mt, 1, 1, &err);
  CHECK(lo && up && lo->size[0] == 4 && lo->size[1] == 3);
  for (int64_t i = 0; i < 4; i++)
    for (int64_t j = 0; j < 3; j++) {
      float want = *blua_tensor_at(mt, i, j);
      CHECK(*blua_tensor_at(lo, i, j) == (j <= i ? want : 0));
      CHECK(*blua_tensor_at(up, i, j) == (j - i >= 1 ? want : 0));
    }
  blua_tensor_release(lo);
  blua_tensor_release(up);
  lo = blua_tensor_tri(m, INT64_MIN, 0, &err);
  CHECK(lo && blua_tensor_sum(lo) == 0);
  blua_tensor_release(lo);
  CHECK(blua_tensor_tri(v, 0, 1, &err) == NULL);
  blua_tensor_release(m);
  blua_tensor_release(mt);
  blua_tensor_release(v);
}

static void test_repeat_equal(void) {
  blua_err err;
  const float mv[] = {1, 2, 3, 4, 5, 6};
  blua_tensor *m = matrix(2, 3, mv), *mt = blua_tensor_transpose(m, &err);
  int64_t reps[] = {2, 1, 2};
  blua_tensor *r = blua_tensor_repeat(mt, 3, reps, &err); /* 2 x 3 x 4 */
  CHECK(r && r->dim == 3 && r->size[0] == 2 && r->size[1] == 3 && r->size[2] == 4);
  for (int64_t k = 0; k < 24; k++) {
    int64_t j = k % 4, i = (k / 4) % 3;
    CHECK(entry(r, k) == *blua_tensor_at(mt, i, j % 2));
  }
  blua_tensor_release(r);
  int64_t few[] = {2};
  CHECK(blua_tensor_repeat(m, 1, few, &err) == NULL && strstr(err.msg, "bad repetitions") == err.msg);
  int64_t huge[] = {INT64_MAX / 2, 3};
  CHECK(blua_tensor_repeat(m, 2, huge, &err) == NULL && strstr(err.msg, "tensor too large") == err.msg);
  int64_t neg[] = {1, -1};
  CHECK(blua_tensor_repeat(m, 2, neg, &err) == NULL);
  int64_t none[] = {0, 5};
  r = blua_tensor_repeat(m, 2, none, &err);
  CHECK(r && blua_tensor_nelement(r) == 0 && r->size[1] == 15);
  blua_tensor_release(r);
  blua_tensor *c = blua_tensor_clone(mt, &err);
  CHECK(blua_tensor_equal(c, mt) && !blua_tensor_equal(c, m));
  *blua_tensor_at(c, 2, 1) = NAN;
  *blua_tensor_at(m, 1, 2) = NAN; /* the same entry seen from m: NaN on both sides */
  CHECK(!blua_tensor_equal(c, mt));
  blua_tensor_release(c);
  blua_tensor_release(m);
  blua_tensor_release(mt);
}

/* A 3-D tensor of n x p x q entries from v, row-major. */
static blua_tensor *cube(int64_t n, int64_t p, int64_t q, const float *v) {
  blua_err err;
  int64_t size[3] = {n, p, q};
  blua_tensor *t = blua_tensor_empty_nd(3, size, &err);
  memcpy(blua_tensor_data(t), v, (size_t)(n * p * q) * sizeof(float));
  return t;
}

/* Σ_k a[i][j][k] b[i][k][l] for contiguous a (n x p x q) and b (n x q x r), in double. */
/* Entry (i, j, l) of any 3-D view. */
static float *at3(const blua_tensor *t, int64_t i, int64_t j, int64_t l) {
  return blua_tensor_data(t) + i * t->stride[0] + j * t->stride[1] + l * t->stride[2];
}

static double product_entry(const float *a, const float *b, int64_t p, int64_t q, int64_t r, int64_t i, int64_t j,
                            int64_t l) {
  double s = 0;
  for (int64_t k = 0; k < q; k++) s += (double)a[(i * p + j) * q + k] * (double)b[(i * q + k) * r + l];
  return s;
}

static void test_bmm(void) {
  blua_err err;
  const float av[] = {1, 2, 3, 4, 5, 6, -1, 0.5f, 2, 0, 3, -2}; /* 2 x 2 x 3 */
  const float bv[] = {1, 0, 2, 1, -1, 3, 0, 2, 1, 1, 4, -1};    /* 2 x 3 x 2 */
  blua_tensor *a = cube(2, 2, 3, av), *b = cube(2, 3, 2, bv);
  const float cv[] = {1, 1, 1, 1, 2, 2, 2, 2};
  blua_tensor *c = cube(2, 2, 2, cv);
  CHECK(blua_baddbmm(c, 0.5f, 2.0f, a, b, 0, &err) == BLUA_OK);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      for (int l = 0; l < 2; l++)
        CHECK(*at3(c, i, j, l) ==
              (float)(0.5 * cv[(i * 2 + j) * 2 + l] + 2.0 * product_entry(av, bv, 2, 3, 2, i, j, l)));
  /* the sum over the batch into a 2-D c */
  const float sv[] = {1, 2, 3, 4};
  blua_tensor *s = matrix(2, 2, sv);
  CHECK(blua_baddbmm(s, -1.0f, 1.0f, a, b, 1, &err) == BLUA_OK);
  for (int j = 0; j < 2; j++)
    for (int l = 0; l < 2; l++)
      CHECK(*blua_tensor_at(s, j, l) == (float)(-sv[j * 2 + l] + product_entry(av, bv, 2, 3, 2, 0, j, l) +
                                                  product_entry(av, bv, 2, 3, 2, 1, j, l)));
  /* permuted operands (b stored as its per-batch transposes) equal contiguous ones */
  blua_tensor *btt = NULL;
  int64_t tsize[3] = {2, 2, 3};
  blua_tensor *store = blua_tensor_empty_nd(3, tsize, &err);
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 3; k++)
      for (int l = 0; l < 2; l++) *at3(store, i, l, k) = bv[(i * 3 + k) * 2 + l];
  btt = blua_tensor_transpose_dims(store, 1, 2, &err);
  CHECK(btt && !blua_tensor_is_contiguous(btt));
  blua_tensor *c1 = cube(2, 2, 2, cv), *c2 = cube(2, 2, 2, cv);
  CHECK(blua_baddbmm(c1, 1.0f, 1.0f, a, btt, 0, &err) == BLUA_OK);
  CHECK(blua_baddbmm(c2, 1.0f, 1.0f, a, b, 0, &err) == BLUA_OK);
  CHECK(blua_tensor_equal(c1, c2));
  /* c sharing memory with a: c = a·a for square batches, each read before written */
  const float qv[] = {1, 2, 3, 4, 5, 6, 7, 8};
  blua_tensor *q = cube(2, 2, 2, qv);
  CHECK(blua_baddbmm(q, 0.0f, 1.0f, q, q, 0, &err) == BLUA_OK);
  const float sq[] = {7, 10, 15, 22, 67, 78, 91, 106};
  for (int k = 0; k < 8; k++) CHECK(blua_tensor_data(q)[k] == sq[k]);
  /* beta = 0 does not read NaN in c; an empty inner size scales c */
  blua_tensor *nanc = cube(2, 2, 2, cv);
  blua_tensor_fill(nanc, NAN);
  CHECK(blua_baddbmm(nanc, 0.0f, 1.0f, a, b, 0, &err) == BLUA_OK);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      for (int l = 0; l < 2; l++) CHECK(*at3(nanc, i, j, l) == (float)product_entry(av, bv, 2, 3, 2, i, j, l));
  int64_t e1[3] = {2, 2, 0}, e2[3] = {2, 0, 2};
  blua_tensor *ea = blua_tensor_empty_nd(3, e1, &err), *eb = blua_tensor_empty_nd(3, e2, &err);
  blua_tensor *ec = cube(2, 2, 2, cv);
  CHECK(blua_baddbmm(ec, 3.0f, 1.0f, ea, eb, 0, &err) == BLUA_OK);
  for (int k = 0; k < 8; k++) CHECK(blua_tensor_data(ec)[k] == 3 * cv[k]);
  /* errors name the shapes */
  CHECK(blua_baddbmm(c, 1.0f, 1.0f, a, a, 0, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: 2x2x3 * 2x2x3 -> 2x2x2 (n x p x q * n x q x r -> n x p x r)") == 0);
  CHECK(blua_baddbmm(c, 1.0f, 1.0f, a, b, 1, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: 2x2x3 * 2x3x2 -> 2x2x2 (n x p x q * n x q x r summed into p x r)") == 0);
  CHECK(blua_baddbmm(s, 1.0f, 1.0f, s, s, 1, &err) == BLUA_ERROR);
  blua_tensor *all[] = {a, b, c, s, store, btt, c1, c2, q, nanc, ea, eb, ec};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

int main(void) {
  test_bmm();
  test_addcmul();
  test_addmv_addr();
  test_sequences();
  test_diag_tri_trace();
  test_repeat_equal();
  return check_summary();
}
