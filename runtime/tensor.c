/* Tensor storage, views, copies, elementwise arithmetic and reductions. */
#include "blua/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blua/random.h"

/* ---- storage and creation ---- */

/* 64-byte aligned storage. Zero-filled storage comes from calloc, which maps large blocks as
 * fresh zero pages: a big blua.zeros costs nothing until it is written, and a request larger
 * than the machine fails here with an error instead of later in a page fault. */
static blua_storage *storage_new(size_t n, int zero, blua_err *err) {
  blua_storage *s = malloc(sizeof *s);
  if (!s) {
    blua_fail(err, "out of memory: storage header");
    return NULL;
  }
  size_t bytes = (n ? n : 1) * sizeof(float) + 64;
  s->base = zero ? calloc(1, bytes) : malloc(bytes);
  if (!s->base) {
    free(s);
    blua_fail(err, "out of memory: %zu bytes", bytes);
    return NULL;
  }
  s->data = (float *)(((uintptr_t)s->base + 63) & ~(uintptr_t)63);
  s->n = n;
  s->refcount = 1;
  return s;
}

static blua_tensor *tensor_header(blua_storage *s, blua_err *err) {
  blua_tensor *t = calloc(1, sizeof *t);
  if (!t) {
    blua_fail(err, "out of memory: tensor header");
    return NULL;
  }
  t->storage = s;
  s->refcount++;
  t->refcount = 1;
  return t;
}

static blua_tensor *tensor_alloc(int dim, int64_t rows, int64_t cols, int zero, blua_err *err) {
  if (dim != 1 && dim != 2) {
    blua_fail(err, "bad dimension: %d (1 or 2 expected)", dim);
    return NULL;
  }
  if (dim == 1) cols = 1;
  if (rows < 0 || cols < 0) {
    blua_fail(err, "bad size: %lldx%lld", (long long)rows, (long long)cols);
    return NULL;
  }
  if (cols > 0 && rows > BLUA_MAX_ELEMENTS / cols) {
    blua_fail(err, "tensor too large: %lldx%lld", (long long)rows, (long long)cols);
    return NULL;
  }
  blua_storage *s = storage_new((size_t)(rows * cols), zero, err);
  if (!s) return NULL;
  blua_tensor *t = tensor_header(s, err);
  s->refcount--; /* the header holds the only reference */
  if (!t) {
    free(s->base);
    free(s);
    return NULL;
  }
  t->dim = dim;
  t->size[0] = rows;
  t->size[1] = dim == 2 ? cols : 1;
  t->stride[0] = dim == 2 ? cols : 1;
  t->stride[1] = 1;
  return t;
}

blua_tensor *blua_tensor_new(int dim, int64_t rows, int64_t cols, blua_err *err) {
  return tensor_alloc(dim, rows, cols, 1, err);
}

blua_tensor *blua_tensor_empty(int dim, int64_t rows, int64_t cols, blua_err *err) {
  return tensor_alloc(dim, rows, cols, 0, err);
}

blua_tensor *blua_tensor_new2d(int64_t rows, int64_t cols, blua_err *err) {
  return blua_tensor_new(2, rows, cols, err);
}

blua_tensor *blua_tensor_new1d(int64_t n, blua_err *err) { return blua_tensor_new(1, n, 1, err); }

blua_tensor *blua_tensor_new_like(const blua_tensor *t, blua_err *err) {
  return blua_tensor_new(t->dim, t->size[0], t->size[1], err);
}

blua_tensor *blua_tensor_eye(int64_t n, blua_err *err) {
  blua_tensor *t = blua_tensor_new2d(n, n, err);
  if (t)
    for (int64_t i = 0; i < n; i++) *blua_tensor_at(t, i, i) = 1.0f;
  return t;
}

void blua_tensor_retain(blua_tensor *t) {
  if (t) t->refcount++;
}

void blua_tensor_release(blua_tensor *t) {
  if (!t || --t->refcount > 0) return;
  blua_storage *s = t->storage;
  if (--s->refcount == 0) {
    free(s->base);
    free(s);
  }
  free(t);
}

