/* Unit tests of the linear operators (blua/op.h): for dense, conv2d, avgpool2d, reshape and
 * chains on random shapes, the adjoint identity ⟨A x, r⟩ = ⟨x, A* r⟩, forward against a direct
 * loop written out here, parameter gradients against finite differences (exact up to rounding,
 * A being linear in its parameters), the norm against power iteration on the explicit matrix,
 * dense against the MLP kernels bit for bit, and the error paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blua/blua.h"
#include "blua/op.h"
#include "check.h"

static blua_err err;

static blua_tensor *randn(int64_t r, int64_t c) {
  blua_tensor *t = blua_tensor_new2d(r, c, &err);
  blua_tensor_normal(t, 0.0, 1.0);
  return t;
}

static double dot(const blua_tensor *a, const blua_tensor *b) {
  double s = 0.0;
  for (int64_t i = 0; i < blua_tensor_rows(a); i++)
    for (int64_t j = 0; j < blua_tensor_cols(a); j++) s += (double)*blua_tensor_at(a, i, j) * *blua_tensor_at(b, i, j);
  return s;
}

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * (1.0 + fabs(a) + fabs(b)); }

/* Params of op: normal weights, biases drawn too (or NULL when with_bias is 0). */
static void make_params(blua_op *op, blua_tensor **p, int with_bias) {
  for (int i = 0; i < blua_op_nparams(op); i++) {
    int64_t r, c;
    blua_op_param_shape(op, i, &r, &c);
    p[i] = blua_op_param_is_bias(op, i) && !with_bias ? NULL : randn(r, c);
  }
}

static void free_params(blua_op *op, blua_tensor **p) {
  for (int i = 0; i < blua_op_nparams(op); i++) blua_tensor_release(p[i]);
}

static blua_tensor *forward(blua_op *op, blua_tensor **p, blua_tensor *x) {
  blua_tensor *y = blua_tensor_new2d(blua_tensor_rows(x), blua_shape_size(blua_op_out_shape(op)), &err);
  int st = blua_op_forward(op, p, x, y, &err);
  CHECK(st == BLUA_OK);
  if (st) fprintf(stderr, "  forward: %s\n", err.msg);
  return y;
}

static blua_tensor *adjoint(blua_op *op, blua_tensor **p, blua_tensor *r) {
  blua_tensor *g = blua_tensor_new2d(blua_tensor_rows(r), blua_shape_size(blua_op_in_shape(op)), &err);
  int st = blua_op_adjoint(op, p, r, g, 1.0f, 0.0f, &err);
  CHECK(st == BLUA_OK);
  if (st) fprintf(stderr, "  adjoint: %s\n", err.msg);
  return g;
}

/* ⟨A x, r⟩ = ⟨x, A* r⟩ for the linear part, and alpha/beta of the adjoint. */
static void check_adjoint(blua_op *op, int64_t n) {
  char d[200];
  blua_tensor *p[BLUA_OP_MAX_PARAMS];
  make_params(op, p, 0);
  blua_tensor *x = randn(n, blua_shape_size(blua_op_in_shape(op)));
  blua_tensor *r = randn(n, blua_shape_size(blua_op_out_shape(op)));
  blua_tensor *y = forward(op, p, x), *g = adjoint(op, p, r);
  double lhs = dot(y, r), rhs = dot(x, g);
  int ok = close_rel(lhs, rhs, 1e-5);
  CHECK(ok);
  if (!ok) fprintf(stderr, "  adjoint identity of %s: %.9g vs %.9g\n", blua_op_describe(op, d, sizeof d), lhs, rhs);
  /* g2 = 2 A* r + 0.5 g2 with g2 = g: 2.5 g. */
  blua_tensor *g2 = blua_tensor_clone(g, &err);
  CHECK(blua_op_adjoint(op, p, r, g2, 2.0f, 0.5f, &err) == BLUA_OK);
  double worst = 0.0;
  for (int64_t i = 0; i < blua_tensor_nelement(g); i++)
    worst = fmax(worst, fabs(blua_tensor_data(g2)[i] - 2.5 * blua_tensor_data(g)[i]) / (1 + fabs(blua_tensor_data(g)[i])));
  CHECK(worst < 1e-5);
  blua_tensor_release(g2);
  blua_tensor_release(x);
  blua_tensor_release(r);
  blua_tensor_release(y);
  blua_tensor_release(g);
  free_params(op, p);
}

/* d/dθ_i ⟨r, A(x; θ) + b⟩ by central differences along a random direction E, against
 * ⟨wgrad_i, E⟩; then beta = 1 accumulates and alpha scales. */
