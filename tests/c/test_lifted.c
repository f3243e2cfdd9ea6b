/* Unit tests of the lifted batch kernels (blua/lifted.h) against loops written out here in
 * double: the affine map, the residuals of both penalties, the fused X-step (hidden and output
 * next layers, both penalties, one chunk and several), the W-gradients, the energies and the
 * spectral norm with its warm start, plus the error paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blua/blua.h"
#include "blua/penalty.h"
#include "check.h"

static blua_err err;

static blua_tensor *randn(int64_t r, int64_t c) {
  blua_tensor *t = blua_tensor_new2d(r, c, &err);
  blua_tensor_normal(t, 0.0, 1.0);
  return t;
}

static double at(const blua_tensor *t, int64_t i, int64_t j) { return *blua_tensor_at(t, i, j); }

static blua_act act_of(const char *name) {
  blua_act a;
  CHECK(blua_act_init(&a, name, NAN, NAN, &err) == BLUA_OK);
  return a;
}

static double sigma(const blua_act *a, double z) {
  switch (a->kind) {
    case BLUA_ACT_RELU: return z > 0 ? z : 0;
    case BLUA_ACT_LEAKY_RELU: return z >= 0 ? z : a->a * z;
    default: return z;
  }
}

/* prox_{μΦ}(v), Φ = ½u² + Ψ, in closed form: relu max(0, v/(1+μ)); leaky: v≥0 v/(1+μ) else a v/(a+μ). */
static double prox(const blua_act *a, double v, double mu) {
  switch (a->kind) {
    case BLUA_ACT_RELU: return v > 0 ? v / (1 + mu) : 0;
    case BLUA_ACT_LEAKY_RELU: return v >= 0 ? v / (1 + mu) : a->a * v / (a->a + mu);
    default: return v / (1 + mu);
  }
}

static double project(const blua_act *a, double v) { return a->kind == BLUA_ACT_RELU && v < 0 ? 0 : v; }

/* Residual of the next layer at row i into r (n_next entries): softmax(zn) − y for an output,
 * σ(zn) − x_next (Bregman) or γ (zn − x_next) (quadratic) for a hidden one. */
static void ref_residual(blua_penalty_kind kind, const blua_act *a, int is_output, double gamma, const blua_tensor *zn,
                         const blua_tensor *xn, int64_t i, double *r) {
  int64_t m = blua_tensor_cols(zn);
  if (is_output && a->kind == BLUA_ACT_SOFTMAX) {
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < m; j++) mx = fmax(mx, at(zn, i, j));
    for (int64_t j = 0; j < m; j++) s += exp(at(zn, i, j) - mx);
    for (int64_t j = 0; j < m; j++) r[j] = exp(at(zn, i, j) - mx) / s - at(xn, i, j);
  } else if (kind == BLUA_PENALTY_BREGMAN || is_output) {
    for (int64_t j = 0; j < m; j++) r[j] = sigma(a, at(zn, i, j)) - at(xn, i, j);
  } else {
    for (int64_t j = 0; j < m; j++) r[j] = gamma * (at(zn, i, j) - at(xn, i, j));
  }
}

static double worst_diff(const blua_tensor *t, const double *ref) {
  double w = 0;
  int64_t c = blua_tensor_cols(t);
  for (int64_t i = 0; i < blua_tensor_rows(t); i++)
    for (int64_t j = 0; j < c; j++) w = fmax(w, fabs(at(t, i, j) - ref[i * c + j]) / (1 + fabs(ref[i * c + j])));
  return w;
}

