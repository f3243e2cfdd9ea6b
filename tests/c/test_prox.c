/* Unit tests of the proximal activations and penalties (blua/prox.h, blua/penalty.h): the
 * identities of docs/design.md (activations, penalties, X-step) for every built-in, checked
 * against formulas written out here in double, plus stability at |z| = 50, the fused X-steps,
 * non-contiguous operands, thread counts, the derived-prox solver and the error paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blua/blua.h"
#include "blua/penalty.h"
#include "blua/prox.h"
#include "check.h"

typedef struct {
  const char *name;
  double p1, p2;
} spec;

static const spec elementwise[] = {
    {"identity", NAN, NAN}, {"relu", NAN, NAN},  {"leaky_relu", 0.1, NAN}, {"leaky_relu", NAN, NAN},
    {"clip", -1.0, 2.0},    {"clip", NAN, NAN},  {"soft_threshold", 0.3, NAN}, {"sigmoid", NAN, NAN},
    {"tanh", NAN, NAN},
};
#define NSPECS (int)(sizeof elementwise / sizeof elementwise[0])

static blua_rng rng;

static blua_tensor *tensor(int64_t r, int64_t c) {
  blua_err err;
  return blua_tensor_new2d(r, c, &err);
}

static blua_tensor *scalar(double x) {
  blua_tensor *t = tensor(1, 1);
  blua_tensor_data(t)[0] = (float)x;
  return t;
}

static blua_act make(const spec *s) {
  blua_act act;
  blua_err err;
  int status = blua_act_init(&act, s->name, s->p1, s->p2, &err);
  CHECK(status == BLUA_OK);
  if (status != BLUA_OK) fprintf(stderr, "  %s: %s\n", s->name, err.msg);
  return act;
}

/* ---- reference formulas, in double ---- */

static double ref_forward(const blua_act *a, double z) {
  switch (a->kind) {
    case BLUA_ACT_RELU: return z > 0 ? z : 0;
    case BLUA_ACT_LEAKY_RELU: return z >= 0 ? z : a->a * z;
    case BLUA_ACT_CLIP: return fmin(fmax(z, a->a), a->b);
    case BLUA_ACT_SOFT_THRESHOLD: return z > a->a ? z - a->a : (z < -a->a ? z + a->a : 0);
    case BLUA_ACT_SIGMOID: return 1 / (1 + exp(-z));
    case BLUA_ACT_TANH: return tanh(z);
    default: return z;
  }
}

static double ref_derivative(const blua_act *a, double z) {
  switch (a->kind) {
    case BLUA_ACT_RELU: return z > 0;
    case BLUA_ACT_LEAKY_RELU: return z >= 0 ? 1 : a->a;
    case BLUA_ACT_CLIP: return z > a->a && z < a->b;
    case BLUA_ACT_SOFT_THRESHOLD: return fabs(z) > a->a;
    case BLUA_ACT_SIGMOID: { double s = 1 / (1 + exp(-z)); return s * (1 - s); }
    case BLUA_ACT_TANH: return 1 - tanh(z) * tanh(z);
    default: return 1;
  }
}

/* The closed forms of docs/design.md (activations) for prox_{μΦ}. */
static double ref_prox(const blua_act *a, double v, double mu) {
  double c = v / (1 + mu);
  switch (a->kind) {
    case BLUA_ACT_RELU: return c > 0 ? c : 0;
    case BLUA_ACT_LEAKY_RELU: return v >= 0 ? c : a->a * v / (a->a + mu);
    case BLUA_ACT_CLIP: return fmin(fmax(c, a->a), a->b);
    case BLUA_ACT_SOFT_THRESHOLD: {
      double t = a->a * mu / (1 + mu);
      return c > t ? c - t : (c < -t ? c + t : 0);
    }
    default: return c;
  }
}

/* prox_{μΦ} for sigmoid and tanh: bisection in double on μz + σ(z) = v, then σ(z). */
static double ref_smooth_prox(const blua_act *a, double v, double mu) {
  double lo = (v - 1) / mu, hi = (v + 1) / mu;
  for (int it = 0; it < 200; it++) {
    double mid = 0.5 * (lo + hi);
    if (mu * mid + ref_forward(a, mid) - v > 0) hi = mid; else lo = mid;
  }
  return ref_forward(a, 0.5 * (lo + hi));
}

/* A point of dom Ψ drawn at random, including the ends of bounded domains. */
static double random_in_domain(const blua_act *a) {
  double u = blua_rng_uniform(&rng);
  int end = blua_rng_below(&rng, 8) == 0;
  switch (a->kind) {
    case BLUA_ACT_RELU: return end ? 0 : 4 * u;
    case BLUA_ACT_CLIP: return end ? (u < 0.5 ? a->a : a->b) : a->a + (a->b - a->a) * u;
    case BLUA_ACT_SIGMOID: return end ? (u < 0.5 ? 0 : 1) : u;
    case BLUA_ACT_TANH: return end ? (u < 0.5 ? -1 : 1) : 2 * u - 1;
    default: return 6 * u - 3;
  }
}

static double kink_distance(const blua_act *a, double z) {
  switch (a->kind) {
    case BLUA_ACT_RELU: case BLUA_ACT_LEAKY_RELU: return fabs(z);
    case BLUA_ACT_CLIP: return fmin(fabs(z - a->a), fabs(z - a->b));
    case BLUA_ACT_SOFT_THRESHOLD: return fmin(fabs(z - a->a), fabs(z + a->a));
    default: return INFINITY;
  }
}

static double psi_at(const blua_act *a, double u) {
  blua_tensor *t = scalar(u);
  double r;
  blua_err err;
  CHECK(blua_act_psi(a, t, &r, &err) == BLUA_OK);
  blua_tensor_release(t);
  return r;
}