/* ---- layout ---- */

int blua_tensor_is_contiguous(const blua_tensor *t) {
  if (t->dim == 1) return t->stride[0] == 1 || t->size[0] <= 1;
  return (t->stride[1] == 1 || t->size[1] <= 1) && (t->stride[0] == t->size[1] || t->size[0] <= 1);
}

int blua_tensor_same_shape(const blua_tensor *a, const blua_tensor *b) {
  return a->dim == b->dim && a->size[0] == b->size[0] && a->size[1] == b->size[1];
}

const char *blua_tensor_shape(const blua_tensor *t, char *buf, size_t len) {
  if (t->dim == 1)
    snprintf(buf, len, "%lld", (long long)t->size[0]);
  else
    snprintf(buf, len, "%lldx%lld", (long long)t->size[0], (long long)t->size[1]);
  return buf;
}

static int shape_mismatch(blua_err *err, const blua_tensor *a, const blua_tensor *b) {
  char sa[48], sb[48];
  return blua_fail(err, "size mismatch: %s and %s", blua_tensor_shape(a, sa, sizeof sa),
                   blua_tensor_shape(b, sb, sizeof sb));
}

/* ---- views ---- */

static blua_tensor *view_of(blua_tensor *t, blua_err *err) {
  blua_tensor *v = tensor_header(t->storage, err);
  if (!v) return NULL;
  v->offset = t->offset;
  v->dim = t->dim;
  memcpy(v->size, t->size, sizeof v->size);
  memcpy(v->stride, t->stride, sizeof v->stride);
  return v;
}

