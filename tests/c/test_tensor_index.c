/* Unit tests of the indexing and masking core (runtime/tensor_index.c): exact values on small
 * tensors and on transposed views, sources that share memory with the tensor written, and the
 * error paths (status and message, the tensor left as it was). */
#include <math.h>
#include <string.h>

#include "blua/blua.h"
#include "blua/tensor_index.h"
#include "check.h"

/* A rows x cols tensor holding vals in row-major order. */
static blua_tensor *matrix(int64_t rows, int64_t cols, const float *vals) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(rows, cols, &err);
  memcpy(blua_tensor_data(t), vals, (size_t)(rows * cols) * sizeof *vals);
  return t;
}

static blua_tensor *vector(int64_t n, const float *vals) {
  blua_err err;
  blua_tensor *t = blua_tensor_new1d(n, &err);
  if (n) memcpy(blua_tensor_data(t), vals, (size_t)n * sizeof *vals);
  return t;
}

/* Whether t's entries in row-major order are want[0..n). */
static int holds(const blua_tensor *t, const float *want, int64_t n) {
  if (blua_tensor_nelement(t) != n) return 0;
  for (int64_t k = 0; k < n; k++)
    if (blua_tensor_data(t)[blua_tensor_offset_of(t, k)] != want[k]) return 0;
  return 1;
}