static double conj_at(const blua_act *a, double z) {
  blua_tensor *t = scalar(z);
  double r;
  blua_err err;
  CHECK(blua_act_conj(a, t, &r, &err) == BLUA_OK);
  blua_tensor_release(t);
  return r;
}

static double bregman_at(const blua_act *a, double y, double z) {
  blua_tensor *ty = scalar(y), *tz = scalar(z);
  double r;
  blua_err err;
  CHECK(blua_act_bregman(a, ty, tz, &r, &err) == BLUA_OK);
  blua_tensor_release(ty);
  blua_tensor_release(tz);
  return r;
}

static float forward_at(const blua_act *a, double z) {
  blua_tensor *t = scalar(z);
  blua_err err;
  CHECK(blua_act_forward(a, t, t, &err) == BLUA_OK);
  float r = blua_tensor_data(t)[0];
  blua_tensor_release(t);
  return r;
}

static float prox_at(const blua_act *a, double v, double mu) {
  blua_tensor *t = scalar(v);
  blua_err err;
  CHECK(blua_act_prox(a, t, t, mu, &err) == BLUA_OK);
  float r = blua_tensor_data(t)[0];
  blua_tensor_release(t);
  return r;
}

/* ---- elementwise kinds ---- */

static void test_forward_and_maps(const blua_act *a) {
  enum { N = 1000 };
  blua_tensor *z = tensor(20, N / 20), *out = tensor(20, N / 20), *d = tensor(20, N / 20), *m = tensor(20, N / 20),
              *p = tensor(20, N / 20);
  float *zz = blua_tensor_data(z);
  for (int i = 0; i < N; i++) zz[i] = (float)(3.0 * blua_rng_normal(&rng));
  zz[0] = 50.0f, zz[1] = -50.0f, zz[2] = 0.0f, zz[3] = a->a, zz[4] = a->b;
  blua_err err;
  CHECK(blua_act_forward(a, out, z, &err) == BLUA_OK);
  CHECK(blua_act_derivative(a, d, z, &err) == BLUA_OK);
  CHECK(blua_act_linear_mask(a, m, z, &err) == BLUA_OK);
  CHECK(blua_act_project(a, p, z, &err) == BLUA_OK);
  int bad_fwd = 0, bad_der = 0, bad_mask = 0, bad_proj = 0;
  for (int i = 0; i < N; i++) {
    double x = zz[i], s = ref_forward(a, x);
    if (fabs(blua_tensor_data(out)[i] - s) > 1e-6 * (1 + fabs(s))) bad_fwd++;
    if (fabs(blua_tensor_data(d)[i] - ref_derivative(a, x)) > 1e-6) bad_der++;
    double slope1 = a->kind == BLUA_ACT_SIGMOID || a->kind == BLUA_ACT_TANH ? 0 : ref_derivative(a, x) == 1;
    if (blua_tensor_data(m)[i] != slope1) bad_mask++;
    /* The projection onto the closed range: relu [0, ∞), clip [lo, hi], sigmoid [0, 1], tanh [-1, 1]. */
    double lo = -INFINITY, hi = INFINITY;
    if (a->kind == BLUA_ACT_RELU) lo = 0;
    if (a->kind == BLUA_ACT_CLIP) lo = a->a, hi = a->b;
    if (a->kind == BLUA_ACT_SIGMOID) lo = 0, hi = 1;
    if (a->kind == BLUA_ACT_TANH) lo = -1, hi = 1;
    if (blua_tensor_data(p)[i] != (float)fmin(fmax(x, lo), hi)) bad_proj++;
  }
  /* d σ'(z) in one pass: the same bits as the derivative times d. */
  {
    blua_tensor *dm = tensor(20, N / 20);
    float *dv = blua_tensor_data(dm);
    for (int i = 0; i < N; i++) dv[i] = (float)blua_rng_normal(&rng);
    blua_tensor *expect = blua_tensor_clone(dm, &err);
    CHECK(blua_tensor_cmul(expect, expect, d, &err) == BLUA_OK);
    CHECK(blua_act_derivative_mul(a, dm, z, &err) == BLUA_OK);
    CHECK(memcmp(blua_tensor_data(dm), blua_tensor_data(expect), N * sizeof(float)) == 0);
    blua_tensor_release(dm);
    blua_tensor_release(expect);
  }
  CHECK(bad_fwd == 0);
  CHECK(bad_der == 0);
  CHECK(bad_mask == 0);
  CHECK(bad_proj == 0);
  if (bad_fwd + bad_der + bad_mask + bad_proj)
    fprintf(stderr, "  %s: %d forward, %d derivative, %d mask, %d project mismatches\n", blua_act_kind_name(a->kind),
            bad_fwd, bad_der, bad_mask, bad_proj);
  /* In place gives the same values. */
  CHECK(blua_act_forward(a, z, z, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(z), blua_tensor_data(out), N * sizeof(float)) == 0);
  blua_tensor_release(z);
  blua_tensor_release(out);
  blua_tensor_release(d);
  blua_tensor_release(m);
  blua_tensor_release(p);
}

