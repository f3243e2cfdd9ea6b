/* Fused optimiser updates (blua/optim.h). */
#include "blua/optim.h"

#include <math.h>
#include <stdlib.h>

#include "blua/team.h"
#include "flat_run.h"
#include "par.h"

static int same_shapes(const blua_tensor *x, const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  char sx[48], so[48];
  const blua_tensor *bad = !blua_tensor_same_shape(x, a) ? a : (b && !blua_tensor_same_shape(x, b)) ? b : NULL;
  if (bad)
    return blua_fail(err, "size mismatch: parameter %s and state %s", blua_tensor_shape(x, sx, sizeof sx),
                     blua_tensor_shape(bad, so, sizeof so));
  /* The strided loops address elements as (row, column): N-d views must collapse to that. */
  if (blua_tensor_check_matrix(x, err) || blua_tensor_check_matrix(a, err) || (b && blua_tensor_check_matrix(b, err)))
    return BLUA_ERROR;
  return BLUA_OK;
}

static int all_contiguous(const blua_tensor *a, const blua_tensor *b, const blua_tensor *c, const blua_tensor *d) {
  return blua_tensor_is_contiguous(a) && blua_tensor_is_contiguous(b) && blua_tensor_is_contiguous(c) &&
         (!d || blua_tensor_is_contiguous(d));
}

/* Adam's constants for one step. */
typedef struct {
  float step, b1, b2, e, isc2, decay;
} adam_consts;

static int adam_setup(adam_consts *c, double lr, double beta1, double beta2, double eps, double weight_decay, long t,
                      blua_err *err) {
  if (t < 1) return blua_fail(err, "bad step: Adam's step count starts at 1, got %ld", t);
  double c1 = 1.0 - pow(beta1, (double)t), c2 = 1.0 - pow(beta2, (double)t);
  *c = (adam_consts){(float)(lr / c1), (float)beta1, (float)beta2, (float)eps, (float)(1.0 / sqrt(c2)),
                     (float)(lr * weight_decay)};
  return BLUA_OK;
}

/* The flat optimiser loops are bound by vector division and square root: compiled for AVX-512
 * and AVX2 as well, they take 16 and 8 entries at a time (the same bits: both operations are
 * correctly rounded at every width, and no multiply-add is fused). */
#if defined(__x86_64__) && (defined(__clang__) ? __clang_major__ >= 14 : defined(__GNUC__))
#define OPTIM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OPTIM_CLONES
#endif

/* Adam on n contiguous entries (inlined into the clones of its callers). */
static inline void adam_run(const adam_consts *c, float *px, float *pm, float *pv, const float *pg, int64_t n) {
  const float step = c->step, b1 = c->b1, b2 = c->b2, e = c->e, isc2 = c->isc2, decay = c->decay;
#pragma omp simd
  for (int64_t k = 0; k < n; k++) {
    pm[k] = b1 * pm[k] + (1.0f - b1) * pg[k];
    pv[k] = b2 * pv[k] + (1.0f - b2) * pg[k] * pg[k];
    px[k] -= step * pm[k] / (sqrtf(pv[k]) * isc2 + e) + decay * px[k];
  }
}

/* The same with the gradient pg + pg2, added as blua_tensors_accumulate adds two shares'
 * gradients, so the step has the bits of adding first and stepping after. */
static inline void adam_run_sum(const adam_consts *c, float *px, float *pm, float *pv, const float *pg,
                                const float *pg2, int64_t n) {
  const float step = c->step, b1 = c->b1, b2 = c->b2, e = c->e, isc2 = c->isc2, decay = c->decay;
#pragma omp simd
  for (int64_t k = 0; k < n; k++) {
    float g = pg[k] + 1.0f * pg2[k];
    pm[k] = b1 * pm[k] + (1.0f - b1) * g;
    pv[k] = b2 * pv[k] + (1.0f - b2) * g * g;
    px[k] -= step * pm[k] / (sqrtf(pv[k]) * isc2 + e) + decay * px[k];
  }
}