static void check_wgrad(blua_op *op, int64_t n) {
  char d[200];
  int np = blua_op_nparams(op);
  blua_tensor *p[BLUA_OP_MAX_PARAMS], *gr[BLUA_OP_MAX_PARAMS];
  make_params(op, p, 1);
  blua_tensor *x = randn(n, blua_shape_size(blua_op_in_shape(op)));
  blua_tensor *r = randn(n, blua_shape_size(blua_op_out_shape(op)));
  for (int i = 0; i < np; i++) {
    gr[i] = blua_tensor_new_like(p[i], &err);
    blua_tensor_fill(gr[i], 7.0f); /* beta = 0 must ignore it */
  }
  int st = blua_op_wgrad(op, p, x, r, gr, 1.0f, 0.0f, &err);
  CHECK(st == BLUA_OK);
  if (st) fprintf(stderr, "  wgrad: %s\n", err.msg);
  const double eps = 1e-2;
  for (int i = 0; i < np; i++) {
    blua_tensor *E = blua_tensor_new_like(p[i], &err), *saved = blua_tensor_clone(p[i], &err);
    blua_tensor_normal(E, 0.0, 1.0);
    blua_tensor_add(p[i], saved, (float)eps, E, &err);
    blua_tensor *yp = forward(op, p, x);
    blua_tensor_add(p[i], saved, (float)-eps, E, &err);
    blua_tensor *ym = forward(op, p, x);
    blua_tensor_copy(p[i], saved, &err);
    double fd = (dot(yp, r) - dot(ym, r)) / (2 * eps), an = dot(gr[i], E);
    int ok = close_rel(fd, an, 2e-3);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  wgrad %d of %s: fd %.9g vs %.9g\n", i + 1, blua_op_describe(op, d, sizeof d), fd, an);
    blua_tensor_release(E);
    blua_tensor_release(saved);
    blua_tensor_release(yp);
    blua_tensor_release(ym);
  }
  /* Accumulate: g += 0.5 ∇ gives 1.5 ∇. */
  blua_tensor *once[BLUA_OP_MAX_PARAMS];
  for (int i = 0; i < np; i++) once[i] = blua_tensor_clone(gr[i], &err);
  CHECK(blua_op_wgrad(op, p, x, r, gr, 0.5f, 1.0f, &err) == BLUA_OK);
  for (int i = 0; i < np; i++) {
    /* Relative to the whole gradient: an entry summed over many pixels carries rounding. */
    double diff = 0.0, ref = 0.0;
    for (int64_t j = 0; j < blua_tensor_nelement(gr[i]); j++) {
      double want = 1.5 * blua_tensor_data(once[i])[j];
      diff += pow(blua_tensor_data(gr[i])[j] - want, 2);
      ref += want * want;
    }
    double worst = sqrt(diff / (ref + 1e-30));
    CHECK(worst < 1e-5);
    if (worst >= 1e-5) fprintf(stderr, "  accumulating wgrad %d of %s: worst %g\n", i + 1, blua_op_describe(op, d, sizeof d), worst);
    blua_tensor_release(once[i]);
    blua_tensor_release(gr[i]);
  }
  blua_tensor_release(x);
  blua_tensor_release(r);
  free_params(op, p);
}

/* ‖A‖₂ from the explicit matrix: rows of A(I) are A e_j; power iteration in double. */
static double explicit_norm(blua_op *op, blua_tensor **params) {
  blua_tensor *p[BLUA_OP_MAX_PARAMS]; /* the linear part: no biases */
  for (int i = 0; i < blua_op_nparams(op); i++) p[i] = blua_op_param_is_bias(op, i) ? NULL : params[i];
  int64_t n = blua_shape_size(blua_op_in_shape(op)), m = blua_shape_size(blua_op_out_shape(op));
  blua_tensor *I = blua_tensor_eye(n, &err);
  blua_tensor *M = forward(op, p, I); /* n x m: row j is A e_j */
  double *v = malloc((size_t)m * sizeof *v), *u = malloc((size_t)n * sizeof *u), sigma = 0;
  for (int64_t k = 0; k < m; k++) v[k] = 1.0 + 0.37 * sin((double)k);
  for (int it = 0; it < 3000; it++) {
    double nv = 0;
    for (int64_t k = 0; k < m; k++) nv += v[k] * v[k];
    nv = sqrt(nv);
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t k = 0; k < m; k++) s += (double)*blua_tensor_at(M, j, k) * v[k] / nv;
      u[j] = s;
    }
    double nu = 0;
    for (int64_t j = 0; j < n; j++) nu += u[j] * u[j];
    sigma = sqrt(nu);
    for (int64_t k = 0; k < m; k++) {
      double s = 0;
      for (int64_t j = 0; j < n; j++) s += (double)*blua_tensor_at(M, j, k) * u[j];
      v[k] = s;
    }
  }
  free(u);
  free(v);
  blua_tensor_release(I);
  blua_tensor_release(M);
  return sigma;
}