static void test_bregman_identities(const blua_act *a) {
  const char *name = blua_act_kind_name(a->kind);
  int bad_zero = 0, bad_lower = 0, bad_grad = 0, bad_conj = 0;
  for (int k = 0; k < 400; k++) {
    double z = 4.0 * blua_rng_normal(&rng);
    if (k == 0) z = 50;
    if (k == 1) z = -50;
    float s = forward_at(a, z);
    /* B(σ(z), z) = 0 */
    double b0 = bregman_at(a, s, z);
    if (!(fabs(b0) <= 1e-6 * (1 + fabs(z)))) bad_zero++;
    /* B(y, z) >= ½(y − σ(z))² on dom Ψ */
    double y = random_in_domain(a);
    double b = bregman_at(a, y, z), q = 0.5 * ((float)y - s) * ((float)y - s);
    if (!(b >= q - 1e-6 * (1 + q)) || !isfinite(b)) bad_lower++;
    /* the gradient of Φ* is σ(z): central differences on the float grid */
    if (kink_distance(a, z) > 1e-2 && fabs(z) < 40) {
      float zp = (float)(z + 1e-3), zm = (float)(z - 1e-3);
      double slope = (conj_at(a, zp) - conj_at(a, zm)) / ((double)zp - zm);
      if (fabs(slope - ref_forward(a, z)) > 1e-4 * (1 + fabs(z))) bad_grad++;
    }
    /* Fenchel–Young: Φ(y) + Φ*(z) − yz equals the stable Bregman form */
    double direct = 0.5 * (float)y * (float)y + psi_at(a, (float)y) + conj_at(a, z) - (float)y * (double)(float)z;
    if (fabs(direct - b) > 1e-6 * (1 + fabs(direct) + z * z)) bad_conj++;
  }
  CHECK(bad_zero == 0);
  CHECK(bad_lower == 0);
  CHECK(bad_grad == 0);
  CHECK(bad_conj == 0);
  if (bad_zero + bad_lower + bad_grad + bad_conj)
    fprintf(stderr, "  %s: %d B(s,z)!=0, %d lower-bound, %d conj-gradient, %d Fenchel-Young failures\n", name,
            bad_zero, bad_lower, bad_grad, bad_conj);
  /* Off the domain: +inf for Ψ and B (where the domain is bounded). */
  if (a->kind == BLUA_ACT_RELU || a->kind == BLUA_ACT_CLIP || a->kind == BLUA_ACT_SIGMOID || a->kind == BLUA_ACT_TANH) {
    double off = a->kind == BLUA_ACT_CLIP ? a->b + 0.5 : (a->kind == BLUA_ACT_RELU ? -0.5 : 1.5);
    CHECK(psi_at(a, off) == INFINITY);
    CHECK(bregman_at(a, off, 0.3) == INFINITY);
  }
}

/* J(w) = μ(½w² + Ψ(w)) + ½(w − v)², the objective the prox minimises. */
static double prox_objective(const blua_act *a, double w, double v, double mu) {
  return mu * (0.5 * w * w + psi_at(a, w)) + 0.5 * (w - v) * (w - v);
}

static void test_prox(const blua_act *a) {
  /* step sizes on both sides of the vector solvers' step-count thresholds (0.01, 0.1) */
  const double mus[] = {0.003, 0.01, 0.05, 0.1, 0.3, 1.0, 20.0};
  int bad_min = 0, bad_closed = 0;
  for (int m = 0; m < 7; m++) {
    double mu = mus[m];
    for (int k = 0; k < 150; k++) {
      double v = 4.0 * blua_rng_normal(&rng);
      if (k == 0) v = 50;
      if (k == 1) v = -50;
      float u = prox_at(a, v, mu);
      double ju = prox_objective(a, u, v, mu);
      double h = 1e-3 * (1 + fabs(u));
      if (!isfinite(ju) || prox_objective(a, (float)(u + h), v, mu) < ju - 1e-9 * (1 + fabs(ju)) ||
          prox_objective(a, (float)(u - h), v, mu) < ju - 1e-9 * (1 + fabs(ju)))
        bad_min++;
      if (a->kind == BLUA_ACT_SIGMOID || a->kind == BLUA_ACT_TANH) {
        if (fabs(u - ref_smooth_prox(a, v, mu)) > 2e-7) bad_closed++;
      } else if (fabs(u - ref_prox(a, v, mu)) > 1e-6 * (1 + fabs(v))) {
        bad_closed++;
      }
    }
  }
  CHECK(bad_min == 0);
  CHECK(bad_closed == 0);
  if (bad_min + bad_closed)
    fprintf(stderr, "  %s: prox %d not minimal, %d off the closed form\n", blua_act_kind_name(a->kind), bad_min,
            bad_closed);
  /* Stability far out. */
  float far = prox_at(a, 50.0, 1e-3), nfar = prox_at(a, -50.0, 1e-3);
  CHECK(isfinite(far) && isfinite(nfar));
  if (a->kind == BLUA_ACT_SIGMOID) CHECK(far == 1.0f && nfar >= 0.0f && nfar < 1e-6f);
  if (a->kind == BLUA_ACT_TANH) CHECK(far == 1.0f && nfar == -1.0f);
  /* Huge |v|, where u = v − μz cancels: the root z is then v/μ to within its size, so u = σ(v/μ)
   * (for μ = 1e30 and v = ±1e30, σ(±1); else saturated). */
  if (a->kind == BLUA_ACT_SIGMOID || a->kind == BLUA_ACT_TANH) {
    const double vs[] = {1e30, -1e30, 3e38, -3e38, 2e6, -2e6}, ms[] = {1e-30, 1e-3, 1.0, 1e30};
    int bad_far = 0;
    for (int i = 0; i < 6; i++)
      for (int m = 0; m < 4; m++) {
        double z = vs[i] / ms[m], want = a->kind == BLUA_ACT_SIGMOID ? 1.0 / (1.0 + exp(-z)) : tanh(z);
        float u = prox_at(a, (float)vs[i], ms[m]);
        if (!(fabs(u - want) <= 1e-6)) {
          bad_far++;
          fprintf(stderr, "  %s: prox(%g, mu %g) = %g, want %g\n", blua_act_kind_name(a->kind), vs[i], ms[m], u, want);
        }
      }
    CHECK(bad_far == 0);
  }
}

/* The vector solvers of sigmoid and tanh on whole tensors, where training puts them: v near the
 * saturated ends (sigmoid near 0 and 1, tanh near ±1), across the range and at the step sizes
 * around their step-count and certificate thresholds. Every entry within 1e-7 of the bisection
 * (the float solvers reach about 5e-8, one float rounding; the old double solver's bound was 2e-7). */
