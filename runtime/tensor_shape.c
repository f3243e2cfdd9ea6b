/* Shapes and small linear algebra on tensors: the core of runtime/ltensor_shape.c. Loops walk
 * views run by run (blua_tensor_runs: the last dimension is the inner loop), so every function
 * is right for transposed, narrowed and permuted views; the products go to BLAS through
 * blua_mm with 1-D operands seen as one-column or one-row matrices. */
#include "blua/tensor_shape.h"

#include <math.h>
#include <string.h>

#define SHAPE_LEN 160

int blua_tensor_addcmul(blua_tensor *t, double v, const blua_tensor *a, const blua_tensor *b, int divide,
                        blua_err *err) {
  char st[SHAPE_LEN], sa[SHAPE_LEN], sb[SHAPE_LEN];
  if (!blua_tensor_same_shape(t, a) || !blua_tensor_same_shape(t, b))
    return blua_fail(err, "size mismatch: %s += %s %c %s", blua_tensor_shape(t, st, sizeof st),
                     blua_tensor_shape(a, sa, sizeof sa), divide ? '/' : '*', blua_tensor_shape(b, sb, sizeof sb));
  if (blua_tensor_nelement(t) == 0) return BLUA_OK;
  blua_tensor *ca, *cb = NULL;
  const blua_tensor *pa = blua_tensor_apart_from(t, a, &ca, err), *pb = pa ? blua_tensor_apart_from(t, b, &cb, err) : NULL;
  if (!pa || !pb) {
    blua_tensor_release(ca);
    return BLUA_ERROR;
  }
  int last = t->dim - 1;
  int64_t runs = blua_tensor_runs(t), len = t->size[last];
  int64_t st_ = t->stride[last], sa_ = pa->stride[last], sb_ = pb->stride[last];
  float *dt = blua_tensor_data(t);
  const float *da = blua_tensor_data(pa), *db = blua_tensor_data(pb);
  for (int64_t r = 0; r < runs; r++) {
    float *pt = dt + blua_tensor_run_offset(t, r);
    const float *qa = da + blua_tensor_run_offset(pa, r), *qb = db + blua_tensor_run_offset(pb, r);
    if (divide)
      for (int64_t j = 0; j < len; j++)
        pt[j * st_] = (float)((double)pt[j * st_] + v * (double)qa[j * sa_] / (double)qb[j * sb_]);
    else
      for (int64_t j = 0; j < len; j++)
        pt[j * st_] = (float)((double)pt[j * st_] + v * (double)qa[j * sa_] * (double)qb[j * sb_]);
  }
  blua_tensor_release(ca);
  blua_tensor_release(cb);
  return BLUA_OK;
}

/* A 1-D tensor as an n x 1 (column) or 1 x n (row) matrix over the same entries. */
static blua_tensor as_column(const blua_tensor *v) {
  blua_tensor c = *v;
  c.dim = 2;
  c.size[1] = 1;
  c.stride[1] = 1;
  return c;
}

static blua_tensor as_row(const blua_tensor *v) {
  blua_tensor c = *v;
  c.dim = 2;
  c.size[0] = 1;
  c.size[1] = v->size[0];
  c.stride[0] = 1;
  c.stride[1] = v->stride[0];
  return c;
}

/* The result of a product with an empty inner dimension: beta·out (0 when beta is 0). */
static int scale_only(blua_tensor *out, float beta, blua_err *err) {
  if (beta == 0.0f) {
    blua_tensor_fill(out, 0.0f);
    return BLUA_OK;
  }
  return blua_tensor_affine(out, out, beta, 0.0f, err);
}

int blua_addmv(blua_tensor *y, float beta, float alpha, const blua_tensor *m, const blua_tensor *x, blua_err *err) {
  char sy[SHAPE_LEN], sm[SHAPE_LEN], sx[SHAPE_LEN];
  if (m->dim != 2 || x->dim != 1 || y->dim != 1 || m->size[1] != x->size[0] || y->size[0] != m->size[0])
    return blua_fail(err, "size mismatch: %s + %s * %s (a vector plus a matrix times a vector)",
                     blua_tensor_shape(y, sy, sizeof sy), blua_tensor_shape(m, sm, sizeof sm),
                     blua_tensor_shape(x, sx, sizeof sx));
  if (m->size[1] == 0) return scale_only(y, beta, err);
  blua_tensor cy = as_column(y), cx = as_column(x);
  return blua_mm(&cy, beta, alpha, m, &cx, err);
}