static void test_affine(void) {
  int64_t n = 37, nin = 13, nout = 6;
  blua_tensor *x = randn(n, nin), *W = randn(nin, nout), *b = randn(1, nout), *z = blua_tensor_new2d(n, nout, &err);
  blua_tensor *b1 = blua_tensor_new1d(nout, &err);
  for (int64_t j = 0; j < nout; j++) *blua_tensor_at(b1, j, 0) = (float)at(b, 0, j);
  for (int variant = 0; variant < 2; variant++) {
    blua_lifted_layer layer = {NULL, W, variant ? b1 : b};
    CHECK(blua_lifted_affine(z, x, &layer, &err) == BLUA_OK);
    double *ref = malloc((size_t)(n * nout) * sizeof *ref);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < nout; j++) {
        double s = at(b, 0, j);
        for (int64_t k = 0; k < nin; k++) s += at(x, i, k) * at(W, k, j);
        ref[i * nout + j] = s;
      }
    CHECK(worst_diff(z, ref) < 1e-5);
    free(ref);
  }
  /* A transposed weight view is the same map as its contiguous copy. */
  blua_tensor *Wt0 = randn(nout, nin), *Wt = blua_tensor_transpose(Wt0, &err), *Wc = blua_tensor_clone(Wt, &err);
  blua_tensor *z2 = blua_tensor_new2d(n, nout, &err);
  blua_lifted_layer l1 = {NULL, Wt, b}, l2 = {NULL, Wc, b};
  CHECK(blua_lifted_affine(z, x, &l1, &err) == BLUA_OK && blua_lifted_affine(z2, x, &l2, &err) == BLUA_OK);
  blua_tensor_add(z2, z2, -1.0f, z, &err);
  CHECK(blua_tensor_norm(z2) < 1e-4);
  /* A bias of the wrong size is an error naming both shapes. */
  blua_tensor *bbad = randn(1, nout + 1);
  blua_lifted_layer lb = {NULL, W, bbad};
  CHECK(blua_lifted_affine(z, x, &lb, &err) == BLUA_ERROR && strstr(err.msg, "1x7") && strstr(err.msg, "37x6"));
  blua_tensor *all[] = {x, W, b, z, b1, Wt0, Wt, Wc, z2, bbad};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

