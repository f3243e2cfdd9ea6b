/* Unit tests of the Lua-free tensor core: creation, views, arithmetic, gemm, reductions,
 * the generator and the error paths (status and message, never an abort). */
#include <math.h>
#include <string.h>

#include "blua/blua.h"
#include "blua/optim.h"
#include "check.h"

static void test_create_and_release(void) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(3, 4, &err);
  CHECK(t != NULL);
  CHECK(blua_tensor_nelement(t) == 12);
  CHECK(blua_tensor_is_contiguous(t));
  CHECK(((uintptr_t)blua_tensor_data(t) & 63) == 0);
  CHECK(blua_tensor_sum(t) == 0.0);
  blua_tensor_release(t);

  CHECK(blua_tensor_new2d(-1, 2, &err) == NULL);
  CHECK(strstr(err.msg, "bad size") != NULL);
  CHECK(blua_tensor_new2d(BLUA_MAX_ELEMENTS, 2, &err) == NULL);
  CHECK(strstr(err.msg, "too large") != NULL);
  CHECK(blua_tensor_new(3, 1, 1, &err) == NULL);
}

static void test_views_share_storage(void) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(4, 3, &err);
  for (int i = 0; i < 12; i++) blua_tensor_data(t)[i] = (float)i;
  blua_tensor *v = blua_tensor_narrow(t, 0, 1, 2, &err);
  CHECK(v && v->size[0] == 2 && *blua_tensor_at(v, 0, 0) == 3.0f);
  blua_tensor *tr = blua_tensor_transpose(t, &err);
  CHECK(tr->size[0] == 3 && tr->size[1] == 4 && *blua_tensor_at(tr, 2, 1) == 5.0f);
  CHECK(!blua_tensor_is_contiguous(tr));
  blua_tensor_release(t); /* the views keep the storage alive */
  CHECK(*blua_tensor_at(v, 1, 2) == 8.0f);
  CHECK(blua_tensor_narrow(v, 0, 1, 5, &err) == NULL);
  CHECK(strstr(err.msg, "out of range") != NULL);
  blua_tensor *c = blua_tensor_contiguous(tr, &err);
  CHECK(blua_tensor_is_contiguous(c) && *blua_tensor_at(c, 2, 1) == 5.0f);
  blua_tensor_release(c);
  blua_tensor_release(v);
  blua_tensor_release(tr);
}