static void check_norm(blua_op *op) {
  char d[200];
  blua_tensor *p[BLUA_OP_MAX_PARAMS];
  make_params(op, p, 1);
  double ref = explicit_norm(op, p), est = 0;
  int64_t m = blua_shape_size(blua_op_out_shape(op));
  blua_tensor *v = blua_tensor_new2d(1, m, &err);
  CHECK(blua_op_norm(op, p, 400, v, &est, &err) == BLUA_OK);
  int ok = close_rel(est, ref, 2e-3);
  CHECK(ok);
  if (!ok) fprintf(stderr, "  norm of %s: %.7g vs explicit %.7g\n", blua_op_describe(op, d, sizeof d), est, ref);
  /* Warm start: two more steps from the stored vector stay at the estimate. */
  double warm = 0;
  CHECK(fabs(blua_tensor_norm(v) - 1.0) < 1e-4);
  CHECK(blua_op_norm(op, p, 2, v, &warm, &err) == BLUA_OK);
  CHECK(close_rel(warm, est, 1e-3));
  /* Never above the true norm (up to rounding), and deterministic without a start. */
  double a = 0, b = 0;
  CHECK(blua_op_norm(op, p, 5, NULL, &a, &err) == BLUA_OK && blua_op_norm(op, p, 5, NULL, &b, &err) == BLUA_OK);
  CHECK(a == b && a <= ref * (1 + 1e-4));
  blua_tensor_release(v);
  free_params(op, p);
}

static int same_bits(const blua_tensor *a, const blua_tensor *b);

/* ---- conv2d and avgpool2d against direct loops ---- */

static double xat(const blua_tensor *x, int64_t s, blua_shape in, int64_t c, int64_t y, int64_t xx) {
  if (y < 0 || y >= in.h || xx < 0 || xx >= in.w) return 0.0;
  return *blua_tensor_at(x, s, (c * in.h + y) * in.w + xx);
}

static void check_conv_direct(const blua_conv2d_spec *sp, int64_t n) {
  blua_op *op = blua_op_conv2d(sp, &err);
  CHECK(op != NULL);
  if (!op) {
    fprintf(stderr, "  conv2d: %s\n", err.msg);
    return;
  }
  blua_tensor *p[2];
  make_params(op, p, 1);
  blua_shape in = blua_op_in_shape(op), out = blua_op_out_shape(op);
  CHECK(out.h == (sp->h + 2 * sp->padding - sp->kh) / sp->stride + 1);
  blua_tensor *x = randn(n, blua_shape_size(in));
  blua_tensor *y = forward(op, p, x);
  double worst = 0;
  for (int64_t s = 0; s < n; s++)
    for (int64_t co = 0; co < out.c; co++)
      for (int64_t oy = 0; oy < out.h; oy++)
        for (int64_t ox = 0; ox < out.w; ox++) {
          double acc = blua_tensor_data(p[1])[co];
          for (int64_t c = 0; c < in.c; c++)
            for (int64_t i = 0; i < sp->kh; i++)
              for (int64_t j = 0; j < sp->kw; j++)
                acc += *blua_tensor_at(p[0], co, (c * sp->kh + i) * sp->kw + j) *
                       xat(x, s, in, c, oy * sp->stride - sp->padding + i, ox * sp->stride - sp->padding + j);
          double got = *blua_tensor_at(y, s, (co * out.h + oy) * out.w + ox);
          worst = fmax(worst, fabs(got - acc) / (1 + fabs(acc)));
        }
  CHECK(worst < 1e-5);
  if (worst >= 1e-5) fprintf(stderr, "  conv2d direct: worst relative error %g\n", worst);
  blua_tensor_release(x);
  blua_tensor_release(y);
  free_params(op, p);
  blua_op_release(op);
}

static void check_pool_direct(blua_shape in, int64_t kh, int64_t kw, int64_t stride, int64_t n) {
  blua_op *op = blua_op_avgpool2d(in, kh, kw, stride, &err);
  CHECK(op != NULL);
  if (!op) return;
  if (stride == 0) stride = kh;
  blua_shape out = blua_op_out_shape(op);
  blua_tensor *x = randn(n, blua_shape_size(in));
  blua_tensor *y = forward(op, NULL, x);
  double worst = 0;
  for (int64_t s = 0; s < n; s++)
    for (int64_t c = 0; c < out.c; c++)
      for (int64_t oy = 0; oy < out.h; oy++)
        for (int64_t ox = 0; ox < out.w; ox++) {
          double acc = 0;
          for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++) acc += xat(x, s, in, c, oy * stride + i, ox * stride + j);
          acc /= (double)(kh * kw);
          worst = fmax(worst, fabs(*blua_tensor_at(y, s, (c * out.h + oy) * out.w + ox) - acc));
        }
  CHECK(worst < 1e-5);
  blua_tensor_release(x);
  blua_tensor_release(y);
  blua_op_release(op);
}