static void test_smooth_prox_block(const blua_act *a) {
  if (a->kind != BLUA_ACT_SIGMOID && a->kind != BLUA_ACT_TANH) return;
  enum { N = 6000 };
  const double mus[] = {1e-4, 1e-3, 0.009, 0.011, 0.02, 0.05, 0.13, 1.0, 30.0, 1e4};
  const double lo_end = a->kind == BLUA_ACT_SIGMOID ? 0.0 : -1.0;
  blua_tensor *v = tensor(60, N / 60), *u = tensor(60, N / 60);
  float *vv = blua_tensor_data(v);
  int bad = 0;
  double worst = 0.0;
  for (int m = 0; m < 10; m++) {
    for (int i = 0; i < N; i++) {
      double t = (double)i / N;
      if (i % 3 == 0) vv[i] = (float)(lo_end + 0.3 * (t - 0.5));  /* around the low end */
      else if (i % 3 == 1) vv[i] = (float)(1.0 + 0.3 * (t - 0.5)); /* around the high end */
      else vv[i] = (float)(60.0 * (t - 0.5));                        /* across the range */
    }
    blua_err err;
    CHECK(blua_act_prox(a, u, v, mus[m], &err) == BLUA_OK);
    for (int i = 0; i < N; i++) {
      double e = fabs(blua_tensor_data(u)[i] - ref_smooth_prox(a, vv[i], mus[m]));
      if (!(e <= 1e-7)) {
        if (bad++ < 5)
          fprintf(stderr, "  %s: prox(%.9g, mu %g) = %.9g, off by %.3g\n", blua_act_kind_name(a->kind), vv[i], mus[m],
                  blua_tensor_data(u)[i], e);
      }
      if (e > worst) worst = e;
    }
  }
  printf("%s prox on tensors: max error %.3g\n", blua_act_kind_name(a->kind), worst);
  CHECK(bad == 0);
  blua_tensor_release(v);
  blua_tensor_release(u);
}

static void test_stability(const blua_act *a) {
  /* Φ* at ±50 against its exact value; Φ*(z) grows like ½z² at most. */
  double cp = conj_at(a, 50), cm = conj_at(a, -50);
  CHECK(isfinite(cp) && isfinite(cm));
  if (a->kind == BLUA_ACT_SIGMOID) {
    CHECK_NEAR(cp, 50.0, 1e-12);
    CHECK(cm > 0 && fabs(cm - exp(-50.0)) < 1e-30);
  }
  if (a->kind == BLUA_ACT_TANH) {
    CHECK_NEAR(cp, 50.0 - log(2.0), 1e-12);
    CHECK_NEAR(cm, 50.0 - log(2.0), 1e-12);
  }
  if (a->kind == BLUA_ACT_RELU) CHECK(cp == 1250.0 && cm == 0.0);
  float sp = forward_at(a, 50), sm = forward_at(a, -50);
  CHECK(isfinite(sp) && isfinite(sm));
  CHECK_NEAR(sp, ref_forward(a, 50), 1e-6 * 50);
  CHECK_NEAR(sm, ref_forward(a, -50), 1e-6 * 50);
  /* Bregman at far-apart y and z stays finite and matches the Fenchel–Young value. */
  if (a->kind == BLUA_ACT_SIGMOID) {
    CHECK_NEAR(bregman_at(a, 0.0, 50.0), 50.0, 1e-9);  /* softplus(50) − 0 */
    CHECK_NEAR(bregman_at(a, 1.0, -50.0), 50.0, 1e-9); /* softplus(−50) + 50 */
  }
  if (a->kind == BLUA_ACT_TANH) CHECK_NEAR(bregman_at(a, -1.0, 50.0), 100.0, 1e-9);
}

static void test_xsteps(const blua_act *a) {
  blua_err err;
  int64_t r = 37, c = 11;
  blua_tensor *x = tensor(r, c), *z = tensor(r, c), *g = tensor(r, c), *v = tensor(r, c), *expect = tensor(r, c);
  blua_tensor_normal(x, 0, 1);
  blua_tensor_normal(z, 0, 2);
  blua_tensor_normal(g, 0, 0.5);
  if (a->kind == BLUA_ACT_RELU) blua_act_project(a, x, x, &err);
  const double mu = 0.7, gamma = 2.0;
  /* Bregman: prox(x + μ(z − g)) */
  CHECK(blua_xstep_bregman_point(v, x, z, g, mu, &err) == BLUA_OK);
  CHECK(blua_act_prox(a, expect, v, mu, &err) == BLUA_OK);
  blua_tensor *xb = blua_tensor_clone(x, &err);
  CHECK(blua_act_xstep_bregman(a, xb, z, g, mu, &err) == BLUA_OK);
  double diff = 0;
  for (int64_t i = 0; i < r * c; i++) diff = fmax(diff, fabs(blua_tensor_data(xb)[i] - blua_tensor_data(expect)[i]));
  CHECK(diff <= 1e-6);
  /* the point itself, in double */
  double pd = 0;
  for (int64_t i = 0; i < r * c; i++) {
    double e = blua_tensor_data(x)[i] + mu * ((double)blua_tensor_data(z)[i] - blua_tensor_data(g)[i]);
    pd = fmax(pd, fabs(blua_tensor_data(v)[i] - e));
  }
  CHECK(pd <= 1e-5);
  /* classical: Π(x − μ(γ(x − z) + g)) */
  CHECK(blua_xstep_lifted_point(v, x, z, g, mu, gamma, &err) == BLUA_OK);
  CHECK(blua_act_project(a, expect, v, &err) == BLUA_OK);
  blua_tensor *xl = blua_tensor_clone(x, &err);
  CHECK(blua_act_xstep_lifted(a, xl, z, g, mu, gamma, &err) == BLUA_OK);
  diff = 0;
  for (int64_t i = 0; i < r * c; i++) diff = fmax(diff, fabs(blua_tensor_data(xl)[i] - blua_tensor_data(expect)[i]));
  CHECK(diff <= 1e-6);
  /* bregman_grad = σ(z) − y, also written over y itself */
  CHECK(blua_act_forward(a, expect, z, &err) == BLUA_OK);
  CHECK(blua_tensor_add(expect, expect, -1.0f, x, &err) == BLUA_OK);
  CHECK(blua_act_bregman_grad(a, v, x, z, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(v), blua_tensor_data(expect), (size_t)(r * c) * sizeof(float)) == 0);
  blua_tensor *y2 = blua_tensor_clone(x, &err);
  CHECK(blua_act_bregman_grad(a, y2, y2, z, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(y2), blua_tensor_data(expect), (size_t)(r * c) * sizeof(float)) == 0);
  blua_tensor_release(y2);
  blua_tensor_release(xb);
  blua_tensor_release(xl);
  blua_tensor_release(x);
  blua_tensor_release(z);
  blua_tensor_release(g);
  blua_tensor_release(v);
  blua_tensor_release(expect);
}