static void test_arithmetic(void) {
  blua_err err;
  blua_tensor *a = blua_tensor_new2d(2, 2, &err), *b = blua_tensor_new2d(2, 2, &err);
  blua_tensor *bad = blua_tensor_new2d(2, 3, &err);
  for (int i = 0; i < 4; i++) {
    blua_tensor_data(a)[i] = (float)(i + 1);
    blua_tensor_data(b)[i] = 2.0f;
  }
  CHECK(blua_tensor_add(a, a, 0.5f, b, &err) == BLUA_OK);
  CHECK(blua_tensor_sum(a) == 14.0);
  CHECK(blua_tensor_cmul(a, a, b, &err) == BLUA_OK && blua_tensor_sum(a) == 28.0);
  CHECK(blua_tensor_add(a, a, 1.0f, bad, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: 2x2 and 2x3") == 0);
  CHECK(blua_tensor_affine(a, a, 0.0f, 1.0f, &err) == BLUA_OK && blua_tensor_sum(a) == 4.0);
  blua_tensor_release(a);
  blua_tensor_release(b);
  blua_tensor_release(bad);
}

/* The binary ops (add, cmul, cdiv, cmax, cmin) on contiguous tensors and on transposed views
 * give, bit for bit, the scalar expression of each op, special values included. */
static float binary_reference(int op, float x, float y, float alpha) {
  switch (op) {
    case 0: return x + alpha * y;
    case 1: return x * y;
    case 2: return x / y;
    case 3: return x > y ? x : y;
    default: return x < y ? x : y;
  }
}

static void test_binary_bits(void) {
  enum { R = 37, C = 29 };
  const float special[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-45f, -3.0f, 2.5f, 3.4e38f};
  const int nspecial = (int)(sizeof special / sizeof special[0]);
  blua_err err;
  blua_tensor *a = blua_tensor_new2d(R, C, &err), *b = blua_tensor_new2d(R, C, &err);
  blua_tensor *r = blua_tensor_new2d(R, C, &err), *at = blua_tensor_new2d(C, R, &err), *bt = blua_tensor_new2d(C, R, &err);
  blua_tensor *rt = blua_tensor_new2d(C, R, &err);
  blua_rng g;
  blua_rng_seed(&g, 11);
  for (int i = 0; i < R * C; i++) {
    float x = (float)blua_rng_normal(&g), y = (float)blua_rng_normal(&g);
    if (i % 5 == 0) x = special[(i / 5) % nspecial];
    if (i % 7 == 0) y = special[(i / 7) % nspecial];
    blua_tensor_data(a)[i] = x;
    blua_tensor_data(b)[i] = y;
  }
  /* the pairs where max/min by '>' or '<' differ from other forms: signed zeros, one NaN */
  const float pairs[][2] = {{0.0f, -0.0f}, {-0.0f, 0.0f}, {NAN, 1.0f}, {1.0f, NAN}};
  for (int i = 0; i < 4; i++) {
    blua_tensor_data(a)[i + 1] = pairs[i][0];
    blua_tensor_data(b)[i + 1] = pairs[i][1];
  }
  /* the transposes' storage holds the same entries, so their views are R x C again */
  for (int i = 0; i < R; i++)
    for (int j = 0; j < C; j++) {
      blua_tensor_data(at)[j * R + i] = blua_tensor_data(a)[i * C + j];
      blua_tensor_data(bt)[j * R + i] = blua_tensor_data(b)[i * C + j];
    }
  blua_tensor *av = blua_tensor_transpose(at, &err), *bv = blua_tensor_transpose(bt, &err), *rv = blua_tensor_transpose(rt, &err);
  for (int op = 0; op < 5; op++) {
    const float alpha = 0.75f;
    int (*fn)(blua_tensor *, const blua_tensor *, const blua_tensor *, blua_err *) =
        op == 1 ? blua_tensor_cmul : op == 2 ? blua_tensor_cdiv : op == 3 ? blua_tensor_cmax : blua_tensor_cmin;
    /* contiguous; three transposes (one block of memory, walked in memory order); and mixed
     * layouts (a transposed a with a contiguous b into a transposed r: walked by runs) */
    int ok1 = op == 0 ? blua_tensor_add(r, a, alpha, b, &err) : fn(r, a, b, &err);
    int ok2 = op == 0 ? blua_tensor_add(rv, av, alpha, bv, &err) : fn(rv, av, bv, &err);
    CHECK(ok1 == BLUA_OK && ok2 == BLUA_OK);
    int same = 1;
    for (int i = 0; i < R; i++)
      for (int j = 0; j < C; j++) {
        float want = binary_reference(op, blua_tensor_data(a)[i * C + j], blua_tensor_data(b)[i * C + j], alpha);
        float got = blua_tensor_data(r)[i * C + j], got_view = *blua_tensor_at(rv, i, j);
        same &= memcmp(&want, &got, sizeof want) == 0 && memcmp(&want, &got_view, sizeof want) == 0;
      }
    CHECK(same);
    int ok3 = op == 0 ? blua_tensor_add(rv, av, alpha, b, &err) : fn(rv, av, b, &err);
    CHECK(ok3 == BLUA_OK);
    same = 1;
    for (int i = 0; i < R; i++)
      for (int j = 0; j < C; j++) {
        float want = blua_tensor_data(r)[i * C + j], got = *blua_tensor_at(rv, i, j);
        same &= memcmp(&want, &got, sizeof want) == 0;
      }
    CHECK(same);
  }
  blua_tensor *list[] = {a, b, r, at, bt, rt, av, bv, rv};
  for (int i = 0; i < 9; i++) blua_tensor_release(list[i]);
}

/* Adam on the sum of two gradients (blua_adam_steps_sum) has the bits of adding them first
 * (blua_tensors_accumulate) and stepping after, for contiguous tensors and for a transposed
 * view, over several steps. */
static void test_adam_sum(void) {
  enum { R = 9, C = 7 };
  blua_err err;
  blua_rng g;
  blua_rng_seed(&g, 5);
  blua_tensor *t[2][6]; /* per copy: x1 (R x C), x2 (C x R, used transposed), g1, g2 of x1, m, v of x1 */
  blua_tensor *gs[2][2], *gt[2][2], *m2[2], *v2[2];
  for (int k = 0; k < 2; k++) {
    blua_rng_seed(&g, 5);
    t[k][0] = blua_tensor_new2d(R, C, &err);
    t[k][1] = blua_tensor_new2d(C, R, &err);
    for (int i = 0; i < R * C; i++) {
      blua_tensor_data(t[k][0])[i] = (float)blua_rng_normal(&g);
      blua_tensor_data(t[k][1])[i] = (float)blua_rng_normal(&g);
    }
    for (int j = 0; j < 2; j++) {
      gs[k][j] = blua_tensor_new2d(R, C, &err);
      gt[k][j] = blua_tensor_new2d(C, R, &err);
    }
    t[k][2] = blua_tensor_new2d(R, C, &err);
    t[k][3] = blua_tensor_new2d(R, C, &err);
    m2[k] = blua_tensor_new2d(C, R, &err);
    v2[k] = blua_tensor_new2d(C, R, &err);
    t[k][4] = blua_tensor_transpose(t[k][1], &err);
    t[k][5] = NULL;
  }
  int same = 1;
  for (int step = 1; step <= 3; step++) {
    blua_rng_seed(&g, 100 + (uint64_t)step);
    for (int i = 0; i < R * C; i++) {
      float a = (float)blua_rng_normal(&g), b = (float)blua_rng_normal(&g), c = (float)blua_rng_normal(&g),
            d = (float)blua_rng_normal(&g);
      for (int k = 0; k < 2; k++) {
        blua_tensor_data(gs[k][0])[i] = a;
        blua_tensor_data(gs[k][1])[i] = b;
        blua_tensor_data(gt[k][0])[i] = c;
        blua_tensor_data(gt[k][1])[i] = d;
      }
    }
    for (int k = 0; k < 2; k++) {
      blua_tensor *gtv[2] = {blua_tensor_transpose(gt[k][0], &err), blua_tensor_transpose(gt[k][1], &err)};
      blua_tensor *mt = blua_tensor_transpose(m2[k], &err), *vt = blua_tensor_transpose(v2[k], &err);
      blua_tensor *x[2] = {t[k][0], t[k][4]}, *g1[2] = {gs[k][0], gtv[0]}, *g2[2] = {gs[k][1], gtv[1]};
      blua_tensor *m[2] = {t[k][2], mt}, *v[2] = {t[k][3], vt};
      int status;
      if (k == 0) {
        status = blua_tensors_accumulate(2, g1, (const blua_tensor *const *)g2, &err) ||
                 blua_adam_steps(2, x, (const blua_tensor *const *)g1, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, step, &err);
      } else {
        status = blua_adam_steps_sum(2, x, (const blua_tensor *const *)g1, (const blua_tensor *const *)g2, m, v, 1e-2,
                                     0.9, 0.999, 1e-8, 0.01, step, &err);
      }
      CHECK(status == BLUA_OK);
      blua_tensor_release(gtv[0]);
      blua_tensor_release(gtv[1]);
      blua_tensor_release(mt);
      blua_tensor_release(vt);
    }
  }
  for (int i = 0; i < R * C; i++)
    same &= blua_tensor_data(t[0][0])[i] == blua_tensor_data(t[1][0])[i] &&
            blua_tensor_data(t[0][1])[i] == blua_tensor_data(t[1][1])[i] &&
            blua_tensor_data(t[0][2])[i] == blua_tensor_data(t[1][2])[i] &&
            blua_tensor_data(m2[0])[i] == blua_tensor_data(m2[1])[i];
  CHECK(same);
  /* a missing or misshapen second gradient is an error */
  blua_tensor *x[1] = {t[0][0]}, *g1[1] = {gs[0][0]}, *bad[1] = {gt[0][0]}, *m[1] = {t[0][2]}, *v[1] = {t[0][3]};
  CHECK(blua_adam_steps_sum(1, x, (const blua_tensor *const *)g1, (const blua_tensor *const *)bad, m, v, 1e-2, 0.9,
                            0.999, 1e-8, 0, 1, &err) == BLUA_ERROR);
  CHECK(strstr(err.msg, "size mismatch") != NULL);
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < 5; i++) blua_tensor_release(t[k][i]);
    for (int j = 0; j < 2; j++) {
      blua_tensor_release(gs[k][j]);
      blua_tensor_release(gt[k][j]);
    }
    blua_tensor_release(m2[k]);
    blua_tensor_release(v2[k]);
  }
}