/* Several contiguous tensors read as one run of entries (flat_run.h); pg2 NULL or a second
 * gradient to add. */
typedef struct {
  int n;
  const int64_t *start;
  float *const *px, *const *pm, *const *pv;
  const float *const *pg, *const *pg2;
  adam_consts c;
} adam_ctx;

/* Adam on entries [lo, hi) of the run. */
OPTIM_CLONES static void adam_range(void *ctx, int64_t lo, int64_t hi) {
  const adam_ctx *a = ctx;
  if (a->pg2)
    FLAT_RUN_PIECES(a->start, lo, hi, i, off, len,
                    adam_run_sum(&a->c, a->px[i] + off, a->pm[i] + off, a->pv[i] + off, a->pg[i] + off,
                                 a->pg2[i] + off, len));
  else
    FLAT_RUN_PIECES(a->start, lo, hi, i, off, len,
                    adam_run(&a->c, a->px[i] + off, a->pm[i] + off, a->pv[i] + off, a->pg[i] + off, len));
}

/* One tensor that is not contiguous, entry by entry. */
static void adam_strided(const adam_consts *c, blua_tensor *x, const blua_tensor *g, blua_tensor *m, blua_tensor *v) {
  const float step = c->step, b1 = c->b1, b2 = c->b2, e = c->e, isc2 = c->isc2, decay = c->decay;
  int64_t rows = blua_tensor_rows(x), cols = blua_tensor_cols(x);
  BLUA_PAR(rows * cols > BLUA_OMP_THRESHOLD, "omp parallel for",
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      float *px = blua_tensor_at(x, i, j), *pm = blua_tensor_at(m, i, j), *pv = blua_tensor_at(v, i, j);
      float gi = *blua_tensor_at(g, i, j);
      *pm = b1 * *pm + (1.0f - b1) * gi;
      *pv = b2 * *pv + (1.0f - b2) * gi * gi;
      *px -= step * *pm / (sqrtf(*pv) * isc2 + e) + decay * *px;
    });
}

/* blua_adam_steps, and with g2 the same step on the gradients g + g2 (blua_adam_steps_sum). */
static int adam_steps(int n, blua_tensor *const *x, const blua_tensor *const *g, const blua_tensor *const *g2,
                      blua_tensor *const *m, blua_tensor *const *v, double lr, double beta1, double beta2, double eps,
                      double weight_decay, long t, blua_err *err) {
  adam_consts c;
  if (n < 0) return blua_fail(err, "bad list: %d tensors", n);
  for (int i = 0; i < n; i++)
    if (!x[i] || !g[i] || !m[i] || !v[i] || (g2 && !g2[i])) return blua_fail(err, "missing tensor %d of %d", i + 1, n);
  for (int i = 0; i < n; i++)
    if (same_shapes(x[i], g[i], m[i], err) || same_shapes(x[i], v[i], g2 ? g2[i] : NULL, err)) return BLUA_ERROR;
  if (adam_setup(&c, lr, beta1, beta2, eps, weight_decay, t, err)) return BLUA_ERROR;
  /* The contiguous tensors (the trainers' own parameters) run as one flat loop, split over the
   * threads in ranges across tensor boundaries: one hand-off for the whole step. */
  int64_t *start = malloc((size_t)(n + 1) * sizeof *start);
  float **ptr = malloc((size_t)(5 * n + 1) * sizeof *ptr);
  if (!start || !ptr) {
    free(start);
    free(ptr);
    return blua_fail(err, "out of memory: Adam on %d tensors", n);
  }
  int k = 0;
  start[0] = 0;
  for (int i = 0; i < n; i++) {
    if (!all_contiguous(x[i], g[i], m[i], v[i]) || (g2 && !blua_tensor_is_contiguous(g2[i]))) {
      /* (a view: the sum first, as the shares' sum would have made it, then the step) */
      if (g2 && blua_tensor_add((blua_tensor *)g[i], g[i], 1.0f, g2[i], err)) {
        free(start);
        free(ptr);
        return BLUA_ERROR;
      }
      adam_strided(&c, x[i], g[i], m[i], v[i]);
      continue;
    }
    ptr[k] = blua_tensor_data(x[i]);
    ptr[n + k] = blua_tensor_data(m[i]);
    ptr[2 * n + k] = blua_tensor_data(v[i]);
    ptr[3 * n + k] = (float *)blua_tensor_data((blua_tensor *)g[i]);
    ptr[4 * n + k] = g2 ? (float *)blua_tensor_data((blua_tensor *)g2[i]) : NULL;
    start[k + 1] = start[k] + blua_tensor_nelement(x[i]);
    k++;
  }
  adam_ctx a = {k, start, ptr, ptr + n, ptr + 2 * n, (const float *const *)(ptr + 3 * n),
                g2 ? (const float *const *)(ptr + 4 * n) : NULL, c};
  int64_t total = start[k];
  if (total > 0) blua_team_range(total, BLUA_TEAM_GRAIN, total > BLUA_OMP_THRESHOLD, adam_range, &a);
  free(start);
  free(ptr);
  return BLUA_OK;
}