int blua_addr(blua_tensor *a, float beta, float alpha, const blua_tensor *x, const blua_tensor *y, blua_err *err) {
  char sa[SHAPE_LEN], sx[SHAPE_LEN], sy[SHAPE_LEN];
  if (a->dim != 2 || x->dim != 1 || y->dim != 1 || a->size[0] != x->size[0] || a->size[1] != y->size[0])
    return blua_fail(err, "size mismatch: %s + %s (x) %s (a matrix plus the outer product of two vectors)",
                     blua_tensor_shape(a, sa, sizeof sa), blua_tensor_shape(x, sx, sizeof sx),
                     blua_tensor_shape(y, sy, sizeof sy));
  blua_tensor cx = as_column(x), ry = as_row(y);
  return blua_mm(a, beta, alpha, &cx, &ry, err);
}

/* Entry i of t along its first dimension, a view by value (no reference taken: it lives while
 * t does). */
static blua_tensor batch_entry(const blua_tensor *t, int64_t i) {
  blua_tensor v = *t;
  v.offset += (size_t)(i * t->stride[0]);
  v.dim = t->dim - 1;
  for (int d = 0; d < BLUA_MAX_DIM; d++) {
    v.size[d] = d + 1 < t->dim ? t->size[d + 1] : 1;
    v.stride[d] = d + 1 < t->dim ? t->stride[d + 1] : 1;
  }
  return v;
}

int blua_baddbmm(blua_tensor *c, float beta, float alpha, const blua_tensor *a, const blua_tensor *b, int sum,
                 blua_err *err) {
  char sc[SHAPE_LEN], sa[SHAPE_LEN], sb[SHAPE_LEN];
  int ok = a->dim == 3 && b->dim == 3 && a->size[0] == b->size[0] && a->size[2] == b->size[1];
  if (ok && sum) ok = c->dim == 2 && c->size[0] == a->size[1] && c->size[1] == b->size[2];
  if (ok && !sum) ok = c->dim == 3 && c->size[0] == a->size[0] && c->size[1] == a->size[1] && c->size[2] == b->size[2];
  if (!ok)
    return blua_fail(err, "size mismatch: %s * %s -> %s (%s)", blua_tensor_shape(a, sa, sizeof sa),
                     blua_tensor_shape(b, sb, sizeof sb), blua_tensor_shape(c, sc, sizeof sc),
                     sum ? "n x p x q * n x q x r summed into p x r" : "n x p x q * n x q x r -> n x p x r");
  int64_t n = a->size[0];
  if (blua_tensor_nelement(c) == 0) return BLUA_OK;
  /* A later batch entry may read what an earlier one wrote when c shares memory with a or b:
   * then work on a private copy of c. */
  int aside = c->storage == a->storage || c->storage == b->storage;
  blua_tensor *out = aside ? blua_tensor_clone(c, err) : c;
  if (!out) return BLUA_ERROR;
  int status = BLUA_OK;
  if (a->size[2] == 0 || n == 0) {
    status = scale_only(out, beta, err); /* every product is empty (or there is none) */
  } else {
    for (int64_t i = 0; i < n && status == BLUA_OK; i++) {
      blua_tensor ai = batch_entry(a, i), bi = batch_entry(b, i), ci = sum ? *out : batch_entry(out, i);
      /* The sum: the first product scales c by beta, the later ones add to it. */
      status = blua_mm(&ci, sum && i > 0 ? 1.0f : beta, alpha, &ai, &bi, err);
    }
  }
  if (aside) {
    if (status == BLUA_OK) status = blua_tensor_copy(c, out, err);
    blua_tensor_release(out);
  }
  return status;
}