blua_tensor *blua_tensor_narrow(blua_tensor *t, int dim, int64_t first, int64_t len, blua_err *err) {
  char s[48];
  if (dim < 0 || dim >= t->dim) {
    blua_fail(err, "bad dimension: %d for a %d-D tensor of size %s", dim + 1, t->dim,
              blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  if (first < 0 || len < 0 || first + len > t->size[dim]) {
    blua_fail(err, "out of range: elements %lld..%lld of dimension %d of size %s", (long long)first + 1,
              (long long)(first + len), dim + 1, blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  v->offset += (size_t)(first * t->stride[dim]);
  v->size[dim] = len;
  return v;
}

blua_tensor *blua_tensor_transpose(blua_tensor *t, blua_err *err) {
  blua_tensor *v = view_of(t, err);
  if (!v || t->dim == 1) return v;
  v->size[0] = t->size[1];
  v->size[1] = t->size[0];
  v->stride[0] = t->stride[1];
  v->stride[1] = t->stride[0];
  return v;
}

blua_tensor *blua_tensor_view(blua_tensor *t, int dim, int64_t rows, int64_t cols, blua_err *err) {
  char s[48];
  if (dim == 1) cols = 1;
  if (!blua_tensor_is_contiguous(t)) {
    blua_fail(err, "not contiguous: a view needs a contiguous tensor, got %s", blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  if ((dim != 1 && dim != 2) || rows < 0 || cols < 0 || rows * cols != blua_tensor_nelement(t)) {
    blua_fail(err, "size mismatch: cannot view %s as %lldx%lld", blua_tensor_shape(t, s, sizeof s),
              (long long)rows, (long long)cols);
    return NULL;
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  v->dim = dim;
  v->size[0] = rows;
  v->size[1] = dim == 2 ? cols : 1;
  v->stride[0] = dim == 2 ? cols : 1;
  v->stride[1] = 1;
  return v;
}

/* ---- copies ---- */

blua_tensor *blua_tensor_clone(const blua_tensor *t, blua_err *err) {
  blua_tensor *c = blua_tensor_empty(t->dim, t->size[0], t->size[1], err);
  if (c) blua_tensor_copy(c, t, err);
  return c;
}

blua_tensor *blua_tensor_contiguous(blua_tensor *t, blua_err *err) {
  if (blua_tensor_is_contiguous(t)) {
    blua_tensor_retain(t);
    return t;
  }
  return blua_tensor_clone(t, err);
}

/* Row-wise loops over (rows, cols) with the element strides of each operand. The row loop
 * goes parallel when the tensor is large enough to pay for the threads. */
#define ROWS(t) blua_tensor_rows(t)
#define COLS(t) blua_tensor_cols(t)
#define CS(t) ((t)->dim == 2 ? (t)->stride[1] : 0)
#define BIG(t) (blua_tensor_nelement(t) > BLUA_OMP_THRESHOLD)

int blua_tensor_copy(blua_tensor *dst, const blua_tensor *src, blua_err *err) {
  if (!blua_tensor_same_shape(dst, src)) {
    if (blua_tensor_nelement(dst) != blua_tensor_nelement(src) || !blua_tensor_is_contiguous(dst) ||
        !blua_tensor_is_contiguous(src))
      return shape_mismatch(err, dst, src);
    memmove(blua_tensor_data(dst), blua_tensor_data(src), (size_t)blua_tensor_nelement(src) * sizeof(float));
    return BLUA_OK;
  }
  if (blua_tensor_is_contiguous(dst) && blua_tensor_is_contiguous(src)) {
    memmove(blua_tensor_data(dst), blua_tensor_data(src), (size_t)blua_tensor_nelement(src) * sizeof(float));
    return BLUA_OK;
  }
  int64_t rows = ROWS(dst), cols = COLS(dst);
#pragma omp parallel for if (BIG(dst))
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) *blua_tensor_at(dst, i, j) = *blua_tensor_at(src, i, j);
  return BLUA_OK;
}

void blua_tensor_fill(blua_tensor *t, float v) {
  int64_t rows = ROWS(t), cols = COLS(t);
#pragma omp parallel for if (BIG(t))
  for (int64_t i = 0; i < rows; i++) {
    float *p = blua_tensor_at(t, i, 0);
    int64_t cs = CS(t);
    for (int64_t j = 0; j < cols; j++) p[j * cs] = v;
  }
}

int blua_tensor_gather_rows(blua_tensor *dst, const blua_tensor *src, const int64_t *idx, int64_t n,
                            blua_err *err) {
  char sd[48], ss[48];
  if (ROWS(dst) != n || COLS(dst) != COLS(src))
    return blua_fail(err, "size mismatch: gathering %lld rows of %s into %s", (long long)n,
                     blua_tensor_shape(src, ss, sizeof ss), blua_tensor_shape(dst, sd, sizeof sd));
  for (int64_t k = 0; k < n; k++)
    if (idx[k] < 0 || idx[k] >= ROWS(src))
      return blua_fail(err, "out of range: row %lld of %s", (long long)idx[k] + 1, blua_tensor_shape(src, ss, sizeof ss));
  int64_t cols = COLS(src);
  if (CS(dst) == 1 && CS(src) == 1) { /* rows are contiguous runs: copy them whole */
#pragma omp parallel for if (BIG(dst))
    for (int64_t k = 0; k < n; k++)
      memcpy(blua_tensor_at(dst, k, 0), blua_tensor_at(src, idx[k], 0), (size_t)cols * sizeof(float));
    return BLUA_OK;
  }
#pragma omp parallel for if (BIG(dst))
  for (int64_t k = 0; k < n; k++)
    for (int64_t j = 0; j < cols; j++) *blua_tensor_at(dst, k, j) = *blua_tensor_at(src, idx[k], j);
  return BLUA_OK;
}

/* ---- elementwise arithmetic ---- */

typedef enum { OP_ADD, OP_CMUL, OP_CDIV } binary_op;

static int binary(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, binary_op op, float alpha,
                  blua_err *err) {
  if (!blua_tensor_same_shape(a, b)) return shape_mismatch(err, a, b);
  if (!blua_tensor_same_shape(r, a)) return shape_mismatch(err, r, a);
  int64_t rows = ROWS(r), cols = COLS(r);
  int64_t rc = CS(r), ac = CS(a), bc = CS(b);
#pragma omp parallel for if (BIG(r))
  for (int64_t i = 0; i < rows; i++) {
    float *pr = blua_tensor_at(r, i, 0);
    const float *pa = blua_tensor_at(a, i, 0), *pb = blua_tensor_at(b, i, 0);
    if (rc == 1 && ac == 1 && bc == 1) {
      switch (op) {
        case OP_ADD: for (int64_t j = 0; j < cols; j++) pr[j] = pa[j] + alpha * pb[j]; break;
        case OP_CMUL: for (int64_t j = 0; j < cols; j++) pr[j] = pa[j] * pb[j]; break;
        case OP_CDIV: for (int64_t j = 0; j < cols; j++) pr[j] = pa[j] / pb[j]; break;
      }
    } else {
      for (int64_t j = 0; j < cols; j++) {
        float x = pa[j * ac], y = pb[j * bc];
        pr[j * rc] = op == OP_ADD ? x + alpha * y : op == OP_CMUL ? x * y : x / y;
      }
    }
  }
  return BLUA_OK;
}

int blua_tensor_add(blua_tensor *r, const blua_tensor *a, float alpha, const blua_tensor *b, blua_err *err) {
  return binary(r, a, b, OP_ADD, alpha, err);
}

int blua_tensor_cmul(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  return binary(r, a, b, OP_CMUL, 1.0f, err);
}

int blua_tensor_cdiv(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  return binary(r, a, b, OP_CDIV, 1.0f, err);
}

int blua_tensor_affine(blua_tensor *r, const blua_tensor *a, float scale, float shift, blua_err *err) {
  if (!blua_tensor_same_shape(r, a)) return shape_mismatch(err, r, a);
  int64_t rows = ROWS(r), cols = COLS(r), rc = CS(r), ac = CS(a);
#pragma omp parallel for if (BIG(r))
  for (int64_t i = 0; i < rows; i++) {
    float *pr = blua_tensor_at(r, i, 0);
    const float *pa = blua_tensor_at(a, i, 0);
    for (int64_t j = 0; j < cols; j++) pr[j * rc] = scale * pa[j * ac] + shift;
  }
  return BLUA_OK;
}

int blua_tensor_add_rowvec(blua_tensor *r, const blua_tensor *a, float alpha, const blua_tensor *v, blua_err *err) {
  if (!blua_tensor_same_shape(r, a)) return shape_mismatch(err, r, a);
  int64_t cols = COLS(a);
  if (blua_tensor_nelement(v) != cols || (v->dim == 2 && ROWS(v) != 1)) return shape_mismatch(err, a, v);
  int64_t rows = ROWS(r), rc = CS(r), ac = CS(a);
  /* v is 1 x cols or a 1-D tensor of cols entries: step along it either way. */
  int64_t vs = v->dim == 2 ? v->stride[1] : v->stride[0];
  const float *pv = blua_tensor_data(v);
#pragma omp parallel for if (BIG(r))
  for (int64_t i = 0; i < rows; i++) {
    float *pr = blua_tensor_at(r, i, 0);
    const float *pa = blua_tensor_at(a, i, 0);
    for (int64_t j = 0; j < cols; j++) pr[j * rc] = pa[j * ac] + alpha * pv[j * vs];
  }
  return BLUA_OK;
}

/* ---- reductions ---- */

double blua_tensor_sum(const blua_tensor *t) {
  int64_t rows = ROWS(t), cols = COLS(t), cs = CS(t);
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (BIG(t))
  for (int64_t i = 0; i < rows; i++) {
    const float *p = blua_tensor_at(t, i, 0);
    double rs = 0.0;
    for (int64_t j = 0; j < cols; j++) rs += p[j * cs];
    s += rs;
  }
  return s;
}

double blua_tensor_dot(const blua_tensor *a, const blua_tensor *b) {
  int64_t rows = ROWS(a), cols = COLS(a), ac = CS(a), bc = CS(b);
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (BIG(a))
  for (int64_t i = 0; i < rows; i++) {
    const float *pa = blua_tensor_at(a, i, 0), *pb = blua_tensor_at(b, i, 0);
    double rs = 0.0;
    for (int64_t j = 0; j < cols; j++) rs += (double)pa[j * ac] * pb[j * bc];
    s += rs;
  }
  return s;
}

double blua_tensor_norm(const blua_tensor *t) { return sqrt(blua_tensor_dot(t, t)); }

/* NaN propagates: a NaN entry makes max and min NaN, as in Torch. */
static double extreme(const blua_tensor *t, int want_max) {
  int64_t rows = ROWS(t), cols = COLS(t), cs = CS(t);
  double best = want_max ? -INFINITY : INFINITY;
  for (int64_t i = 0; i < rows; i++) {
    const float *p = blua_tensor_at(t, i, 0);
    for (int64_t j = 0; j < cols; j++) {
      double x = p[j * cs];
      if (isnan(x)) return NAN;
      if (want_max ? x > best : x < best) best = x;
    }
  }
  return best;
}

double blua_tensor_max(const blua_tensor *t) { return extreme(t, 1); }
double blua_tensor_min(const blua_tensor *t) { return extreme(t, 0); }

void blua_tensor_argmax_rows(const blua_tensor *t, int64_t *out) {
  int64_t rows = ROWS(t), cols = COLS(t), cs = CS(t);
#pragma omp parallel for if (BIG(t))
  for (int64_t i = 0; i < rows; i++) {
    const float *p = blua_tensor_at(t, i, 0);
    int64_t best = 0;
    for (int64_t j = 1; j < cols; j++)
      if (p[j * cs] > p[best * cs]) best = j;
    out[i] = best;
  }
}

void blua_tensor_argmax_cols(const blua_tensor *t, int64_t *out) {
  int64_t rows = ROWS(t), cols = COLS(t);
  for (int64_t j = 0; j < cols; j++) {
    int64_t best = 0;
    for (int64_t i = 1; i < rows; i++)
      if (*blua_tensor_at(t, i, j) > *blua_tensor_at(t, best, j)) best = i;
    out[j] = best;
  }
}

int blua_tensor_sum_rows(blua_tensor *out, float beta, float alpha, const blua_tensor *t, blua_err *err) {
  int64_t rows = ROWS(t), cols = COLS(t);
  if (blua_tensor_nelement(out) != cols || (out->dim == 2 && ROWS(out) != 1)) return shape_mismatch(err, out, t);
  int64_t os = out->dim == 2 ? out->stride[1] : out->stride[0];
  float *po = blua_tensor_data(out);
#pragma omp parallel for if (BIG(t))
  for (int64_t j = 0; j < cols; j++) {
    double s = 0.0;
    for (int64_t i = 0; i < rows; i++) s += *blua_tensor_at(t, i, j);
    po[j * os] = (float)(beta * po[j * os] + alpha * s);
  }
  return BLUA_OK;
}

int blua_tensor_all_finite(const blua_tensor *t) {
  int64_t rows = ROWS(t), cols = COLS(t), cs = CS(t);
  int ok = 1;
#pragma omp parallel for reduction(&& : ok) if (BIG(t))
  for (int64_t i = 0; i < rows; i++) {
    const float *p = blua_tensor_at(t, i, 0);
    for (int64_t j = 0; j < cols; j++) ok = ok && isfinite(p[j * cs]);
  }
  return ok;
}

/* ---- random fills (sequential: the stream order must not depend on threads) ---- */

void blua_tensor_uniform(blua_tensor *t, double lo, double hi) {
  blua_rng *r = blua_default_rng();
  int64_t rows = ROWS(t), cols = COLS(t);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) *blua_tensor_at(t, i, j) = (float)(lo + (hi - lo) * blua_rng_uniform(r));
}

void blua_tensor_normal(blua_tensor *t, double mean, double std) {
  blua_rng *r = blua_default_rng();
  int64_t rows = ROWS(t), cols = COLS(t);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) *blua_tensor_at(t, i, j) = (float)(mean + std * blua_rng_normal(r));
}