int blua_adam_steps(int n, blua_tensor *const *x, const blua_tensor *const *g, blua_tensor *const *m,
                    blua_tensor *const *v, double lr, double beta1, double beta2, double eps, double weight_decay,
                    long t, blua_err *err) {
  return adam_steps(n, x, g, NULL, m, v, lr, beta1, beta2, eps, weight_decay, t, err);
}

int blua_adam_steps_sum(int n, blua_tensor *const *x, const blua_tensor *const *g, const blua_tensor *const *g2,
                        blua_tensor *const *m, blua_tensor *const *v, double lr, double beta1, double beta2, double eps,
                        double weight_decay, long t, blua_err *err) {
  return adam_steps(n, x, g, g2, m, v, lr, beta1, beta2, eps, weight_decay, t, err);
}

int blua_adam_step(blua_tensor *x, const blua_tensor *g, blua_tensor *m, blua_tensor *v, double lr, double beta1,
                   double beta2, double eps, double weight_decay, long t, blua_err *err) {
  return blua_adam_steps(1, &x, &g, &m, &v, lr, beta1, beta2, eps, weight_decay, t, err);
}

int blua_sgd_step(blua_tensor *x, const blua_tensor *g, blua_tensor *buf, double lr, double momentum,
                  int nesterov, double weight_decay, blua_err *err) {
  if (same_shapes(x, g, buf, err)) return BLUA_ERROR;
  float mu = (float)momentum, wd = (float)weight_decay, rate = (float)lr;
  int64_t rows = blua_tensor_rows(x), cols = blua_tensor_cols(x);
  if (all_contiguous(x, g, buf, NULL)) {
    int64_t n = rows * cols;
    float *px = blua_tensor_data(x), *pb = blua_tensor_data(buf);
    const float *pg = blua_tensor_data(g);
    BLUA_PAR_SIMD(n > BLUA_OMP_THRESHOLD, "omp parallel for simd",
    for (int64_t k = 0; k < n; k++) {
      float d = pg[k] + wd * px[k];
      pb[k] = mu * pb[k] + d;
      px[k] -= rate * (nesterov ? d + mu * pb[k] : pb[k]);
    });
    return BLUA_OK;
  }
  BLUA_PAR(rows * cols > BLUA_OMP_THRESHOLD, "omp parallel for",
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      float *px = blua_tensor_at(x, i, j), *pb = blua_tensor_at(buf, i, j);
      float d = *blua_tensor_at(g, i, j) + wd * *px;
      *pb = mu * *pb + d;
      *px -= rate * (nesterov ? d + mu * *pb : *pb);
    });
  return BLUA_OK;
}