/* One X-step against the reference, for a given penalty, activation pair and batch size. */
static void check_xstep(blua_penalty_kind kind, const char *act_name, const char *next_name, int next_is_output,
                        int64_t n) {
  int64_t m0 = 5, m1 = 7, m2 = 4; /* x_{l-1} m0, x_l m1, x_{l+1} m2 */
  double mu = 0.3, gamma = 0.8, weight = next_is_output ? 0.5 : 1.0;
  blua_act act = act_of(act_name), next_act = act_of(next_name);
  blua_tensor *xp = randn(n, m0), *W = randn(m0, m1), *b = randn(1, m1), *x = randn(n, m1);
  blua_tensor *Wn = randn(m1, m2), *bn = randn(1, m2), *xn = randn(n, m2);
  if (kind == BLUA_PENALTY_QUADRATIC && act.kind == BLUA_ACT_RELU) blua_act_project(&act, x, x, &err);
  if (next_is_output) { /* one-hot targets */
    blua_tensor_fill(xn, 0);
    for (int64_t i = 0; i < n; i++) *blua_tensor_at(xn, i, i % m2) = 1;
  }
  blua_tensor *z = blua_tensor_new2d(n, m1, &err), *zn = blua_tensor_new2d(n, m2, &err), *g = blua_tensor_new2d(n, m1, &err);
  blua_lifted_layer layer = {&act, W, b}, next = {&next_act, Wn, bn};
  CHECK(blua_lifted_affine(z, xp, &layer, &err) == BLUA_OK);
  CHECK(blua_lifted_affine(zn, x, &next, &err) == BLUA_OK);
  /* Reference in double from the same z, zn. */
  double *ref = malloc((size_t)(n * m1) * sizeof *ref), r[8];
  for (int64_t i = 0; i < n; i++) {
    ref_residual(kind, &next_act, next_is_output, gamma, zn, xn, i, r);
    for (int64_t j = 0; j < m1; j++) {
      double gij = 0;
      for (int64_t k = 0; k < m2; k++) gij += weight * r[k] * at(Wn, j, k);
      double xv = at(x, i, j), zv = at(z, i, j);
      ref[i * m1 + j] = kind == BLUA_PENALTY_BREGMAN ? prox(&act, xv + mu * (zv - gij), mu)
                                                     : project(&act, xv - mu * (gamma * (xv - zv) + gij));
    }
  }
  int st = blua_lifted_xstep(kind, &act, &next, next_is_output, weight, z, zn, x, xn, mu, gamma, g, &err);
  CHECK(st == BLUA_OK);
  if (st) fprintf(stderr, "  xstep: %s\n", err.msg);
  double w = worst_diff(x, ref);
  CHECK(w < 1e-4);
  if (w >= 1e-4)
    fprintf(stderr, "  xstep %s %s -> %s (output %d, n %lld): worst %g\n", kind ? "quadratic" : "bregman", act_name,
            next_name, next_is_output, (long long)n, w);
  free(ref);
  blua_tensor *all[] = {xp, W, b, x, Wn, bn, xn, z, zn, g};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

static void test_xstep(void) {
  for (int kind = 0; kind < 2; kind++) {
    check_xstep(kind, "relu", "relu", 0, 9);
    check_xstep(kind, "leaky_relu", "identity", 0, 9);
    check_xstep(kind, "relu", "softmax", 1, 9);
    check_xstep(kind, "identity", "identity", 1, 3);
    check_xstep(kind, "relu", "relu", 0, 4096 + 37); /* more than one chunk of rows */
  }
  /* Errors: non-positive step, batches that do not match. */
  blua_act relu = act_of("relu");
  blua_tensor *W = randn(3, 2), *b = randn(1, 2), *a = randn(4, 3), *c = randn(4, 2), *d = randn(5, 2), *g = randn(4, 3);
  blua_lifted_layer next = {&relu, W, b};
  CHECK(blua_lifted_xstep(BLUA_PENALTY_BREGMAN, &relu, &next, 0, 1, a, c, a, c, 0.0, 1, g, &err) == BLUA_ERROR &&
        strstr(err.msg, "mu"));
  CHECK(blua_lifted_xstep(BLUA_PENALTY_BREGMAN, &relu, &next, 0, 1, a, c, a, d, 0.5, 1, g, &err) == BLUA_ERROR &&
        strstr(err.msg, "5x2"));
  blua_tensor *all[] = {W, b, a, c, d, g};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

static void test_wgrad_energy(void) {
  int64_t n = 23, m0 = 6, m1 = 5;
  double gamma = 0.7, scale = 1.0 / 23;
  const char *acts[] = {"relu", "softmax", "relu"};
  int outputs[] = {0, 1, 0};
  blua_penalty_kind kinds[] = {BLUA_PENALTY_BREGMAN, BLUA_PENALTY_BREGMAN, BLUA_PENALTY_QUADRATIC};
  for (int k = 0; k < 3; k++) {
    blua_act act = act_of(acts[k]);
    blua_tensor *xp = randn(n, m0), *W = randn(m0, m1), *b = randn(1, m1), *x = randn(n, m1);
    if (outputs[k]) {
      blua_tensor_fill(x, 0);
      for (int64_t i = 0; i < n; i++) *blua_tensor_at(x, i, (i * 3) % m1) = 1;
    } else {
      blua_act_forward(&act, x, x, &err); /* on dom Ψ */
    }
    blua_tensor *z = blua_tensor_new2d(n, m1, &err), *gW = randn(m0, m1), *gb = randn(1, m1);
    blua_lifted_layer layer = {&act, W, b};
    CHECK(blua_lifted_affine(z, xp, &layer, &err) == BLUA_OK);
    /* Energy against the formula. */
    double e = 0, ref_e = 0, r[8];
    CHECK(blua_lifted_energy(kinds[k], &act, outputs[k], gamma, x, z, &e, &err) == BLUA_OK);
    for (int64_t i = 0; i < n; i++) {
      if (outputs[k]) { /* cross-entropy: logsumexp(z) − z_label */
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < m1; j++) mx = fmax(mx, at(z, i, j));
        for (int64_t j = 0; j < m1; j++) s += exp(at(z, i, j) - mx);
        ref_e += mx + log(s) - at(z, i, (i * 3) % m1);
      } else if (kinds[k] == BLUA_PENALTY_BREGMAN) { /* relu: ½y² + ½max(z,0)² − y z */
        for (int64_t j = 0; j < m1; j++) {
          double y = at(x, i, j), zz = at(z, i, j), p = zz > 0 ? zz : 0;
          ref_e += 0.5 * y * y + 0.5 * p * p - y * zz;
        }
      } else {
        for (int64_t j = 0; j < m1; j++) ref_e += 0.5 * gamma * pow(at(x, i, j) - at(z, i, j), 2);
      }
    }
    CHECK(fabs(e - ref_e) <= 1e-4 * (1 + fabs(ref_e)));
    /* Gradients: scale xᵀ r and scale Σ r. */
    double *rr = malloc((size_t)(n * m1) * sizeof *rr);
    for (int64_t i = 0; i < n; i++) {
      ref_residual(kinds[k], &act, outputs[k], gamma, z, x, i, r);
      memcpy(rr + i * m1, r, (size_t)m1 * sizeof *r);
    }
    CHECK(blua_lifted_wgrad(kinds[k], &act, outputs[k], gamma, xp, x, z, scale, gW, gb, &err) == BLUA_OK);
    double *rW = malloc((size_t)(m0 * m1) * sizeof *rW), rb[8];
    for (int64_t j = 0; j < m1; j++) {
      rb[j] = 0;
      for (int64_t i = 0; i < n; i++) rb[j] += scale * rr[i * m1 + j];
      for (int64_t a = 0; a < m0; a++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += at(xp, i, a) * rr[i * m1 + j];
        rW[a * m1 + j] = scale * s;
      }
    }
    CHECK(worst_diff(gW, rW) < 1e-5 && worst_diff(gb, rb) < 1e-5);
    /* z now holds the residual. */
    CHECK(worst_diff(z, rr) < 1e-5);
    free(rr);
    free(rW);
    blua_tensor *all[] = {xp, W, b, x, z, gW, gb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
  }
}

static void test_spectral_norm(void) {
  /* diag(3, 2, 1) rotated by a permutation: norm 3 exactly. */
  blua_tensor *D = blua_tensor_new2d(3, 4, &err);
  *blua_tensor_at(D, 0, 2) = 2;
  *blua_tensor_at(D, 1, 0) = -3;
  *blua_tensor_at(D, 2, 3) = 1;
  CHECK(fabs(blua_spectral_norm(D, 200, NULL) - 3.0) < 1e-5);
  /* Random matrix against power iteration in double on WᵀW. */
  blua_tensor *W = randn(17, 9);
  double v[9], u[17], s = 0;
  for (int j = 0; j < 9; j++) v[j] = 1 + 0.1 * j;
  for (int it = 0; it < 5000; it++) {
    double nv = 0;
    for (int j = 0; j < 9; j++) nv += v[j] * v[j];
    nv = sqrt(nv);
    s = 0;
    for (int i = 0; i < 17; i++) {
      u[i] = 0;
      for (int j = 0; j < 9; j++) u[i] += at(W, i, j) * v[j] / nv;
      s += u[i] * u[i];
    }
    s = sqrt(s);
    for (int j = 0; j < 9; j++) {
      v[j] = 0;
      for (int i = 0; i < 17; i++) v[j] += at(W, i, j) * u[i];
    }
  }
  blua_tensor *start = blua_tensor_new1d(9, &err);
  double est = blua_spectral_norm(W, 500, start);
  CHECK(fabs(est - s) <= 1e-4 * s);
  CHECK(fabs(blua_tensor_norm(start) - 1) < 1e-5);
  /* Warm start: one more step stays put; a fixed start is deterministic. */
  CHECK(fabs(blua_spectral_norm(W, 1, start) - est) <= 1e-4 * est);
  CHECK(blua_spectral_norm(W, 3, NULL) == blua_spectral_norm(W, 3, NULL));
  /* A transposed view has the same norm; a wrong start vector and NaN are reported. */
  blua_tensor *Wt = blua_tensor_transpose(W, &err), *bad = blua_tensor_new1d(4, &err);
  CHECK(fabs(blua_spectral_norm(Wt, 500, NULL) - s) <= 1e-4 * s);
  CHECK(isnan(blua_spectral_norm(W, 5, bad)));
  *blua_tensor_at(W, 3, 3) = NAN;
  CHECK(isnan(blua_spectral_norm(W, 5, NULL)));
  blua_tensor *all[] = {D, W, start, Wt, bad};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) blua_tensor_release(all[i]);
}

int main(void) {
  blua_manual_seed(3);
  test_affine();
  test_xstep();
  test_wgrad_energy();
  test_spectral_norm();
  return check_summary();
}