/* ---- softmax ---- */

static void test_softmax(void) {
  blua_act a;
  blua_err err;
  CHECK(blua_act_init(&a, "softmax", NAN, NAN, &err) == BLUA_OK);
  int64_t r = 50, c = 10;
  blua_tensor *z = tensor(r, c), *s = tensor(r, c), *y = tensor(r, c), *gr = tensor(r, c);
  blua_tensor_normal(z, 0, 3);
  blua_tensor_data(z)[0] = 50.0f; /* a far-out score */
  blua_tensor_data(z)[c] = -50.0f;
  CHECK(blua_act_forward(&a, s, z, &err) == BLUA_OK);
  double ce = 0, lse_sum = 0, worst_sum = 0;
  for (int64_t i = 0; i < r; i++) {
    int64_t label = (int64_t)blua_rng_below(&rng, (uint64_t)c);
    const float *zi = blua_tensor_at(z, i, 0);
    double m = -INFINITY, t = 0, rs = 0;
    for (int64_t j = 0; j < c; j++) m = fmax(m, zi[j]);
    for (int64_t j = 0; j < c; j++) t += exp(zi[j] - m);
    double lse = m + log(t);
    lse_sum += lse;
    ce += lse - zi[label];
    for (int64_t j = 0; j < c; j++) {
      rs += *blua_tensor_at(s, i, j);
      CHECK_NEAR(*blua_tensor_at(s, i, j), exp(zi[j] - lse), 1e-6);
      *blua_tensor_at(y, i, j) = j == label;
    }
    worst_sum = fmax(worst_sum, fabs(rs - 1));
  }
  CHECK(worst_sum < 1e-5);
  double b, cj, ps;
  /* the output penalty is the softmax cross-entropy for one-hot targets */
  CHECK(blua_act_bregman(&a, y, z, &b, &err) == BLUA_OK);
  CHECK_NEAR(b, ce, 1e-9 * (1 + ce));
  CHECK(blua_act_conj(&a, z, &cj, &err) == BLUA_OK);
  CHECK_NEAR(cj, lse_sum, 1e-9 * (1 + fabs(lse_sum)));
  CHECK(blua_act_psi(&a, y, &ps, &err) == BLUA_OK);
  CHECK_NEAR(ps, -0.5 * (double)r, 1e-12); /* Σ u log u − ½‖u‖² at one-hot rows */
  /* B(softmax(z), z) = 0 and B >= ½‖y − σ(z)‖² */
  CHECK(blua_act_bregman(&a, s, z, &b, &err) == BLUA_OK);
  CHECK(fabs(b) < 1e-4);
  double q = 0;
  for (int64_t i = 0; i < r * c; i++) q += 0.5 * pow(blua_tensor_data(y)[i] - blua_tensor_data(s)[i], 2);
  CHECK(blua_act_bregman(&a, y, z, &b, &err) == BLUA_OK && b >= q);
  /* gradient = softmax(z) − y, and in place over z */
  CHECK(blua_act_bregman_grad(&a, gr, y, z, &err) == BLUA_OK);
  double gd = 0;
  for (int64_t i = 0; i < r * c; i++)
    gd = fmax(gd, fabs(blua_tensor_data(gr)[i] - (blua_tensor_data(s)[i] - blua_tensor_data(y)[i])));
  CHECK(gd < 1e-7);
  blua_tensor *zc = blua_tensor_clone(z, &err);
  CHECK(blua_act_bregman_grad(&a, zc, y, zc, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(zc), blua_tensor_data(gr), (size_t)(r * c) * sizeof(float)) == 0);
  /* the gradient of Φ* (logsumexp) is softmax: central differences on one row */
  blua_tensor *row = tensor(1, c);
  int bad = 0;
  for (int64_t j = 0; j < c; j++) {
    for (int64_t k = 0; k < c; k++) blua_tensor_data(row)[k] = *blua_tensor_at(z, 3, k);
    float z0 = blua_tensor_data(row)[j], zp = z0 + 1e-3f, zm = z0 - 1e-3f;
    double fp, fm;
    blua_tensor_data(row)[j] = zp;
    blua_act_conj(&a, row, &fp, &err);
    blua_tensor_data(row)[j] = zm;
    blua_act_conj(&a, row, &fm, &err);
    if (fabs((fp - fm) / ((double)zp - zm) - *blua_tensor_at(s, 3, j)) > 1e-5) bad++;
  }
  CHECK(bad == 0);
  /* off the simplex: +inf */
  CHECK(blua_act_psi(&a, z, &ps, &err) == BLUA_OK && ps == INFINITY);
  CHECK(blua_act_bregman(&a, z, z, &b, &err) == BLUA_OK && b == INFINITY);
  /* prox of μΦ on the simplex: u_j + μ log u_j − v_j is the same for every j (KKT), and moving
   * mass between two entries does not lower μ Σ u log u + ½‖u − v‖². */
  const double mus[] = {0.01, 0.5, 10};
  for (int m = 0; m < 3; m++) {
    double mu = mus[m];
    blua_tensor *u = tensor(r, c);
    CHECK(blua_act_prox(&a, u, z, mu, &err) == BLUA_OK);
    int bad_kkt = 0, bad_min = 0;
    for (int64_t i = 0; i < r; i++) {
      const float *ui = blua_tensor_at(u, i, 0), *vi = blua_tensor_at(z, i, 0);
      double sum = 0, lo = INFINITY, hi = -INFINITY;
      for (int64_t j = 0; j < c; j++) {
        sum += ui[j];
        if (ui[j] > 1e-4) { /* tiny entries carry no precision in float */
          double k = ui[j] + mu * log(ui[j]) - vi[j];
          lo = fmin(lo, k), hi = fmax(hi, k);
        }
      }
      if (fabs(sum - 1) > 1e-5 || hi - lo > 1e-4 * (1 + mu)) bad_kkt++;
      double j0 = 0;
      for (int64_t j = 0; j < c; j++) j0 += mu * (ui[j] > 0 ? ui[j] * log(ui[j]) : 0) + 0.5 * pow((double)ui[j] - vi[j], 2);
      for (int64_t p = 0; p + 1 < c; p++) {
        double h = 1e-3 * fmin(ui[p], ui[p + 1]);
        if (h <= 0) continue;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
          double j1 = 0;
          for (int64_t j = 0; j < c; j++) {
            double w = ui[j] + (j == p ? sgn * h : (j == p + 1 ? -sgn * h : 0));
            j1 += mu * (w > 0 ? w * log(w) : 0) + 0.5 * pow(w - vi[j], 2);
          }
          if (j1 < j0 - 1e-12 * (1 + fabs(j0))) bad_min++;
        }
      }
    }
    CHECK(bad_kkt == 0);
    CHECK(bad_min == 0);
    if (bad_kkt + bad_min) fprintf(stderr, "  softmax prox mu=%g: %d KKT, %d minimality failures\n", mu, bad_kkt, bad_min);
    blua_tensor_release(u);
  }
  /* at extreme inputs and steps the prox stays on the simplex and ignores a common shift:
   * prox(v + c·1) = prox(v). (With the largest entry left in, v = (3e38, 1, 0) at μ = 1 gave
   * (0.567, 0, 0), and (1e30, 1e30, 0) at μ = 1e6 summed to 2.) */
  {
    const float big[] = {0, 1, -1, 1e3f, -1e3f, 1e6f, -1e6f, 1e30f, -1e30f, 3e38f, -3e38f};
    const double steps[] = {1e-30, 1e-6, 1, 1e6, 1e30};
    const int nb = (int)(sizeof big / sizeof *big);
    blua_tensor *v = tensor(1, 3), *u = tensor(1, 3), *vs = tensor(1, 3), *us = tensor(1, 3);
    int off_simplex = 0, not_shift_free = 0, failed = 0;
    for (int m = 0; m < 5; m++)
      for (int i = 0; i < nb; i++)
        for (int k = 0; k < nb; k++) {
          float *pv = blua_tensor_data(v), *ps = blua_tensor_data(vs);
          pv[0] = big[i], pv[1] = big[k], pv[2] = 0;
          if (blua_act_prox(&a, u, v, steps[m], &err) != BLUA_OK) {
            failed++;
            continue;
          }
          const float *pu = blua_tensor_data(u);
          double sum = 0;
          for (int j = 0; j < 3; j++) {
            sum += pu[j];
            if (!(pu[j] >= 0 && pu[j] <= 1)) off_simplex++;
          }
          if (fabs(sum - 1) > 1e-5) off_simplex++;
          /* a shift that moves no entry by more than its own rounding */
          if (fabs(big[i]) < 1e6f && fabs(big[k]) < 1e6f) {
            for (int j = 0; j < 3; j++) ps[j] = pv[j] + 0.5f;
            if (blua_act_prox(&a, us, vs, steps[m], &err) != BLUA_OK) failed++;
            const float *pus = blua_tensor_data(us);
            for (int j = 0; j < 3; j++)
              if (fabs(pus[j] - pu[j]) > 1e-5) not_shift_free++;
          }
        }
    CHECK(failed == 0);
    CHECK(off_simplex == 0);
    CHECK(not_shift_free == 0);
    if (off_simplex + not_shift_free)
      fprintf(stderr, "  softmax prox at extremes: %d off the simplex, %d shift-dependent\n", off_simplex, not_shift_free);
    blua_tensor_release(v);
    blua_tensor_release(u);
    blua_tensor_release(vs);
    blua_tensor_release(us);
  }
  /* projection onto the simplex: on it, and v − u constant on the support, larger off it */
  blua_tensor *p = tensor(r, c);
  CHECK(blua_act_project(&a, p, z, &err) == BLUA_OK);
  int bad_proj = 0;
  for (int64_t i = 0; i < r; i++) {
    const float *pi = blua_tensor_at(p, i, 0), *vi = blua_tensor_at(z, i, 0);
    double sum = 0, theta = NAN;
    for (int64_t j = 0; j < c; j++) {
      sum += pi[j];
      if (pi[j] < 0) bad_proj++;
      if (pi[j] > 0) theta = vi[j] - pi[j];
    }
    for (int64_t j = 0; j < c; j++) {
      if (pi[j] > 0 && fabs(vi[j] - pi[j] - theta) > 1e-5) bad_proj++;
      if (pi[j] == 0 && vi[j] > theta + 1e-5) bad_proj++;
    }
    if (fabs(sum - 1) > 1e-5) bad_proj++;
  }
  CHECK(bad_proj == 0);
  /* the X-steps reduce to prox / projection of the same points */
  blua_tensor *x = tensor(r, c), *g = tensor(r, c), *v = tensor(r, c), *e = tensor(r, c);
  blua_tensor_copy(x, s, &err);
  blua_tensor_normal(g, 0, 0.3);
  CHECK(blua_xstep_bregman_point(v, x, z, g, 0.5, &err) == BLUA_OK);
  CHECK(blua_act_prox(&a, e, v, 0.5, &err) == BLUA_OK);
  CHECK(blua_act_xstep_bregman(&a, x, z, g, 0.5, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(x), blua_tensor_data(e), (size_t)(r * c) * sizeof(float)) == 0);
  CHECK(blua_xstep_lifted_point(v, x, z, g, 0.5, 1.5, &err) == BLUA_OK);
  CHECK(blua_act_project(&a, e, v, &err) == BLUA_OK);
  CHECK(blua_act_xstep_lifted(&a, x, z, g, 0.5, 1.5, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(x), blua_tensor_data(e), (size_t)(r * c) * sizeof(float)) == 0);
  /* no elementwise derivative; the mask is all zero */
  CHECK(blua_act_derivative(&a, gr, z, &err) == BLUA_ERROR && strstr(err.msg, "not elementwise") != NULL);
  CHECK(blua_act_linear_mask(&a, gr, z, &err) == BLUA_OK && blua_tensor_sum(gr) == 0.0);
  blua_tensor *tensors[] = {z, s, y, gr, zc, row, p, x, g, v, e};
  for (size_t k = 0; k < sizeof tensors / sizeof tensors[0]; k++) blua_tensor_release(tensors[k]);
}