blua_tensor *blua_tensor_range(double a, double b, double step, blua_err *err) {
  if (!isfinite(a) || !isfinite(b) || !isfinite(step)) {
    blua_fail(err, "bad range: from %g to %g by %g (finite numbers expected)", a, b, step);
    return NULL;
  }
  if (step == 0 || (b > a && step < 0) || (b < a && step > 0)) {
    blua_fail(err, "bad range: step %g does not lead from %g to %g", step, a, b);
    return NULL;
  }
  double q = floor((b - a) / step); /* >= 0; infinite when b - a overflows or step is tiny */
  if (!(q < (double)BLUA_MAX_ELEMENTS)) {
    blua_fail(err, "tensor too large: from %g to %g by %g makes %g entries (at most 2^34)", a, b, step, q + 1);
    return NULL;
  }
  int64_t n = (int64_t)q + 1;
  blua_tensor *r = blua_tensor_empty(1, n, 1, err);
  if (!r) return NULL;
  float *p = blua_tensor_data(r);
  for (int64_t k = 0; k < n; k++) p[k] = (float)(a + (double)k * step);
  return r;
}

blua_tensor *blua_tensor_linspace(double a, double b, int64_t n, int log10, blua_err *err) {
  if (!isfinite(a) || !isfinite(b)) {
    blua_fail(err, "bad bounds: %g and %g (finite numbers expected)", a, b);
    return NULL;
  }
  if (n < 1 || (n == 1 && a != b)) {
    blua_fail(err, "bad number of points: %lld from %g to %g (2 or more, or 1 when both ends are equal)",
              (long long)n, a, b);
    return NULL;
  }
  double step = n > 1 ? (b - a) / (double)(n - 1) : 0.0;
  if (!isfinite(step)) {
    blua_fail(err, "bad bounds: %g to %g is wider than a double holds", a, b);
    return NULL;
  }
  blua_tensor *r = blua_tensor_empty(1, n, 1, err);
  if (!r) return NULL;
  float *p = blua_tensor_data(r);
  for (int64_t k = 0; k < n; k++) {
    double v = k == n - 1 ? b : a + (double)k * step;
    p[k] = (float)(log10 ? pow(10.0, v) : v);
  }
  return r;
}