static void test_index_ops(void) {
  blua_err err;
  const float base[] = {1, 2, 3, 4, 5, 6};
  blua_tensor *t = matrix(3, 2, base);
  int64_t rows[] = {2, 0};
  CHECK(blua_tensor_index_fill(t, 0, rows, 2, -1.0f, &err) == BLUA_OK);
  CHECK(holds(t, (const float[]){-1, -1, 3, 4, -1, -1}, 6));

  const float sv[] = {10, 20, 30, 40};
  blua_tensor *src = matrix(2, 2, sv);
  memcpy(blua_tensor_data(t), base, sizeof base);
  CHECK(blua_tensor_index_copy(t, 0, rows, 2, src, &err) == BLUA_OK);
  CHECK(holds(t, (const float[]){30, 40, 3, 4, 10, 20}, 6));

  int64_t twice[] = {1, 1};
  CHECK(blua_tensor_index_add(t, 0, twice, 2, src, &err) == BLUA_OK);
  CHECK(holds(t, (const float[]){30, 40, 43, 64, 10, 20}, 6));

  /* along dimension 1 of a transposed view: columns of the view are rows of the storage */
  memcpy(blua_tensor_data(t), base, sizeof base);
  blua_tensor *tr = blua_tensor_transpose(t, &err); /* 2x3: {{1,3,5},{2,4,6}} */
  int64_t col[] = {2};
  const float cv[] = {7, 8};
  blua_tensor *c = matrix(2, 1, cv);
  CHECK(blua_tensor_index_copy(tr, 1, col, 1, c, &err) == BLUA_OK);
  CHECK(holds(t, (const float[]){1, 2, 3, 4, 7, 8}, 6));

  /* errors leave t alone */
  int64_t bad[] = {0, 3};
  CHECK(blua_tensor_index_fill(t, 0, bad, 2, 9.0f, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "index out of range: entry 2 is 4, not in 1..3 (dimension 1 of 3x2)") == 0);
  int64_t huge[] = {INT64_MAX};
  CHECK(blua_tensor_index_fill(t, 0, huge, 1, 9.0f, &err) == BLUA_ERROR);
  CHECK(strstr(err.msg, "entry 1 is 9223372036854775807") != NULL);
  CHECK(blua_tensor_index_fill(t, 2, rows, 2, 9.0f, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad dimension: 3 for a 2-D tensor") == 0);
  CHECK(blua_tensor_index_add(t, 0, rows, 1, src, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: src is 2x2, expected 1x2 (1 index along dimension 1 of 3x2)") == 0);
  CHECK(holds(t, (const float[]){1, 2, 3, 4, 7, 8}, 6));
  CHECK(blua_tensor_index_fill(t, 0, NULL, 0, 9.0f, &err) == BLUA_OK);

  /* a source that is t itself is read as it was */
  int64_t swap[] = {1, 0, 2};
  CHECK(blua_tensor_index_copy(t, 0, swap, 3, t, &err) == BLUA_OK);
  CHECK(holds(t, (const float[]){3, 4, 1, 2, 7, 8}, 6));
  blua_tensor_release(c);
  blua_tensor_release(tr);
  blua_tensor_release(src);
  blua_tensor_release(t);
}

static void test_masks(void) {
  blua_err err;
  const float base[] = {1, 2, 3, 4, 5, 6};
  blua_tensor *t = matrix(2, 3, base);
  blua_tensor *m = vector(6, (const float[]){0, 1, 1, 0, 0, 1});
  CHECK(blua_tensor_mask_count(m, &err) == 3);
  blua_tensor *s = blua_tensor_masked_select(t, m, &err);
  CHECK(s && s->dim == 1 && holds(s, (const float[]){2, 3, 6}, 3));
  blua_tensor_release(s);

  /* the transposed view reads t column by column */
  blua_tensor *tr = blua_tensor_transpose(t, &err); /* {{1,4},{2,5},{3,6}} */
  s = blua_tensor_masked_select(tr, m, &err);
  CHECK(s && holds(s, (const float[]){4, 2, 6}, 3));
  blua_tensor_release(s);

  CHECK(blua_tensor_masked_fill(tr, m, 0.0f, &err) == BLUA_OK);
  CHECK(holds(t, (const float[]){1, 0, 3, 0, 5, 0}, 6));
  blua_tensor *src = vector(4, (const float[]){7, 8, 9, 10});
  CHECK(blua_tensor_masked_copy(t, m, src, &err) == BLUA_OK);
  CHECK(holds(t, (const float[]){1, 7, 8, 0, 5, 9}, 6));

  /* errors */
  blua_tensor *half = vector(6, (const float[]){0, 1, 0.5f, 0, 0, 1});
  CHECK(blua_tensor_masked_fill(t, half, 1.0f, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad mask: entry 3 is 0.5, not 0 or 1") == 0);
  blua_tensor *nanm = vector(1, (const float[]){NAN});
  CHECK(blua_tensor_mask_count(nanm, &err) == -1);
  CHECK(strstr(err.msg, "nan, not 0 or 1") != NULL);
  blua_tensor *short_mask = vector(5, (const float[]){1, 1, 1, 1, 1});
  CHECK(blua_tensor_masked_select(t, short_mask, &err) == NULL);
  CHECK(strcmp(err.msg, "size mismatch: mask 5 has 5 elements, tensor 2x3 has 6") == 0);
  blua_tensor *two = vector(2, (const float[]){1, 2});
  CHECK(blua_tensor_masked_copy(t, m, two, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: src 2 has 2 elements, the mask selects 3") == 0);
  CHECK(holds(t, (const float[]){1, 7, 8, 0, 5, 9}, 6));

  /* a mask that is t itself */
  blua_tensor *bits = vector(3, (const float[]){1, 0, 1});
  CHECK(blua_tensor_masked_fill(bits, bits, 4.0f, &err) == BLUA_OK);
  CHECK(holds(bits, (const float[]){4, 0, 4}, 3));

  /* empty */
  blua_tensor *e = vector(0, NULL);
  s = blua_tensor_masked_select(e, e, &err);
  CHECK(s && blua_tensor_nelement(s) == 0);
  blua_tensor_release(s);

  blua_tensor *all[] = {t, m, tr, src, half, nanm, short_mask, two, bits, e};
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) blua_tensor_release(all[k]);
}

static void test_gather_scatter(void) {
  blua_err err;
  blua_tensor *t = matrix(2, 2, (const float[]){1, 2, 3, 4});
  blua_tensor *idx = matrix(2, 2, (const float[]){1, 1, 2, 1});
  blua_tensor *g = blua_tensor_gather(t, 1, idx, &err);
  CHECK(g && holds(g, (const float[]){1, 1, 4, 3}, 4));
  blua_tensor_release(g);
  g = blua_tensor_gather(t, 0, idx, &err); /* out[i][j] = t[idx[i][j]][j] */
  CHECK(g && holds(g, (const float[]){1, 2, 3, 2}, 4));
  blua_tensor_release(g);

  /* a transposed index and tensor */
  blua_tensor *tt = blua_tensor_transpose(t, &err); /* {{1,3},{2,4}} */
  blua_tensor *it = blua_tensor_transpose(idx, &err); /* {{1,2},{1,1}} */
  g = blua_tensor_gather(tt, 1, it, &err);
  CHECK(g && holds(g, (const float[]){1, 3, 2, 2}, 4));
  blua_tensor_release(g);

  blua_tensor *z = blua_tensor_new2d(2, 5, &err);
  blua_tensor *pos = matrix(2, 2, (const float[]){1, 2, 4, 5});
  CHECK(blua_tensor_scatter(z, 1, pos, t, &err) == BLUA_OK);
  CHECK(holds(z, (const float[]){1, 2, 0, 0, 0, 0, 0, 0, 3, 4}, 10));
  CHECK(blua_tensor_scatter_fill(z, 1, pos, -1.0f, &err) == BLUA_OK);
  CHECK(holds(z, (const float[]){-1, -1, 0, 0, 0, 0, 0, 0, -1, -1}, 10));

  /* errors leave t alone */
  blua_tensor *out = matrix(1, 2, (const float[]){1, 3});
  CHECK(blua_tensor_gather(t, 0, out, &err) == NULL);
  CHECK(strcmp(err.msg, "index out of range: entry 2 of the index is 3, not in 1..2 (dimension 1 of 2x2)") == 0);
  blua_tensor *frac = matrix(1, 2, (const float[]){1, 1.5f});
  CHECK(blua_tensor_scatter_fill(t, 0, frac, 0.0f, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad index: entry 2 of the index is 1.5, not an integer") == 0);
  blua_tensor *big = matrix(1, 2, (const float[]){1, 2147483648.0f});
  CHECK(blua_tensor_scatter_fill(t, 0, big, 0.0f, &err) == BLUA_ERROR);
  CHECK(strstr(err.msg, "is 2147483648, not in 1..2") != NULL);
  blua_tensor *wide = blua_tensor_new2d(1, 3, &err);
  blua_tensor_fill(wide, 1.0f);
  CHECK(blua_tensor_gather(t, 0, wide, &err) == NULL);
  CHECK(strcmp(err.msg, "size mismatch: index 1x3 for tensor 2x2 (the index needs the tensor's dimensions and its "
                        "sizes outside dimension 1)") == 0);
  CHECK(blua_tensor_scatter(t, 1, idx, out, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: src 1x2 for index 2x2 (src needs the index's sizes, or more along "
                        "dimension 2)") == 0);
  CHECK(holds(t, (const float[]){1, 2, 3, 4}, 4));

  /* the index is t itself: read as it was */
  blua_tensor *self = matrix(2, 2, (const float[]){2, 2, 1, 1});
  CHECK(blua_tensor_scatter_fill(self, 1, self, 5.0f, &err) == BLUA_OK);
  CHECK(holds(self, (const float[]){2, 5, 5, 1}, 4));

  blua_tensor *all[] = {t, idx, tt, it, z, pos, out, frac, big, wide, self};
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) blua_tensor_release(all[k]);
}

int main(void) {
  test_index_ops();
  test_masks();
  test_gather_scatter();
  return check_summary();
}