/* ---- layout, threads, solver, errors ---- */

static void test_noncontiguous(void) {
  blua_err err;
  blua_act a;
  blua_act_init(&a, "sigmoid", NAN, NAN, &err);
  blua_tensor *base = tensor(7, 5);
  blua_tensor_normal(base, 0, 2);
  blua_tensor *t = blua_tensor_transpose(base, &err); /* 5x7 view */
  blua_tensor *tc = blua_tensor_clone(t, &err), *o1 = tensor(5, 7), *o2 = tensor(5, 7);
  CHECK(blua_act_prox(&a, o1, t, 0.3, &err) == BLUA_OK);
  CHECK(blua_act_prox(&a, o2, tc, 0.3, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(o1), blua_tensor_data(o2), 35 * sizeof(float)) == 0);
  double b1, b2;
  CHECK(blua_act_bregman(&a, o1, t, &b1, &err) == BLUA_OK && blua_act_bregman(&a, o2, tc, &b2, &err) == BLUA_OK);
  CHECK(b1 == b2);
  /* a non-contiguous output, here in place over the view */
  CHECK(blua_act_prox(&a, t, t, 0.3, &err) == BLUA_OK);
  int same = 1;
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 7; j++) same &= *blua_tensor_at(t, i, j) == *blua_tensor_at(o2, i, j);
  CHECK(same);
  /* overlapping shifted rows of one storage: the input is read before it is written */
  blua_tensor *big = tensor(6, 4);
  for (int i = 0; i < 24; i++) blua_tensor_data(big)[i] = (float)i - 10.0f;
  blua_tensor *expect = tensor(5, 4);
  blua_tensor *src = blua_tensor_narrow(big, 0, 1, 5, &err), *dst = blua_tensor_narrow(big, 0, 0, 5, &err);
  blua_act r;
  blua_act_init(&r, "relu", NAN, NAN, &err);
  CHECK(blua_act_forward(&r, expect, src, &err) == BLUA_OK);
  CHECK(blua_act_forward(&r, dst, src, &err) == BLUA_OK);
  CHECK(memcmp(blua_tensor_data(dst), blua_tensor_data(expect), 20 * sizeof(float)) == 0);
  blua_tensor *ts[] = {base, t, tc, o1, o2, big, expect, src, dst};
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) blua_tensor_release(ts[k]);
}