static void test_conv(void) {
  /* c_in, h, w, c_out, kh, kw, stride, padding */
  static const blua_conv2d_spec specs[] = {
      {1, 5, 5, 1, 3, 3, 1, 0},  {1, 7, 6, 3, 3, 3, 2, 1}, {3, 9, 7, 4, 5, 3, 2, 2}, {2, 8, 8, 5, 1, 1, 1, 0},
      {4, 6, 11, 2, 3, 5, 3, 2}, {1, 28, 28, 8, 5, 5, 1, 2}, {8, 14, 14, 16, 5, 5, 1, 2}, {2, 3, 3, 3, 5, 5, 1, 1},
      {3, 10, 9, 2, 4, 2, 2, 0}, {2, 4, 4, 3, 2, 2, 2, 0}, {3, 7, 9, 2, 3, 5, 1, 2}, {2, 6, 5, 3, 7, 3, 1, 1},
  };
  for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
    check_conv_direct(&specs[k], 3);
    blua_op *op = blua_op_conv2d(&specs[k], &err);
    if (!op) continue;
    check_adjoint(op, k % 2 ? 1 : 4);
    check_wgrad(op, 3);
    if (blua_shape_size(blua_op_in_shape(op)) <= 300) check_norm(op);
    blua_op_release(op);
  }
  /* Batches whose rows are spaced wider than their length (column views of a wider matrix)
   * give what their contiguous copies give, for every kernel. */
  {
    blua_conv2d_spec sp = {2, 6, 7, 3, 3, 3, 2, 1};
    blua_op *op = blua_op_conv2d(&sp, &err);
    int64_t n = 5, nin = blua_shape_size(blua_op_in_shape(op)), nout = blua_shape_size(blua_op_out_shape(op));
    blua_tensor *p[2];
    make_params(op, p, 1);
    blua_tensor *xw = randn(n, nin + 3), *rw = randn(n, nout + 2), *yw = randn(n, nout + 4), *gw = randn(n, nin + 1);
    blua_tensor *x = blua_tensor_narrow(xw, 1, 1, nin, &err), *r = blua_tensor_narrow(rw, 1, 0, nout, &err);
    blua_tensor *y = blua_tensor_narrow(yw, 1, 2, nout, &err), *g = blua_tensor_narrow(gw, 1, 1, nin, &err);
    blua_tensor *xc = blua_tensor_clone(x, &err), *rc = blua_tensor_clone(r, &err);
    CHECK(blua_op_forward(op, p, x, y, &err) == BLUA_OK && blua_op_adjoint(op, p, r, g, 1.0f, 0.0f, &err) == BLUA_OK);
    blua_tensor *yc = forward(op, p, xc), *gc = adjoint(op, p, rc);
    CHECK(same_bits(y, yc) && same_bits(g, gc));
    blua_tensor *d1[2] = {blua_tensor_new2d(3, 18, &err), blua_tensor_new2d(1, 3, &err)};
    blua_tensor *d2[2] = {blua_tensor_new2d(3, 18, &err), blua_tensor_new2d(1, 3, &err)};
    CHECK(blua_op_wgrad(op, p, x, r, d1, 1.0f, 0.0f, &err) == BLUA_OK);
    CHECK(blua_op_wgrad(op, p, xc, rc, d2, 1.0f, 0.0f, &err) == BLUA_OK);
    CHECK(same_bits(d1[0], d2[0]) && same_bits(d1[1], d2[1]));
    blua_tensor *all[] = {xw, rw, yw, gw, x, r, y, g, xc, rc, yc, gc, d1[0], d1[1], d2[0], d2[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
    free_params(op, p);
    blua_op_release(op);
  }
  /* Many samples of a large image: the samples go through BLAS in several chunks. */
  blua_conv2d_spec big = {1, 160, 161, 4, 3, 3, 1, 1};
  check_conv_direct(&big, 1);
  blua_op *op = blua_op_conv2d(&big, &err);
  check_adjoint(op, 11);
  check_wgrad(op, 11);
  blua_op_release(op);
}

static void test_pool(void) {
  check_pool_direct((blua_shape){3, 8, 8}, 2, 2, 0, 3);
  check_pool_direct((blua_shape){2, 7, 9}, 3, 3, 2, 2);
  check_pool_direct((blua_shape){1, 5, 6}, 2, 3, 1, 2);
  check_pool_direct((blua_shape){4, 4, 4}, 4, 4, 0, 1);
  blua_shape shapes[] = {{3, 8, 8}, {2, 7, 9}, {1, 5, 6}};
  int64_t ks[][3] = {{2, 2, 0}, {3, 3, 2}, {2, 3, 1}};
  for (int k = 0; k < 3; k++) {
    blua_op *op = blua_op_avgpool2d(shapes[k], ks[k][0], ks[k][1], ks[k][2], &err);
    check_adjoint(op, 3);
    check_norm(op);
    blua_op_release(op);
  }
  /* Non-overlapping 2x2 windows: the norm is 1/2 exactly. */
  blua_op *op = blua_op_avgpool2d((blua_shape){2, 6, 6}, 2, 2, 0, &err);
  double nrm = 0;
  CHECK(blua_op_norm(op, NULL, 30, NULL, &nrm, &err) == BLUA_OK && fabs(nrm - 0.5) < 1e-6);
  blua_op_release(op);
}

/* ---- dense: bit for bit the MLP kernels ---- */

static int same_bits(const blua_tensor *a, const blua_tensor *b) {
  if (blua_tensor_rows(a) != blua_tensor_rows(b) || blua_tensor_cols(a) != blua_tensor_cols(b)) return 0;
  for (int64_t i = 0; i < blua_tensor_rows(a); i++)
    for (int64_t j = 0; j < blua_tensor_cols(a); j++)
      if (memcmp(blua_tensor_at(a, i, j), blua_tensor_at(b, i, j), sizeof(float))) return 0;
  return 1;
}

static void test_dense(void) {
  int64_t shapes[][3] = {{100, 784, 64}, {7, 64, 10}, {1, 5, 1}, {300, 1, 3}};
  for (int k = 0; k < 4; k++) {
    int64_t n = shapes[k][0], nin = shapes[k][1], nout = shapes[k][2];
    blua_op *op = blua_op_dense(nin, nout, &err);
    blua_tensor *p[2];
    make_params(op, p, 1);
    blua_tensor *x = randn(n, nin), *r = randn(n, nout);
    /* forward = blua_lifted_affine */
    blua_tensor *y = forward(op, p, x), *z = blua_tensor_new2d(n, nout, &err);
    blua_lifted_layer layer = {NULL, p[0], p[1]};
    CHECK(blua_lifted_affine(z, x, &layer, &err) == BLUA_OK);
    CHECK(same_bits(y, z));
    /* adjoint = the X-step's r Wᵀ (scaled by the loss weight) */
    blua_tensor *g = blua_tensor_new2d(n, nin, &err), *h = blua_tensor_new2d(n, nin, &err);
    blua_tensor *wt = blua_tensor_transpose(p[0], &err);
    CHECK(blua_op_adjoint(op, p, r, g, 0.7f, 0.0f, &err) == BLUA_OK);
    CHECK(blua_mm(h, 0.0f, 0.7f, r, wt, &err) == BLUA_OK);
    CHECK(same_bits(g, h));
    /* wgrad = blua_lifted_wgrad's xᵀ r and column sums */
    blua_tensor *gW = randn(nin, nout), *gb = randn(1, nout), *hW = randn(nin, nout), *hb = randn(1, nout);
    blua_tensor *xt = blua_tensor_transpose(x, &err);
    blua_tensor *grads[2] = {gW, gb};
    CHECK(blua_op_wgrad(op, p, x, r, grads, 0.01f, 0.0f, &err) == BLUA_OK);
    CHECK(blua_mm(hW, 0.0f, 0.01f, xt, r, &err) == BLUA_OK);
    CHECK(blua_tensor_sum_rows(hb, 0.0f, 0.01f, r, &err) == BLUA_OK);
    CHECK(same_bits(gW, hW) && same_bits(gb, hb));
    /* norm = blua_spectral_norm, warm start included */
    blua_tensor *v1 = blua_tensor_new2d(1, nout, &err), *v2 = blua_tensor_new2d(1, nout, &err);
    double a = 0, b = blua_spectral_norm(p[0], 20, v2);
    CHECK(blua_op_norm(op, p, 20, v1, &a, &err) == BLUA_OK && a == b && same_bits(v1, v2));
    b = blua_spectral_norm(p[0], 8, v2);
    CHECK(blua_op_norm(op, p, 8, v1, &a, &err) == BLUA_OK && a == b);
    if (k < 2) {
      check_adjoint(op, 5);
      check_wgrad(op, 5);
    }
    if (nin * nout <= 400) check_norm(op);
    /* Row views of a larger batch work as they are. */
    if (n > 4) {
      blua_tensor *xs = blua_tensor_narrow(x, 0, 2, n - 3, &err), *ys = blua_tensor_narrow(y, 0, 1, n - 3, &err);
      blua_tensor *zs = blua_tensor_narrow(z, 0, 2, n - 3, &err);
      CHECK(blua_op_forward(op, p, xs, ys, &err) == BLUA_OK);
      CHECK(blua_lifted_affine(zs, xs, &layer, &err) == BLUA_OK);
      CHECK(same_bits(ys, zs));
      blua_tensor_release(xs);
      blua_tensor_release(ys);
      blua_tensor_release(zs);
    }
    blua_tensor *all[] = {x, r, y, z, g, h, wt, gW, gb, hW, hb, xt, v1, v2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
    free_params(op, p);
    blua_op_release(op);
  }
}

/* ---- reshape and chains ---- */

static void test_chain(void) {
  blua_conv2d_spec c1 = {2, 9, 9, 3, 3, 3, 1, 1}, c2 = {3, 4, 4, 4, 3, 3, 2, 2};
  blua_op *conv1 = blua_op_conv2d(&c1, &err);                                /* 2x9x9 -> 3x9x9 */
  blua_op *pool = blua_op_avgpool2d((blua_shape){3, 9, 9}, 2, 2, 0, &err);   /* -> 3x4x4 */
  blua_op *conv2 = blua_op_conv2d(&c2, &err);                                /* -> 4x3x3 */
  blua_op *flat = blua_op_reshape((blua_shape){4, 3, 3}, (blua_shape){36, 1, 1}, &err);
  blua_op *dense = blua_op_dense(36, 5, &err);
  blua_op *unflat = blua_op_reshape((blua_shape){162, 1, 1}, (blua_shape){2, 9, 9}, &err);
  CHECK(conv1 && pool && conv2 && flat && dense && unflat);

  check_adjoint(flat, 3);
  check_norm(flat);

  blua_op *m1[] = {conv1, pool, conv2};
  blua_op *m2[] = {pool, conv2, flat, dense};
  blua_op *m3[] = {unflat, conv1, pool};
  blua_op *m4[] = {conv1, pool, conv2, flat, dense};
  blua_op *chains[] = {blua_op_chain(m1, 3, &err), blua_op_chain(m2, 4, &err), blua_op_chain(m3, 3, &err),
                       blua_op_chain(m4, 5, &err)};
  for (int k = 0; k < 4; k++) {
    CHECK(chains[k] != NULL);
    if (!chains[k]) continue;
    check_adjoint(chains[k], 3);
    check_wgrad(chains[k], 3);
  }
  CHECK(blua_op_nparams(chains[0]) == 4 && blua_op_nparams(chains[1]) == 4 && blua_op_nparams(chains[3]) == 6);
  check_norm(chains[1]);
  check_norm(chains[2]);

  /* A chain's forward is its members' in turn. */
  blua_tensor *p[4];
  make_params(chains[0], p, 1);
  blua_tensor *x = randn(2, 162);
  blua_tensor *y = forward(chains[0], p, x);
  blua_tensor *a = forward(conv1, p, x), *b = forward(pool, NULL, a), *c = forward(conv2, p + 2, b);
  CHECK(same_bits(y, c));
  /* Chains nest. */
  blua_op *inner[] = {conv1, pool}, *ic = blua_op_chain(inner, 2, &err);
  blua_op *outer[] = {ic, conv2}, *oc = blua_op_chain(outer, 2, &err);
  blua_tensor *y2 = forward(oc, p, x);
  CHECK(same_bits(y, y2));
  check_wgrad(oc, 2);
  /* A clone computes the same with a workspace of its own. */
  blua_op *cl = blua_op_clone(oc, &err);
  CHECK(cl != NULL && cl != oc && blua_op_nmembers(cl) == 2 && blua_op_nparams(cl) == blua_op_nparams(oc));
  blua_tensor *y3 = cl ? forward(cl, p, x) : NULL;
  CHECK(y3 && same_bits(y, y3));
  if (cl) check_wgrad(cl, 2);
  blua_tensor_release(y3);
  blua_op_release(cl);
  blua_tensor *all[] = {x, y, a, b, c, y2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
  free_params(chains[0], p);

  /* A batch larger than one pass of a chain: the rows go through in several passes. */
  {
    blua_conv2d_spec cb = {1, 64, 64, 32, 3, 3, 1, 1};
    blua_op *bc = blua_op_conv2d(&cb, &err), *bp = blua_op_avgpool2d((blua_shape){32, 64, 64}, 2, 2, 0, &err);
    blua_op *bm[] = {bc, bp}, *big = blua_op_chain(bm, 2, &err);
    check_adjoint(big, 35);
    check_wgrad(big, 35);
    blua_tensor *q[2];
    make_params(big, q, 1);
    blua_tensor *xb = randn(35, 4096);
    blua_tensor *yb = forward(big, q, xb), *t1 = forward(bc, q, xb), *t2 = forward(bp, NULL, t1);
    /* The same sums, up to BLAS's blocking of a different number of columns. */
    blua_tensor_add(t2, t2, -1.0f, yb, &err);
    CHECK(blua_tensor_norm(t2) <= 1e-6 * blua_tensor_norm(yb));
    blua_tensor *all2[] = {xb, yb, t1, t2};
    for (size_t i = 0; i < sizeof all2 / sizeof all2[0]; i++) blua_tensor_release(all2[i]);
    free_params(big, q);
    blua_op_release(big);
    blua_op_release(bc);
    blua_op_release(bp);
  }

  /* Members stay alive while a chain holds them. */
  blua_op_release(ic);
  blua_op_release(oc);
  for (int k = 0; k < 4; k++) blua_op_release(chains[k]);
  blua_op *ops[] = {conv1, pool, conv2, flat, dense, unflat};
  for (int k = 0; k < 6; k++) blua_op_release(ops[k]);
}

/* ---- errors ---- */

static void expect_error(void *result_or_null, int status, const char *needle1, const char *needle2) {
  int failed = result_or_null == NULL || status != BLUA_OK;
  CHECK(failed);
  int named = strstr(err.msg, needle1) && (!needle2 || strstr(err.msg, needle2));
  CHECK(named);
  if (!failed || !named) fprintf(stderr, "  expected an error with '%s': %s\n", needle1, err.msg);
}

static void test_errors(void) {
  blua_conv2d_spec sp = {1, 3, 3, 2, 5, 5, 1, 0};
  blua_op *op = blua_op_conv2d(&sp, &err);
  expect_error(op, 0, "kernel larger than padded input", "1x3x3");
  sp.padding = 1; /* 5x5 padded: fits */
  op = blua_op_conv2d(&sp, &err);
  CHECK(op != NULL);
  blua_op_release(op);
  blua_conv2d_spec bad[] = {{1, 8, 8, 2, 3, 3, 0, 0}, {1, 8, 8, 2, 3, 3, -2, 0}, {1, 8, 8, 2, 3, 3, 1, -1},
                            {0, 8, 8, 2, 3, 3, 1, 0}, {1, 8, 8, 0, 3, 3, 1, 0}, {1, 8, 8, 2, 0, 3, 1, 0},
                            {(int64_t)1 << 40, 1 << 20, 1 << 20, 2, 1, 1, 1, 0},
                            {1 << 20, 1 << 10, 1 << 10, 1 << 20, 1, 1, 1, 0}};
  const char *msgs[] = {"stride", "stride", "padding", "shape", "channels", "kernel", "shape", "conv2d"};
  for (int k = 0; k < 8; k++) expect_error(blua_op_conv2d(&bad[k], &err), 0, msgs[k], NULL);
  expect_error(blua_op_avgpool2d((blua_shape){2, 3, 3}, 4, 4, 0, &err), 0, "kernel larger than input", "2x3x3");
  expect_error(blua_op_avgpool2d((blua_shape){2, 8, 8}, 2, 2, -1, &err), 0, "stride", NULL);
  expect_error(blua_op_reshape((blua_shape){4, 3, 3}, (blua_shape){35, 1, 1}, &err), 0, "reshape", "4x3x3");
  expect_error(blua_op_dense(0, 3, &err), 0, "dense", NULL);
  expect_error(blua_op_dense((int64_t)1 << 30, (int64_t)1 << 30, &err), 0, "dense", NULL);

  /* Channels that do not match in a chain. */
  blua_conv2d_spec a = {1, 8, 8, 4, 3, 3, 1, 1}, b = {3, 8, 8, 2, 3, 3, 1, 1};
  blua_op *ca = blua_op_conv2d(&a, &err), *cb = blua_op_conv2d(&b, &err);
  blua_op *pair[] = {ca, cb};
  expect_error(blua_op_chain(pair, 2, &err), 0, "chain", "4x8x8");
  expect_error(blua_op_chain(pair, 0, &err), 0, "chain", NULL);

  /* Shapes at call time. */
  blua_tensor *p[2];
  make_params(ca, p, 1);
  blua_tensor *x = randn(3, 64), *y = blua_tensor_new2d(3, 256, &err), *xbad = randn(3, 65), *ybad = randn(2, 256);
  expect_error(NULL, blua_op_forward(ca, p, xbad, y, &err), "size mismatch", "3x65");
  expect_error(NULL, blua_op_forward(ca, p, x, ybad, &err), "size mismatch", "2x256");
  expect_error(NULL, blua_op_forward(ca, p, x, x, &err), "", NULL);
  blua_tensor *wrong[2] = {randn(4, 8), p[1]};
  expect_error(NULL, blua_op_forward(ca, wrong, x, y, &err), "size mismatch", "4x8");
  blua_tensor *none[2] = {NULL, p[1]};
  expect_error(NULL, blua_op_forward(ca, none, x, y, &err), "missing parameter", "conv2d");
  blua_tensor *wt = blua_tensor_transpose(p[0], &err);
  blua_tensor *w2 = blua_tensor_new2d(9, 4, &err), *w2t = blua_tensor_transpose(w2, &err);
  blua_tensor *strided[2] = {w2t, p[1]};
  expect_error(NULL, blua_op_forward(ca, strided, x, y, &err), "contiguous", NULL);
  expect_error(NULL, blua_op_adjoint(ca, p, xbad, y, 1.0f, 0.0f, &err), "size mismatch", "adjoint");
  blua_tensor *gW = blua_tensor_new2d(4, 9, &err), *gbad = blua_tensor_new2d(1, 3, &err);
  blua_tensor *grads[2] = {gW, gbad};
  blua_tensor *r = randn(3, 256);
  expect_error(NULL, blua_op_wgrad(ca, p, x, r, grads, 1.0f, 0.0f, &err), "size mismatch", "1x3");
  blua_tensor *gself[2] = {p[0], NULL};
  expect_error(NULL, blua_op_wgrad(ca, p, x, r, gself, 1.0f, 0.0f, &err), "aliasing", NULL);
  double nrm;
  blua_tensor *vbad = blua_tensor_new2d(1, 7, &err);
  expect_error(NULL, blua_op_norm(ca, p, 3, vbad, &nrm, &err), "start vector", "1x7");
  /* Transposed batches are refused with a message, not read wrongly. */
  blua_tensor *xt0 = randn(64, 3), *xt = blua_tensor_transpose(xt0, &err);
  expect_error(NULL, blua_op_forward(ca, p, xt, y, &err), "contiguous rows", NULL);
  /* An empty batch is fine and gives zero gradients. */
  blua_tensor *x0 = blua_tensor_new2d(0, 64, &err), *r0 = blua_tensor_new2d(0, 256, &err);
  blua_tensor *g0[2] = {gW, NULL};
  blua_tensor_fill(gW, 3.0f);
  CHECK(blua_op_wgrad(ca, p, x0, r0, g0, 1.0f, 0.0f, &err) == BLUA_OK && blua_tensor_norm(gW) == 0.0);
  /* NaN weights give a NaN norm, not a hang. */
  blua_tensor_fill(p[0], NAN);
  CHECK(blua_op_norm(ca, p, 5, NULL, &nrm, &err) == BLUA_OK && isnan(nrm));
  blua_tensor *all[] = {x, y, xbad, ybad, wrong[0], wt, w2, w2t, gW, gbad, r, vbad, xt0, xt, x0, r0};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
  free_params(ca, p);
  blua_op_release(ca);
  blua_op_release(cb);
}

int main(void) {
  blua_manual_seed(42);
  test_conv();
  test_pool();
  test_dense();
  test_chain();
  test_errors();
  /* Two threads give the same adjoint identity (the OpenMP loops split samples). */
  blua_set_num_threads(2);
  blua_conv2d_spec sp = {3, 11, 10, 5, 3, 3, 2, 1};
  blua_op *op = blua_op_conv2d(&sp, &err);
  check_adjoint(op, 9);
  check_wgrad(op, 9);
  blua_op_release(op);
  /* The same bits with 1 and 2 threads: forward and adjoint hand whole chunks to the threads,
   * the weight gradient sums two fixed halves of the batch (40 samples, several chunks). */
  {
    blua_conv2d_spec cs = {8, 14, 14, 16, 5, 5, 1, 2};
    blua_op *c = blua_op_conv2d(&cs, &err);
    blua_tensor *p[2], *out[2][4];
    make_params(c, p, 1);
    int64_t n = 40, nin = blua_shape_size(blua_op_in_shape(c)), nout = blua_shape_size(blua_op_out_shape(c));
    blua_tensor *x = randn(n, nin), *r = randn(n, nout);
    for (int t = 0; t < 2; t++) {
      blua_set_num_threads(t + 1);
      out[t][0] = forward(c, p, x);
      out[t][1] = adjoint(c, p, r);
      out[t][2] = blua_tensor_new2d(16, 200, &err);
      out[t][3] = blua_tensor_new2d(1, 16, &err);
      CHECK(blua_op_wgrad(c, p, x, r, out[t] + 2, 0.5f, 0.0f, &err) == BLUA_OK);
    }
    for (int k = 0; k < 4; k++) CHECK(same_bits(out[0][k], out[1][k]));
    for (int t = 0; t < 2; t++)
      for (int k = 0; k < 4; k++) blua_tensor_release(out[t][k]);
    blua_tensor_release(x);
    blua_tensor_release(r);
    free_params(c, p);
    blua_op_release(c);
  }
  return check_summary();
}