blua_tensor *blua_tensor_diag(const blua_tensor *t, int64_t k, blua_err *err) {
  char s[SHAPE_LEN];
  if (k < -BLUA_MAX_ELEMENTS || k > BLUA_MAX_ELEMENTS) {
    blua_fail(err, "bad diagonal: %lld (|k| at most 2^34)", (long long)k);
    return NULL;
  }
  int64_t shift = k < 0 ? -k : k;
  if (t->dim == 1) {
    int64_t n = t->size[0], m = n + shift;
    blua_tensor *r = blua_tensor_new(2, m, m, err);
    if (!r) return NULL;
    const float *src = blua_tensor_data(t);
    for (int64_t i = 0; i < n; i++) *blua_tensor_at(r, k >= 0 ? i : i + shift, k >= 0 ? i + shift : i) = src[i * t->stride[0]];
    return r;
  }
  if (t->dim != 2) {
    blua_fail(err, "a vector or a matrix expected: %s", blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  int64_t rows = t->size[0], cols = t->size[1];
  if ((k >= 0 && k > cols) || (k < 0 && shift > rows)) {
    blua_fail(err, "bad diagonal: %lld of a %s matrix (%lld..%lld)", (long long)k, blua_tensor_shape(t, s, sizeof s),
              (long long)-rows, (long long)cols);
    return NULL;
  }
  int64_t len = k >= 0 ? (rows < cols - k ? rows : cols - k) : (rows - shift < cols ? rows - shift : cols);
  blua_tensor *r = blua_tensor_empty(1, len, 1, err);
  if (!r) return NULL;
  float *dst = blua_tensor_data(r);
  for (int64_t i = 0; i < len; i++) dst[i] = *blua_tensor_at(t, k >= 0 ? i : i + shift, k >= 0 ? i + shift : i);
  return r;
}

int blua_tensor_trace(const blua_tensor *t, double *out, blua_err *err) {
  char s[SHAPE_LEN];
  if (t->dim != 2) return blua_fail(err, "a matrix expected: %s", blua_tensor_shape(t, s, sizeof s));
  int64_t n = t->size[0] < t->size[1] ? t->size[0] : t->size[1];
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += *blua_tensor_at(t, i, i);
  *out = sum;
  return BLUA_OK;
}

blua_tensor *blua_tensor_tri(const blua_tensor *t, int64_t k, int upper, blua_err *err) {
  char s[SHAPE_LEN];
  if (t->dim != 2) {
    blua_fail(err, "a matrix expected: %s", blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  blua_tensor *r = blua_tensor_empty(2, t->size[0], t->size[1], err);
  if (!r) return NULL;
  float *dst = blua_tensor_data(r);
  int64_t cols = t->size[1];
  for (int64_t i = 0; i < t->size[0]; i++)
    for (int64_t j = 0; j < cols; j++) {
      int keep = upper ? j - i >= k : j - i <= k; /* j - i is within ±2^34: no overflow */
      dst[i * cols + j] = keep ? *blua_tensor_at(t, i, j) : 0.0f;
    }
  return r;
}

blua_tensor *blua_tensor_repeat(const blua_tensor *t, int n, const int64_t *reps, blua_err *err) {
  char s[SHAPE_LEN];
  if (n < t->dim || n > BLUA_MAX_DIM) {
    blua_fail(err, "bad repetitions: %d counts for a %s tensor (%d..%d expected)", n, blua_tensor_shape(t, s, sizeof s),
              t->dim, BLUA_MAX_DIM);
    return NULL;
  }
  /* t seen with n dimensions: leading sizes 1. */
  int64_t ssize[BLUA_MAX_DIM], sstride[BLUA_MAX_DIM], size[BLUA_MAX_DIM];
  int pad = n - t->dim;
  for (int d = 0; d < n; d++) {
    ssize[d] = d < pad ? 1 : t->size[d - pad];
    sstride[d] = d < pad ? 0 : t->stride[d - pad];
    if (reps[d] < 0) {
      blua_fail(err, "bad repetitions: %lld along dimension %d (counts must be non-negative)", (long long)reps[d], d + 1);
      return NULL;
    }
    if (ssize[d] != 0 && reps[d] > BLUA_MAX_ELEMENTS / ssize[d]) {
      blua_fail(err, "tensor too large: %s repeated %lld times along dimension %d (at most 2^34 elements)",
                blua_tensor_shape(t, s, sizeof s), (long long)reps[d], d + 1);
      return NULL;
    }
    size[d] = ssize[d] * reps[d];
  }
  blua_tensor *r = blua_tensor_empty_nd(n, size, err);
  if (!r || blua_tensor_nelement(r) == 0) return r;
  float *dst = blua_tensor_data(r);
  const float *src = blua_tensor_data(t);
  int64_t runs = blua_tensor_runs(r), len = size[n - 1], slen = ssize[n - 1], sstep = sstride[n - 1];
  for (int64_t q = 0; q < runs; q++) {
    int64_t off = 0, rest = q;
    for (int d = n - 2; d >= 0; d--) {
      off += (rest % size[d]) % ssize[d] * sstride[d];
      rest /= size[d];
    }
    float *out = dst + q * len;
    for (int64_t j = 0, jj = 0; j < len; j++) {
      out[j] = src[off + jj * sstep];
      if (++jj == slen) jj = 0;
    }
  }
  return r;
}

int blua_tensor_equal(const blua_tensor *a, const blua_tensor *b) {
  if (!blua_tensor_same_shape(a, b)) return 0;
  if (blua_tensor_nelement(a) == 0) return 1;
  int last = a->dim - 1;
  int64_t runs = blua_tensor_runs(a), len = a->size[last], sa = a->stride[last], sb = b->stride[last];
  const float *da = blua_tensor_data(a), *db = blua_tensor_data(b);
  for (int64_t r = 0; r < runs; r++) {
    const float *pa = da + blua_tensor_run_offset(a, r), *pb = db + blua_tensor_run_offset(b, r);
    for (int64_t j = 0; j < len; j++)
      if (!(pa[j * sa] == pb[j * sb])) return 0;
  }
  return 1;
}