static void test_threads(void) {
  blua_err err;
  int64_t r = 400, c = 200; /* above BLUA_OMP_THRESHOLD */
  blua_tensor *v = tensor(r, c), *o1 = tensor(r, c), *o2 = tensor(r, c);
  blua_tensor_normal(v, 0, 3);
  const char *names[] = {"relu", "sigmoid", "tanh", "softmax"};
  int saved = blua_get_num_threads();
  for (int k = 0; k < 4; k++) {
    blua_act a;
    blua_act_init(&a, names[k], NAN, NAN, &err);
    double b1, b2;
    blua_set_num_threads(1);
    CHECK(blua_act_prox(&a, o1, v, 0.5, &err) == BLUA_OK);
    CHECK(blua_act_conj(&a, v, &b1, &err) == BLUA_OK);
    blua_set_num_threads(2);
    CHECK(blua_act_prox(&a, o2, v, 0.5, &err) == BLUA_OK);
    CHECK(blua_act_conj(&a, v, &b2, &err) == BLUA_OK);
    CHECK(memcmp(blua_tensor_data(o1), blua_tensor_data(o2), (size_t)(r * c) * sizeof(float)) == 0);
    CHECK_NEAR(b1, b2, 1e-9 * (1 + fabs(b1)));
  }
  blua_set_num_threads(saved);
  blua_tensor_release(v);
  blua_tensor_release(o1);
  blua_tensor_release(o2);
}