/* Sums of several pairs at once: the same bits as one add per pair, a transposed view among
 * them, on a team of two threads and without one, and a shape mismatch refused before
 * anything is written. */
typedef struct {
  blua_tensor **d, **e, **s;
  int status;
} accumulate_case;

static int accumulate_in_team(void *ctx) {
  accumulate_case *c = ctx;
  blua_err err;
  c->status = blua_tensors_accumulate(3, c->d, (const blua_tensor *const *)c->s, &err);
  return 0;
}

static void test_accumulate(void) {
  blua_err err;
  int64_t rows[3] = {70, 1, 300}, cols[3] = {300, 9, 70};
  blua_tensor *d[3], *e[3], *s[3], *base[3];
  for (int team = 0; team < 2; team++) {
    for (int i = 0; i < 3; i++) {
      d[i] = blua_tensor_new2d(rows[i], cols[i], &err);
      e[i] = blua_tensor_new2d(rows[i], cols[i], &err);
      base[i] = blua_tensor_new2d(cols[i], rows[i], &err);
      blua_tensor_normal(d[i], 0.0f, 1.0f);
      CHECK(blua_tensor_copy(e[i], d[i], &err) == BLUA_OK);
      blua_tensor_normal(base[i], 0.0f, 1.0f);
      /* (the middle source a transposed view: added on its own) */
      s[i] = blua_tensor_transpose(base[i], &err);
      if (i != 1) {
        blua_tensor *t = s[i];
        s[i] = blua_tensor_clone(t, &err);
        blua_tensor_release(t);
      }
    }
    for (int i = 0; i < 3; i++) CHECK(blua_tensor_add(e[i], e[i], 1.0f, s[i], &err) == BLUA_OK);
    int threads = blua_get_num_threads();
    blua_set_num_threads(2);
    accumulate_case c = {d, e, s, BLUA_ERROR};
    if (team) blua_team_open(accumulate_in_team, &c);
    else accumulate_in_team(&c);
    blua_set_num_threads(threads);
    CHECK(c.status == BLUA_OK);
    for (int i = 0; i < 3; i++) CHECK(memcmp(blua_tensor_data(d[i]), blua_tensor_data(e[i]), (size_t)(rows[i] * cols[i]) * sizeof(float)) == 0);
    for (int i = 0; i < 3; i++) {
      blua_tensor_release(d[i]);
      blua_tensor_release(e[i]);
      blua_tensor_release(s[i]);
      blua_tensor_release(base[i]);
    }
  }
  blua_tensor *a = blua_tensor_new2d(2, 2, &err), *b = blua_tensor_new2d(2, 3, &err), *z = blua_tensor_new2d(2, 2, &err);
  blua_tensor_fill(a, 1.0f);
  blua_tensor_fill(z, 1.0f);
  blua_tensor *dl[2] = {a, a}, *sl[2] = {z, b};
  CHECK(blua_tensors_accumulate(2, dl, (const blua_tensor *const *)sl, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: 2x2 and 2x3") == 0);
  CHECK(blua_tensor_sum(a) == 4.0); /* (nothing written) */
  CHECK(blua_tensors_accumulate(-1, dl, (const blua_tensor *const *)sl, &err) == BLUA_ERROR);
  blua_tensor_release(a);
  blua_tensor_release(b);
  blua_tensor_release(z);
}

/* gemm against a naive triple loop, for plain, transposed and narrowed operands. */
static void test_mm(void) {
  blua_err err;
  blua_manual_seed(11);
  for (int trial = 0; trial < 30; trial++) {
    int m = 1 + trial % 7, k = 1 + (trial * 3) % 5, n = 1 + (trial * 5) % 6;
    blua_tensor *a = blua_tensor_new2d(m, k, &err), *bt = blua_tensor_new2d(n, k, &err);
    blua_tensor_normal(a, 0, 1);
    blua_tensor_normal(bt, 0, 1);
    blua_tensor *b = blua_tensor_transpose(bt, &err);
    blua_tensor *c = blua_tensor_new2d(m, n, &err);
    CHECK(blua_mm(c, 0.0f, 1.0f, a, b, &err) == BLUA_OK);
    double worst = 0;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        double s = 0;
        for (int p = 0; p < k; p++) s += (double)*blua_tensor_at(a, i, p) * *blua_tensor_at(b, p, j);
        worst = fmax(worst, fabs(s - *blua_tensor_at(c, i, j)));
      }
    CHECK(worst < 1e-4);
    blua_tensor_release(a);
    blua_tensor_release(b);
    blua_tensor_release(bt);
    blua_tensor_release(c);
  }
  blua_tensor *x = blua_tensor_new2d(2, 3, &err), *y = blua_tensor_new2d(2, 3, &err), *z = blua_tensor_new2d(2, 3, &err);
  CHECK(blua_mm(z, 0.0f, 1.0f, x, y, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: 2x3 * 2x3") == 0);
  blua_tensor_release(x);
  blua_tensor_release(y);
  blua_tensor_release(z);
}

static void test_reductions(void) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(2, 3, &err);
  float v[] = {1, -2, 3, 4, 5, -6};
  memcpy(blua_tensor_data(t), v, sizeof v);
  CHECK(blua_tensor_sum(t) == 5.0);
  CHECK(blua_tensor_max(t) == 5.0 && blua_tensor_min(t) == -6.0);
  CHECK_NEAR(blua_tensor_norm(t), sqrt(91.0), 1e-9);
  int64_t idx[2];
  blua_tensor_argmax_rows(t, idx);
  CHECK(idx[0] == 2 && idx[1] == 1);
  blua_tensor *s = blua_tensor_new2d(1, 3, &err);
  CHECK(blua_tensor_sum_rows(s, 0.0f, 1.0f, t, &err) == BLUA_OK);
  CHECK(blua_tensor_data(s)[2] == -3.0f);
  /* every column summed in row order, in double: the same float as a plain loop, across the
   * 256-column blocks of the row-by-row path, for a transposed view (a column stride) too,
   * and with beta and alpha */
  for (int shape = 0; shape < 2; shape++) {
    int64_t rows = shape ? 700 : 9, cols = shape ? 40 : 600; /* (a small matrix; a big one) */
    blua_tensor *m = blua_tensor_new2d(rows, cols, &err), *o = blua_tensor_new2d(1, cols, &err);
    blua_tensor *ot = blua_tensor_new2d(1, rows, &err);
    for (int64_t k = 0; k < rows * cols; k++) blua_tensor_data(m)[k] = (float)sin(0.37 * (double)k) * 1e3f;
    for (int64_t k = 0; k < cols; k++) blua_tensor_data(o)[k] = 0.5f;
    CHECK(blua_tensor_sum_rows(o, 2.0f, 0.25f, m, &err) == BLUA_OK);
    int same = 1;
    for (int64_t j = 0; j < cols; j++) {
      double acc = 0;
      for (int64_t i = 0; i < rows; i++) acc += blua_tensor_data(m)[i * cols + j];
      same &= blua_tensor_data(o)[j] == (float)(2.0f * 0.5f + 0.25f * acc);
    }
    CHECK(same);
    blua_tensor *v = blua_tensor_transpose(m, &err); /* cols x rows, column stride `cols` */
    CHECK(blua_tensor_sum_rows(ot, 0.0f, 1.0f, v, &err) == BLUA_OK);
    for (int64_t j = 0; j < rows; j++) {
      double acc = 0;
      for (int64_t i = 0; i < cols; i++) acc += blua_tensor_data(m)[j * cols + i];
      same &= blua_tensor_data(ot)[j] == (float)acc;
    }
    CHECK(same);
    blua_tensor_release(v);
    blua_tensor_release(m);
    blua_tensor_release(o);
    blua_tensor_release(ot);
  }
  CHECK(blua_tensor_all_finite(t));
  blua_tensor_data(t)[4] = NAN;
  CHECK(!blua_tensor_all_finite(t));
  CHECK(isnan(blua_tensor_max(t)));
  blua_tensor_release(s);
  blua_tensor_release(t);
}

static void test_random(void) {
  blua_rng r1, r2;
  blua_rng_seed(&r1, 123);
  blua_rng_seed(&r2, 123);
  int same = 1;
  for (int i = 0; i < 100; i++) same &= blua_rng_next(&r1) == blua_rng_next(&r2);
  CHECK(same);
  int64_t perm[50], seen[50] = {0};
  blua_rng_permutation(&r1, perm, 50);
  for (int i = 0; i < 50; i++) seen[perm[i]]++;
  int ok = 1;
  for (int i = 0; i < 50; i++) ok &= seen[i] == 1;
  CHECK(ok);
  double s = 0;
  for (int i = 0; i < 100000; i++) s += blua_rng_normal(&r1);
  CHECK(fabs(s / 100000) < 0.02);
}

/* N-d shapes: checked sizes, views of any dimension, reductions along one, matrix checks. */
static void test_nd(void) {
  blua_err err;
  int64_t size[3] = {2, 3, 4};
  blua_tensor *t = blua_tensor_new_nd(3, size, &err);
  CHECK(t && t->dim == 3 && blua_tensor_nelement(t) == 24 && blua_tensor_rows(t) == 2 && blua_tensor_cols(t) == 12);
  for (int i = 0; i < 24; i++) blua_tensor_data(t)[i] = (float)(i + 1);
  CHECK(blua_tensor_check_matrix(t, &err) == BLUA_OK);
  CHECK(*blua_tensor_at(t, 1, 5) == 18.0f);
  /* A transposed view is not a matrix of rows x cols: the check says so. */
  blua_tensor *tr = blua_tensor_transpose_dims(t, 1, 2, &err);
  CHECK(tr && tr->size[1] == 4 && tr->size[2] == 3);
  CHECK(blua_tensor_check_matrix(tr, &err) == BLUA_ERROR && strstr(err.msg, "not a matrix"));
  CHECK(blua_tensor_as_matrix(tr, &err) == NULL);
  blua_tensor *m = blua_tensor_as_matrix(t, &err);
  CHECK(m && m->dim == 2 && m->size[1] == 12);
  blua_tensor_release(m);
  /* Sum along dimension 2 of the transposed view: out is 2x1x3. */
  int64_t osize[3] = {2, 1, 3};
  blua_tensor *out = blua_tensor_new_nd(3, osize, &err);
  CHECK(blua_tensor_sum_dim(out, tr, 1, 0, &err) == BLUA_OK);
  CHECK(blua_tensor_data(out)[0] == 1.0f + 2 + 3 + 4);
  CHECK(blua_tensor_sum_dim(out, tr, 0, 0, &err) == BLUA_ERROR && strstr(err.msg, "size mismatch"));
  blua_tensor_release(out);
  blua_tensor *c = blua_tensor_clone(tr, &err);
  CHECK(c && blua_tensor_is_contiguous(c) && blua_tensor_sum(c) == 300.0);
  CHECK(blua_tensor_data(c)[1] == 5.0f); /* row-major order of the view */
  blua_tensor_release(c);
  /* Permuted: dimension i of the view is order[i] of t; a repeated or missing one is refused. */
  int order[3] = {2, 0, 1}, twice[3] = {0, 0, 1}, outside[3] = {0, 1, 3};
  blua_tensor *pm = blua_tensor_permute(t, order, &err);
  CHECK(pm && pm->size[0] == 4 && pm->size[1] == 2 && pm->size[2] == 3 && pm->stride[0] == 1 && pm->stride[1] == 12);
  blua_tensor_release(pm);
  CHECK(blua_tensor_permute(t, twice, &err) == NULL && strstr(err.msg, "given twice"));
  CHECK(blua_tensor_permute(t, outside, &err) == NULL && strstr(err.msg, "bad dimension"));
  blua_tensor *s = blua_tensor_select(t, 2, 3, &err);
  CHECK(s && s->dim == 2 && s->size[0] == 2 && s->size[1] == 3 && *blua_tensor_at(s, 1, 2) == 24.0f);
  CHECK(blua_tensor_select(t, 2, 4, &err) == NULL);
  blua_tensor_release(s);
  /* Sizes whose product would overflow are refused before any allocation. */
  int64_t huge[3] = {(int64_t)1 << 31, (int64_t)1 << 31, 4};
  CHECK(blua_tensor_new_nd(3, huge, &err) == NULL && strstr(err.msg, "too large"));
  int64_t zero_huge[3] = {0, (int64_t)1 << 40, (int64_t)1 << 40};
  CHECK(blua_tensor_new_nd(3, zero_huge, &err) == NULL);
  CHECK(blua_tensor_new_nd(9, size, &err) == NULL && strstr(err.msg, "bad dimension"));
  CHECK(blua_tensor_narrow(t, 0, 1, INT64_MAX, &err) == NULL && strstr(err.msg, "out of range"));
  CHECK(blua_tensor_narrow(t, 0, INT64_MAX, 1, &err) == NULL);
  blua_tensor_release(tr);
  blua_tensor_release(t);
  /* A 1-D tensor that owns its storage grows in place, keeping its values. */
  blua_tensor *g = blua_tensor_new1d(3, &err);
  blua_tensor_data(g)[2] = 7.0f;
  CHECK(blua_tensor_resize1d(g, 1 << 20, &err) == BLUA_OK && g->size[0] == 1 << 20);
  CHECK(blua_tensor_data(g)[2] == 7.0f && ((uintptr_t)blua_tensor_data(g) & 63) == 0);
  blua_tensor *gv = blua_tensor_narrow(g, 0, 0, 2, &err);
  CHECK(blua_tensor_resize1d(gv, 4, &err) == BLUA_ERROR);
  blua_tensor_release(gv);
  blua_tensor_release(g);
}

/* var/std (both divisors), prod, cumsum and sort through the core, on a matrix and along each
 * dimension of its transposed view; bad shapes refused with a message. */
static void test_stats_and_sort(void) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(2, 4, &err);
  float v[] = {1, 2, 3, 4, 2, 4, 6, 8}; /* mean 3.75, squared deviations 37.5 */
  memcpy(blua_tensor_data(t), v, sizeof v);
  CHECK_NEAR(blua_tensor_stat(t, BLUA_STAT_VAR), 37.5 / 7, 1e-12);
  CHECK_NEAR(blua_tensor_stat(t, BLUA_STAT_VAR_BIASED), 37.5 / 8, 1e-12);
  CHECK_NEAR(blua_tensor_stat(t, BLUA_STAT_STD), sqrt(37.5 / 7), 1e-12);
  CHECK_NEAR(blua_tensor_stat(t, BLUA_STAT_STD_BIASED), sqrt(37.5 / 8), 1e-12);
  CHECK(blua_tensor_stat(t, BLUA_STAT_PROD) == 9216.0);
  blua_tensor *row = blua_tensor_new2d(1, 4, &err), *col = blua_tensor_new2d(2, 1, &err);
  CHECK(blua_tensor_stat_dim(row, t, 0, BLUA_STAT_VAR_BIASED, &err) == BLUA_OK);
  CHECK(blua_tensor_data(row)[0] == 0.25f && blua_tensor_data(row)[3] == 4.0f);
  CHECK(blua_tensor_stat_dim(col, t, 1, BLUA_STAT_STD, &err) == BLUA_OK);
  CHECK_NEAR(blua_tensor_data(col)[1], sqrt(20.0 / 3), 1e-6);
  CHECK(blua_tensor_stat_dim(col, t, 0, BLUA_STAT_VAR, &err) == BLUA_ERROR && strstr(err.msg, "size mismatch"));
  /* the transposed view (4 x 2, row stride 1) gives the values of its contiguous copy */
  blua_tensor *tr = blua_tensor_transpose(t, &err), *trc = blua_tensor_clone(tr, &err);
  blua_tensor *a = blua_tensor_new2d(4, 1, &err), *b = blua_tensor_new2d(4, 1, &err);
  CHECK(blua_tensor_stat_dim(a, tr, 1, BLUA_STAT_VAR, &err) == BLUA_OK);
  CHECK(blua_tensor_stat_dim(b, trc, 1, BLUA_STAT_VAR, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(a), blua_tensor_data(b), 4 * sizeof(float)) == 0);
  /* running sums along each dimension; out must have t's shape and not be t */
  blua_tensor *cs = blua_tensor_new2d(2, 4, &err);
  CHECK(blua_tensor_cumsum(cs, t, 1, &err) == BLUA_OK);
  CHECK(blua_tensor_data(cs)[3] == 10.0f && blua_tensor_data(cs)[7] == 20.0f);
  CHECK(blua_tensor_cumsum(cs, t, 0, &err) == BLUA_OK);
  CHECK(blua_tensor_data(cs)[0] == 1.0f && blua_tensor_data(cs)[4] == 3.0f && blua_tensor_data(cs)[7] == 12.0f);
  CHECK(blua_tensor_cumsum(row, t, 1, &err) == BLUA_ERROR);
  /* sort: stable, NaN after every number, 1-based positions; the first k only */
  blua_tensor *u = blua_tensor_new1d(5, &err), *sv = blua_tensor_new1d(5, &err), *si = blua_tensor_new1d(5, &err);
  float uv[] = {3, NAN, -1, 3, 0};
  memcpy(blua_tensor_data(u), uv, sizeof uv);
  CHECK(blua_tensor_sort(sv, si, u, 0, 0, &err) == BLUA_OK);
  const float *ps = blua_tensor_data(sv), *pi = blua_tensor_data(si);
  CHECK(ps[0] == -1 && ps[1] == 0 && ps[2] == 3 && ps[3] == 3 && isnan(ps[4]));
  CHECK(pi[0] == 3 && pi[1] == 5 && pi[2] == 1 && pi[3] == 4 && pi[4] == 2);
  CHECK(blua_tensor_sort(sv, si, u, 0, 1, &err) == BLUA_OK); /* descending: NaN still last */
  CHECK(ps[0] == 3 && pi[0] == 1 && pi[1] == 4 && ps[3] == -1 && isnan(ps[4]));
  blua_tensor *k2 = blua_tensor_new1d(2, &err), *k2i = blua_tensor_new1d(2, &err);
  CHECK(blua_tensor_sort(k2, k2i, u, 0, 0, &err) == BLUA_OK);
  CHECK(blua_tensor_data(k2)[1] == 0 && blua_tensor_data(k2i)[1] == 5);
  blua_tensor *k6 = blua_tensor_new1d(6, &err), *k6i = blua_tensor_new1d(6, &err);
  CHECK(blua_tensor_sort(k6, k6i, u, 0, 0, &err) == BLUA_ERROR);
  blua_tensor *all[] = {t, row, col, tr, trc, a, b, cs, u, sv, si, k2, k2i, k6, k6i};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

/* A source sharing the destination's memory otherwise than entry for entry is read from a copy:
 * t += tᵀ adds the transpose as it was. */
static void test_overlapping_source(void) {
  blua_err err;
  blua_tensor *t = blua_tensor_new2d(2, 2, &err), *other = blua_tensor_new2d(2, 2, &err);
  float v[] = {1, 2, 3, 4};
  memcpy(blua_tensor_data(t), v, sizeof v);
  blua_tensor *tt = blua_tensor_transpose(t, &err), *row0 = blua_tensor_narrow(t, 0, 0, 1, &err);
  blua_tensor *row1 = blua_tensor_narrow(t, 0, 1, 1, &err), *copy;
  CHECK(blua_tensor_apart_from(t, other, &copy, &err) == other && copy == NULL);
  CHECK(blua_tensor_apart_from(t, t, &copy, &err) == t && copy == NULL);
  CHECK(blua_tensor_apart_from(row0, row1, &copy, &err) == row1 && copy == NULL); /* disjoint rows */
  const blua_tensor *s = blua_tensor_apart_from(t, tt, &copy, &err);
  CHECK(s == copy && copy != NULL && copy->storage != t->storage);
  blua_tensor_release(copy);
  CHECK(blua_tensor_add(t, t, 1.0f, tt, &err) == BLUA_OK);
  const float *p = blua_tensor_data(t);
  CHECK(p[0] == 2 && p[1] == 5 && p[2] == 5 && p[3] == 8);
  blua_tensor *all[] = {t, other, tt, row0, row1};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

int main(void) {
  test_create_and_release();
  test_views_share_storage();
  test_arithmetic();
  test_binary_bits();
  test_adam_sum();
  test_accumulate();
  test_mm();
  test_reductions();
  test_random();
  test_nd();
  test_stats_and_sort();
  test_overlapping_source();
  return check_summary();
}