/* The derived prox, with σ evaluated by the forward kernel as a user activation would be. */
static void test_prox_solver(void) {
  blua_err err;
  const char *names[] = {"relu", "sigmoid", "tanh", "soft_threshold", "clip", "identity"};
  const double mus[] = {0.01, 0.5, 5};
  for (int k = 0; k < 6; k++) {
    blua_act a;
    blua_act_init(&a, names[k], NAN, NAN, &err);
    for (int m = 0; m < 3; m++) {
      int64_t r = 30, c = 20;
      blua_tensor *v = tensor(r, c), *zero = tensor(r, c), *s0 = tensor(r, c), *expect = tensor(r, c);
      blua_tensor_normal(v, 0, 4);
      blua_tensor_data(v)[0] = 50.0f;
      blua_tensor_data(v)[1] = -50.0f;
      blua_act_forward(&a, s0, zero, &err);
      blua_act_prox(&a, expect, v, mus[m], &err);
      blua_prox_solver *ps = blua_prox_solver_new(v, s0, mus[m], &err);
      CHECK(ps != NULL);
      int64_t remaining = 1;
      int it = 0;
      while (ps && remaining > 0 && it < 300) {
        blua_tensor *z = blua_prox_solver_trial(ps, &err);
        blua_act_forward(&a, z, z, &err);
        CHECK(blua_prox_solver_update(ps, z, &remaining, &err) == BLUA_OK);
        blua_tensor_release(z);
        it++;
      }
      CHECK(remaining == 0);
      blua_tensor *u = ps ? blua_prox_solver_result(ps) : NULL;
      double worst = 0;
      for (int64_t i = 0; u && i < r * c; i++)
        worst = fmax(worst, fabs(blua_tensor_data(u)[i] - blua_tensor_data(expect)[i]) /
                                (1 + fabs(blua_tensor_data(v)[i])));
      CHECK(worst <= 2e-6);
      /* a handful of evaluations of σ even for small μ (the bracket is then wide) */
      CHECK(it <= 20);
      if (getenv("PROX_DEBUG") || worst > 2e-6 || remaining) fprintf(stderr, "  solver %s mu=%g: error %g, %d iterations\n", names[k], mus[m], worst, it);
      blua_tensor_release(u);
      blua_prox_solver_free(ps);
      blua_tensor_release(v);
      blua_tensor_release(zero);
      blua_tensor_release(s0);
      blua_tensor_release(expect);
    }
  }
}

static void test_errors(void) {
  blua_err err;
  blua_act a;
  CHECK(blua_act_init(&a, "swish", NAN, NAN, &err) == BLUA_ERROR);
  CHECK(strstr(err.msg, "unknown activation: 'swish' (accepted: clip, identity, leaky_relu, relu") != NULL);
  CHECK(blua_act_init(&a, "leaky_relu", 1.5, NAN, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad parameter: leaky_relu slope must be in (0, 1], got 1.5") == 0);
  CHECK(blua_act_init(&a, "leaky_relu", 0.0, NAN, &err) == BLUA_ERROR);
  CHECK(blua_act_init(&a, "leaky_relu", 1.0, NAN, &err) == BLUA_OK && a.a == 1.0f);
  CHECK(blua_act_init(&a, "clip", 1.0, 1.0, &err) == BLUA_ERROR && strstr(err.msg, "lo < hi") != NULL);
  CHECK(blua_act_init(&a, "soft_threshold", -0.1, NAN, &err) == BLUA_ERROR && strstr(err.msg, "lambda") != NULL);
  CHECK(blua_act_init(&a, "clip", NAN, NAN, &err) == BLUA_OK && a.a == -1.0f && a.b == 1.0f);
  CHECK(blua_act_init(&a, "soft_threshold", NAN, NAN, &err) == BLUA_OK && a.a == 0.1f);
  CHECK(blua_act_init(&a, "leaky_relu", NAN, NAN, &err) == BLUA_OK && a.a == 0.01f);
  CHECK(blua_act_nparams(BLUA_ACT_CLIP) == 2 && strcmp(blua_act_param_name(BLUA_ACT_CLIP, 1), "hi") == 0);
  blua_act_init(&a, "relu", NAN, NAN, &err);
  blua_tensor *x = tensor(2, 3), *y = tensor(3, 2), *o = tensor(2, 3);
  double r;
  CHECK(blua_act_forward(&a, y, x, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: out 3x2, z 2x3") == 0);
  CHECK(blua_act_bregman(&a, x, y, &r, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "size mismatch: y 2x3, z 3x2") == 0);
  CHECK(blua_act_xstep_bregman(&a, x, x, y, 0.1, &err) == BLUA_ERROR && strstr(err.msg, "g 3x2") != NULL);
  CHECK(blua_act_prox(&a, o, x, 0.0, &err) == BLUA_ERROR);
  CHECK(strcmp(err.msg, "bad step: mu must be positive and finite, got 0") == 0);
  CHECK(blua_act_prox(&a, o, x, NAN, &err) == BLUA_ERROR);
  CHECK(blua_act_xstep_lifted(&a, x, x, x, 0.1, -1.0, &err) == BLUA_ERROR && strstr(err.msg, "gamma") != NULL);
  CHECK(blua_quadratic_penalty(x, y, 1.0, &r, &err) == BLUA_ERROR);
  blua_tensor_fill(o, 2.0f);
  CHECK(blua_quadratic_penalty(o, x, 3.0, &r, &err) == BLUA_OK && r == 0.5 * 3.0 * 6 * 4.0);
  a.kind = (blua_act_kind)99;
  CHECK(blua_act_forward(&a, o, x, &err) == BLUA_ERROR && strstr(err.msg, "bad activation") != NULL);
  CHECK(blua_prox_solver_new(x, y, 1.0, &err) == NULL && strstr(err.msg, "size mismatch") != NULL);
  blua_tensor_release(x);
  blua_tensor_release(y);
  blua_tensor_release(o);
}

int main(void) {
  blua_rng_seed(&rng, 20231);
  blua_manual_seed(7);
  for (int k = 0; k < NSPECS; k++) {
    blua_act a = make(&elementwise[k]);
    test_forward_and_maps(&a);
    test_bregman_identities(&a);
    test_prox(&a);
    test_smooth_prox_block(&a);
    test_stability(&a);
    test_xsteps(&a);
  }
  test_softmax();
  test_noncontiguous();
  test_threads();
  test_prox_solver();
  test_errors();
  return check_summary();
}
