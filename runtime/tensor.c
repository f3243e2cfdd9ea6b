/* Tensor storage, views, copies, elementwise arithmetic and reductions, for any number of
 * dimensions up to BLUA_MAX_DIM. Loops see a tensor as runs along its last dimension (see
 * blua_tensor_runs); when every operand is contiguous they use one flat loop instead. */
#include "blua/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blua/random.h"
#include "blua/team.h"
#include "flat_run.h"
#include "ordered_sum.h"
#include "par.h"

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

static void shape_string(int dim, const int64_t *size, char *buf, size_t len) {
  size_t at = 0;
  buf[0] = '\0';
  for (int d = 0; d < dim && at < len; d++) {
    int n = snprintf(buf + at, len - at, d ? "x%lld" : "%lld", (long long)size[d]);
    if (n < 0) break;
    at += (size_t)n;
  }
}

int blua_shape_check(int dim, const int64_t *size, int64_t *count, blua_err *err) {
  if (dim < 1 || dim > BLUA_MAX_DIM)
    return blua_fail(err, "bad dimension: %d (1..%d dimensions exist)", dim, BLUA_MAX_DIM);
  int64_t n = 1, bound = 1;
  for (int d = 0; d < dim; d++) {
    if (size[d] < 0) {
      char s[160];
      shape_string(dim, size, s, sizeof s);
      return blua_fail(err, "bad size: %s (sizes must be non-negative)", s);
    }
    int64_t k = size[d] ? size[d] : 1;
    if (k > BLUA_MAX_ELEMENTS / bound) {
      char s[160];
      shape_string(dim, size, s, sizeof s);
      return blua_fail(err, "tensor too large: %s (at most 2^34 elements)", s);
    }
    bound *= k;
    n = size[d] == 0 ? 0 : n * size[d];
  }
  /* Loops walk the sizes before the last even when a later size is 0: keep an empty tensor's
   * other sizes small, so no loop runs billions of empty steps. */
  if (n == 0 && bound > ((int64_t)1 << 24)) {
    char s[160];
    shape_string(dim, size, s, sizeof s);
    return blua_fail(err, "tensor too large: %s (an empty tensor's other sizes may hold at most 2^24)", s);
  }
  if (count) *count = n;
  return BLUA_OK;
}

/* Row-major strides of a contiguous tensor; entries from dim on are 1. */
static void set_contiguous(blua_tensor *t, int dim, const int64_t *size) {
  t->dim = dim;
  for (int d = 0; d < BLUA_MAX_DIM; d++) {
    t->size[d] = d < dim ? size[d] : 1;
    t->stride[d] = 1;
  }
  for (int d = dim - 2; d >= 0; d--) t->stride[d] = t->stride[d + 1] * (t->size[d + 1] ? t->size[d + 1] : 1);
}

static blua_tensor *tensor_alloc(int dim, const int64_t *size, int zero, blua_err *err) {
  int64_t n;
  if (blua_shape_check(dim, size, &n, err) != BLUA_OK) return NULL;
  blua_storage *s = storage_new((size_t)n, zero, err);
  if (!s) return NULL;
  blua_tensor *t = tensor_header(s, err);
  s->refcount--; /* the header holds the only reference */
  if (!t) {
    free(s->base);
    free(s);
    return NULL;
  }
  set_contiguous(t, dim, size);
  return t;
}

static blua_tensor *alloc2(int dim, int64_t rows, int64_t cols, int zero, blua_err *err) {
  if (dim != 1 && dim != 2) {
    blua_fail(err, "bad dimension: %d (1 or 2 expected)", dim);
    return NULL;
  }
  int64_t size[2] = {rows, cols};
  return tensor_alloc(dim, size, zero, err);
}

blua_tensor *blua_tensor_new(int dim, int64_t rows, int64_t cols, blua_err *err) { return alloc2(dim, rows, cols, 1, err); }
blua_tensor *blua_tensor_empty(int dim, int64_t rows, int64_t cols, blua_err *err) { return alloc2(dim, rows, cols, 0, err); }
blua_tensor *blua_tensor_new2d(int64_t rows, int64_t cols, blua_err *err) { return alloc2(2, rows, cols, 1, err); }
blua_tensor *blua_tensor_new1d(int64_t n, blua_err *err) { return alloc2(1, n, 1, 1, err); }
blua_tensor *blua_tensor_new_nd(int dim, const int64_t *size, blua_err *err) { return tensor_alloc(dim, size, 1, err); }
blua_tensor *blua_tensor_empty_nd(int dim, const int64_t *size, blua_err *err) { return tensor_alloc(dim, size, 0, err); }
blua_tensor *blua_tensor_new_like(const blua_tensor *t, blua_err *err) { return tensor_alloc(t->dim, t->size, 1, err); }
blua_tensor *blua_tensor_empty_like(const blua_tensor *t, blua_err *err) { return tensor_alloc(t->dim, t->size, 0, err); }

blua_tensor *blua_tensor_eye(int64_t n, blua_err *err) {
  blua_tensor *t = blua_tensor_new2d(n, n, err);
  if (t)
    for (int64_t i = 0; i < n; i++) *blua_tensor_at(t, i, i) = 1.0f;
  return t;
}

int blua_tensor_resize1d(blua_tensor *t, int64_t n, blua_err *err) {
  blua_storage *s = t->storage;
  if (t->dim != 1 || t->offset != 0 || s->refcount != 1 || t->refcount != 1 || t->stride[0] != 1)
    return blua_fail(err, "bad tensor: only a contiguous 1-D tensor that owns its storage can be resized");
  if (n < 0 || n > BLUA_MAX_ELEMENTS) return blua_fail(err, "bad size: %lld", (long long)n);
  size_t keep = (size_t)(t->size[0] < n ? t->size[0] : n) * sizeof(float);
  size_t shift = (size_t)((char *)s->data - (char *)s->base);
  size_t bytes = (size_t)(n ? n : 1) * sizeof(float) + 64;
  void *nb = realloc(s->base, bytes);
  if (!nb) return blua_fail(err, "out of memory: %zu bytes", bytes);
  float *aligned = (float *)(((uintptr_t)nb + 63) & ~(uintptr_t)63);
  /* realloc keeps the bytes at the same distance from the base; the alignment may differ. */
  if ((char *)aligned != (char *)nb + shift) memmove(aligned, (char *)nb + shift, keep);
  s->base = nb;
  s->data = aligned;
  s->n = (size_t)n;
  t->size[0] = n;
  return BLUA_OK;
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
  int64_t want = 1;
  for (int d = t->dim - 1; d >= 0; d--) {
    if (t->size[d] == 0) return 1;
    if (t->size[d] != 1 && t->stride[d] != want) return 0;
    want *= t->size[d];
  }
  return 1;
}

int blua_tensor_same_shape(const blua_tensor *a, const blua_tensor *b) {
  if (a->dim != b->dim) return 0;
  for (int d = 0; d < a->dim; d++)
    if (a->size[d] != b->size[d]) return 0;
  return 1;
}

const char *blua_tensor_shape(const blua_tensor *t, char *buf, size_t len) {
  if (len == 0) return buf;
  shape_string(t->dim, t->size, buf, len);
  return buf;
}

static int shape_mismatch(blua_err *err, const blua_tensor *a, const blua_tensor *b) {
  char sa[160], sb[160];
  return blua_fail(err, "size mismatch: %s and %s", blua_tensor_shape(a, sa, sizeof sa),
                   blua_tensor_shape(b, sb, sizeof sb));
}

int blua_tensor_check_matrix(const blua_tensor *t, blua_err *err) {
  if (t->dim <= 2) return BLUA_OK;
  /* blua_tensor_at steps columns by stride[dim-1]: the trailing dims must form one run with
   * that step, so every size-1 dimension is skipped and the rest chain up from the last. */
  int64_t want = t->stride[t->dim - 1];
  for (int d = t->dim - 1; d >= 1; d--) {
    if (t->size[d] == 1) continue;
    if (t->stride[d] != want) {
      char s[160];
      return blua_fail(err, "not a matrix: the dimensions after the first of %s are not one run in memory "
                       "(call :contiguous() first)", blua_tensor_shape(t, s, sizeof s));
    }
    want *= t->size[d];
  }
  return BLUA_OK;
}

int64_t blua_tensor_offset_of(const blua_tensor *t, int64_t k) {
  int64_t off = 0;
  for (int d = t->dim - 1; d >= 0; d--) {
    int64_t s = t->size[d] ? t->size[d] : 1;
    off += (k % s) * t->stride[d];
    k /= s;
  }
  return off;
}

int64_t blua_tensor_runs(const blua_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->dim - 1; d++) n *= t->size[d];
  return n;
}

int64_t blua_tensor_run_offset(const blua_tensor *t, int64_t r) {
  int64_t off = 0;
  for (int d = t->dim - 2; d >= 0; d--) {
    int64_t s = t->size[d];
    off += (r % s) * t->stride[d];
    r /= s;
  }
  return off;
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

static int bad_dim(blua_err *err, const blua_tensor *t, int d) {
  char s[160];
  return blua_fail(err, "bad dimension: %d for a %d-D tensor of size %s", d + 1, t->dim, blua_tensor_shape(t, s, sizeof s));
}

blua_tensor *blua_tensor_narrow(blua_tensor *t, int dim, int64_t first, int64_t len, blua_err *err) {
  char s[160];
  if (dim < 0 || dim >= t->dim) {
    bad_dim(err, t, dim);
    return NULL;
  }
  /* Written so that no sum can overflow whatever first and len are. */
  if (first < 0 || len < 0 || first > t->size[dim] || len > t->size[dim] - first) {
    blua_fail(err, "out of range: %lld elements from %lld of dimension %d of size %s", (long long)len,
              first < INT64_MAX ? (long long)first + 1 : (long long)first, dim + 1, blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  if (len > 0) v->offset += (size_t)(first * t->stride[dim]);
  v->size[dim] = len;
  return v;
}

blua_tensor *blua_tensor_transpose_dims(blua_tensor *t, int d1, int d2, blua_err *err) {
  if (d1 < 0 || d1 >= t->dim) {
    bad_dim(err, t, d1);
    return NULL;
  }
  if (d2 < 0 || d2 >= t->dim) {
    bad_dim(err, t, d2);
    return NULL;
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  v->size[d1] = t->size[d2];
  v->size[d2] = t->size[d1];
  v->stride[d1] = t->stride[d2];
  v->stride[d2] = t->stride[d1];
  return v;
}

blua_tensor *blua_tensor_permute(blua_tensor *t, const int *order, blua_err *err) {
  int seen[BLUA_MAX_DIM] = {0};
  for (int i = 0; i < t->dim; i++) {
    if (order[i] < 0 || order[i] >= t->dim) {
      bad_dim(err, t, order[i]);
      return NULL;
    }
    if (seen[order[i]]++) {
      char s[160];
      blua_fail(err, "bad permutation: dimension %d given twice for a %d-D tensor of size %s", order[i] + 1, t->dim,
                blua_tensor_shape(t, s, sizeof s));
      return NULL;
    }
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  for (int i = 0; i < t->dim; i++) {
    v->size[i] = t->size[order[i]];
    v->stride[i] = t->stride[order[i]];
  }
  return v;
}

blua_tensor *blua_tensor_transpose(blua_tensor *t, blua_err *err) {
  if (t->dim > 2) {
    char s[160];
    blua_fail(err, "not a matrix: t() transposes 1-D and 2-D tensors, got %s (use transpose(d1, d2))",
              blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  if (t->dim == 1) return view_of(t, err);
  return blua_tensor_transpose_dims(t, 0, 1, err);
}

blua_tensor *blua_tensor_view_nd(blua_tensor *t, int dim, const int64_t *size, blua_err *err) {
  char s[160], w[160];
  int64_t n;
  if (blua_shape_check(dim, size, &n, err) != BLUA_OK) return NULL;
  if (n != blua_tensor_nelement(t)) {
    shape_string(dim, size, w, sizeof w);
    blua_fail(err, "size mismatch: cannot view %s as %s", blua_tensor_shape(t, s, sizeof s), w);
    return NULL;
  }
  if (!blua_tensor_is_contiguous(t)) {
    blua_fail(err, "not contiguous: a view needs a contiguous tensor, got %s", blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  set_contiguous(v, dim, size);
  return v;
}

blua_tensor *blua_tensor_view(blua_tensor *t, int dim, int64_t rows, int64_t cols, blua_err *err) {
  if (dim != 1 && dim != 2) {
    blua_fail(err, "bad dimension: %d (1 or 2 expected)", dim);
    return NULL;
  }
  int64_t size[2] = {rows, cols};
  return blua_tensor_view_nd(t, dim, size, err);
}

blua_tensor *blua_tensor_as_matrix(blua_tensor *t, blua_err *err) {
  if (t->dim == 2) {
    blua_tensor_retain(t);
    return t;
  }
  if (blua_tensor_check_matrix(t, err) != BLUA_OK) return NULL;
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  int64_t rows = t->size[0], cols = blua_tensor_cols(t), rs = t->stride[0], cs = blua_tensor_colstride(t);
  for (int d = 0; d < BLUA_MAX_DIM; d++) v->size[d] = v->stride[d] = 1;
  v->dim = 2;
  v->size[0] = rows;
  v->size[1] = cols;
  v->stride[0] = rs;
  v->stride[1] = t->dim == 1 ? 1 : cs;
  return v;
}

/* Removes dimension d of v in place. */
static void drop_dim(blua_tensor *v, int d) {
  for (int k = d; k < v->dim - 1; k++) {
    v->size[k] = v->size[k + 1];
    v->stride[k] = v->stride[k + 1];
  }
  v->dim--;
  v->size[v->dim] = v->stride[v->dim] = 1;
}

blua_tensor *blua_tensor_select(blua_tensor *t, int d, int64_t i, blua_err *err) {
  char s[160];
  if (d < 0 || d >= t->dim) {
    bad_dim(err, t, d);
    return NULL;
  }
  if (t->dim < 2) {
    blua_fail(err, "bad dimension: select needs at least 2 dimensions, got %s", blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  if (i < 0 || i >= t->size[d]) {
    blua_fail(err, "out of range: index %lld of dimension %d of size %s", i < INT64_MAX ? (long long)i + 1 : (long long)i,
              d + 1, blua_tensor_shape(t, s, sizeof s));
    return NULL;
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  v->offset += (size_t)(i * t->stride[d]);
  drop_dim(v, d);
  return v;
}

blua_tensor *blua_tensor_squeeze(blua_tensor *t, int d, blua_err *err) {
  if (d >= t->dim) {
    bad_dim(err, t, d);
    return NULL;
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  if (d >= 0) {
    if (v->size[d] == 1 && v->dim > 1) drop_dim(v, d);
    return v;
  }
  for (int k = v->dim - 1; k >= 0 && v->dim > 1; k--)
    if (v->size[k] == 1) drop_dim(v, k);
  return v;
}

blua_tensor *blua_tensor_unsqueeze(blua_tensor *t, int d, blua_err *err) {
  if (d < 0 || d > t->dim) {
    bad_dim(err, t, d);
    return NULL;
  }
  if (t->dim >= BLUA_MAX_DIM) {
    blua_fail(err, "bad dimension: a tensor has at most %d dimensions", BLUA_MAX_DIM);
    return NULL;
  }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  for (int k = v->dim; k > d; k--) {
    v->size[k] = v->size[k - 1];
    v->stride[k] = v->stride[k - 1];
  }
  v->size[d] = 1;
  v->stride[d] = d < v->dim ? v->size[d + 1] * v->stride[d + 1] : 1; /* [d + 1] is the old dimension d */
  v->dim++;
  return v;
}

int blua_tensor_overlapping(const blua_tensor *t) {
  if (blua_tensor_nelement(t) == 0) return 0;
  for (int d = 0; d < t->dim; d++)
    if (t->size[d] > 1 && t->stride[d] == 0) return 1;
  return 0;
}

blua_tensor *blua_tensor_expand(blua_tensor *t, int dim, const int64_t *size, blua_err *err) {
  char s[160], w[160];
  if (dim < t->dim || dim > BLUA_MAX_DIM) {
    blua_fail(err, "bad sizes: %d given to expand a %s tensor (%d..%d expected)", dim,
              blua_tensor_shape(t, s, sizeof s), t->dim, BLUA_MAX_DIM);
    return NULL;
  }
  int64_t count;
  if (blua_shape_check(dim, size, &count, err)) return NULL;
  int pad = dim - t->dim;
  for (int d = pad; d < dim; d++)
    if (t->size[d - pad] != 1 && t->size[d - pad] != size[d]) {
      shape_string(dim, size, w, sizeof w);
      blua_fail(err, "bad sizes: %s cannot expand a %s tensor (dimension %d has size %lld, not 1)", w,
                blua_tensor_shape(t, s, sizeof s), d - pad + 1, (long long)t->size[d - pad]);
      return NULL;
    }
  blua_tensor *v = view_of(t, err);
  if (!v) return NULL;
  /* New leading dimensions and expanded size-1 dimensions step 0: every entry along them is
   * the one float of t there. */
  for (int d = 0; d < BLUA_MAX_DIM; d++) {
    int keep = d >= pad && d < dim && t->size[d - pad] == size[d];
    v->size[d] = d < dim ? size[d] : 1;
    v->stride[d] = d >= dim ? 1 : keep ? t->stride[d - pad] : 0;
  }
  v->dim = dim;
  return v;
}

/* ---- loops ---- */

#define LAST(t) ((t)->dim - 1)
#define BIG(n) ((n) > BLUA_OMP_THRESHOLD)

/* Runs of the last dimension: for r in runs, p = data + run_offset(r), step = stride[last]. */
#define RUN(t, r) (blua_tensor_data(t) + blua_tensor_run_offset((t), (r)))

/* ---- copies ---- */

blua_tensor *blua_tensor_clone(const blua_tensor *t, blua_err *err) {
  blua_tensor *c = blua_tensor_empty_like(t, err);
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

static int copy_apart(blua_tensor *dst, const blua_tensor *src, blua_err *err);

int blua_tensor_copy(blua_tensor *dst, const blua_tensor *src, blua_err *err) {
  if (blua_tensor_nelement(dst) != blua_tensor_nelement(src)) return shape_mismatch(err, dst, src);
  blua_tensor *own;
  const blua_tensor *s = blua_tensor_apart_from(dst, src, &own, err);
  int status = s ? copy_apart(dst, s, err) : BLUA_ERROR;
  blua_tensor_release(own);
  return status;
}

static int copy_apart(blua_tensor *dst, const blua_tensor *src, blua_err *err) {
  int64_t n = blua_tensor_nelement(src);
  if (!blua_tensor_same_shape(dst, src)) {
    if (blua_tensor_nelement(dst) != n) return shape_mismatch(err, dst, src);
    if (!blua_tensor_is_contiguous(dst) || !blua_tensor_is_contiguous(src)) {
      /* Same count, other shape: element by element in row-major order. */
      float *pd = blua_tensor_data(dst);
      const float *ps = blua_tensor_data(src);
      BLUA_PAR(BIG(n), "omp parallel for",
      for (int64_t k = 0; k < n; k++) pd[blua_tensor_offset_of(dst, k)] = ps[blua_tensor_offset_of(src, k)]);
      return BLUA_OK;
    }
  }
  if (n == 0) return BLUA_OK;
  if (blua_tensor_is_contiguous(dst) && blua_tensor_is_contiguous(src)) {
    memmove(blua_tensor_data(dst), blua_tensor_data(src), (size_t)n * sizeof(float));
    return BLUA_OK;
  }
  int64_t runs = blua_tensor_runs(dst), len = dst->size[LAST(dst)];
  int64_t ds = dst->stride[LAST(dst)], ss = src->stride[LAST(src)];
  BLUA_PAR(BIG(n), "omp parallel for",
  for (int64_t r = 0; r < runs; r++) {
    float *pd = RUN(dst, r);
    const float *ps = RUN(src, r);
    for (int64_t j = 0; j < len; j++) pd[j * ds] = ps[j * ss];
  });
  return BLUA_OK;
}

void blua_tensor_fill(blua_tensor *t, float v) {
  int64_t n = blua_tensor_nelement(t);
  if (blua_tensor_is_contiguous(t)) {
    float *p = blua_tensor_data(t);
    BLUA_PAR_SIMD(BIG(n), "omp parallel for simd",
    for (int64_t k = 0; k < n; k++) p[k] = v);
    return;
  }
  int64_t runs = blua_tensor_runs(t), len = t->size[LAST(t)], s = t->stride[LAST(t)];
  BLUA_PAR(BIG(n), "omp parallel for",
  for (int64_t r = 0; r < runs; r++) {
    float *p = RUN(t, r);
    for (int64_t j = 0; j < len; j++) p[j * s] = v;
  });
}

typedef struct {
  blua_tensor *dst;
  const blua_tensor *src;
  const int64_t *idx;
  int64_t cols;
} gather_ctx;

enum { GATHER_AHEAD = 8 };

/* Fetches the cache lines of a row about to be copied, as non-temporal (hint 0): a gathered
 * row is read once, so it need not displace what the caches hold (128 random MNIST rows:
 * 24.7 us against 27.8 with hint 1, means of nine runs). */
static void prefetch_row(const float *p, int64_t cols) {
  for (int64_t j = 0; j < cols; j += 16) __builtin_prefetch(p + j, 0, 0);
}

static void gather_range(void *ctx, int64_t lo, int64_t hi) {
  gather_ctx *g = ctx;
  for (int64_t k = lo; k < hi && k < lo + GATHER_AHEAD; k++) prefetch_row(blua_tensor_at(g->src, g->idx[k], 0), g->cols);
  for (int64_t k = lo; k < hi; k++) {
    if (k + GATHER_AHEAD < hi) prefetch_row(blua_tensor_at(g->src, g->idx[k + GATHER_AHEAD], 0), g->cols);
    memcpy(blua_tensor_at(g->dst, k, 0), blua_tensor_at(g->src, g->idx[k], 0), (size_t)g->cols * sizeof(float));
  }
}

static int check_gather(const blua_tensor *dst, const blua_tensor *src, const int64_t *idx, int64_t n, blua_err *err) {
  char sd[160], ss[160];
  if (blua_tensor_check_matrix(dst, err) || blua_tensor_check_matrix(src, err)) return BLUA_ERROR;
  int64_t cols = blua_tensor_cols(src);
  if (blua_tensor_rows(dst) != n || blua_tensor_cols(dst) != cols)
    return blua_fail(err, "size mismatch: gathering %lld rows of %s into %s", (long long)n,
                     blua_tensor_shape(src, ss, sizeof ss), blua_tensor_shape(dst, sd, sizeof sd));
  for (int64_t k = 0; k < n; k++)
    if (idx[k] < 0 || idx[k] >= blua_tensor_rows(src))
      return blua_fail(err, "out of range: row %lld of %s", (long long)idx[k] + (idx[k] < INT64_MAX),
                       blua_tensor_shape(src, ss, sizeof ss));
  if (dst->storage == src->storage) return blua_fail(err, "aliasing: the destination shares memory with the source");
  return BLUA_OK;
}

/* Whether whole rows of both are contiguous runs, so that a row is one memcpy. */
static int rows_are_runs(const blua_tensor *dst, const blua_tensor *src) {
  int64_t cols = blua_tensor_cols(src);
  return (blua_tensor_colstride(dst) == 1 || cols <= 1) && (blua_tensor_colstride(src) == 1 || cols <= 1);
}

int blua_tensor_gather_rows(blua_tensor *dst, const blua_tensor *src, const int64_t *idx, int64_t n,
                            blua_err *err) {
  if (check_gather(dst, src, idx, n, err)) return BLUA_ERROR;
  int64_t cols = blua_tensor_cols(src);
  if (rows_are_runs(dst, src)) {
    gather_ctx g = {dst, src, idx, cols};
    blua_team_range(n, cols > 0 ? (BLUA_TEAM_GRAIN + cols - 1) / cols : n, BIG(n * cols), gather_range, &g);
    return BLUA_OK;
  }
  BLUA_PAR(BIG(n * cols), "omp parallel for",
  for (int64_t k = 0; k < n; k++)
    for (int64_t j = 0; j < cols; j++) *blua_tensor_at(dst, k, j) = *blua_tensor_at(src, idx[k], j));
  return BLUA_OK;
}

/* Whether two tensors on one storage may share an element. Two matrices with the same row
 * stride whose rows are runs within one row period (column blocks of one matrix, say) are
 * compared exactly; otherwise the test is a bound: the spans from the first to the last
 * element each can reach. */
static int spans_meet(const blua_tensor *a, const blua_tensor *b) {
  if (a->storage != b->storage || blua_tensor_nelement(a) == 0 || blua_tensor_nelement(b) == 0) return 0;
  if (a->dim == 2 && b->dim == 2 && a->stride[1] == 1 && b->stride[1] == 1 && a->stride[0] == b->stride[0] &&
      a->stride[0] > 0) {
    size_t rs = (size_t)a->stride[0], ca = a->offset % rs, cb = b->offset % rs, qa = a->offset / rs,
           qb = b->offset / rs, wa = (size_t)a->size[1], wb = (size_t)b->size[1];
    if (ca + wa <= rs && cb + wb <= rs) {
      int rows_meet = qa < qb + (size_t)b->size[0] && qb < qa + (size_t)a->size[0];
      return rows_meet && ca < cb + wb && cb < ca + wa;
    }
  }
  size_t alo = a->offset, ahi = a->offset, blo = b->offset, bhi = b->offset;
  for (int d = 0; d < a->dim; d++) ahi += (size_t)((a->size[d] - 1) * a->stride[d]);
  for (int d = 0; d < b->dim; d++) bhi += (size_t)((b->size[d] - 1) * b->stride[d]);
  return alo <= bhi && blo <= ahi;
}

int blua_tensors_apart(int n, const blua_named_tensor *t, blua_err *err) {
  for (int i = 0; i < n; i++)
    for (int j = i + 1; t[i].t && j < n; j++)
      if (t[j].t && spans_meet(t[i].t, t[j].t)) {
        char a[32] = "", b[32] = "";
        if (t[i].index) snprintf(a, sizeof a, "[%d]", t[i].index);
        if (t[j].index) snprintf(b, sizeof b, "[%d]", t[j].index);
        return blua_fail(err, "aliasing: %s%s and %s%s share memory", t[i].what, a, t[j].what, b);
      }
  return BLUA_OK;
}

int blua_tensor_same_view(const blua_tensor *a, const blua_tensor *b) {
  if (a->storage != b->storage || a->offset != b->offset || a->dim != b->dim) return 0;
  for (int d = 0; d < a->dim; d++)
    if (a->size[d] != b->size[d] || (a->size[d] > 1 && a->stride[d] != b->stride[d])) return 0;
  return 1;
}

const blua_tensor *blua_tensor_apart_from(const blua_tensor *dst, const blua_tensor *src, blua_tensor **copy,
                                          blua_err *err) {
  *copy = NULL;
  if (src->storage != dst->storage || blua_tensor_same_view(dst, src)) return src;
  blua_named_tensor pair[2] = {{dst, "dst", 0}, {src, "src", 0}};
  if (blua_tensors_apart(2, pair, NULL) == BLUA_OK) return src;
  *copy = blua_tensor_clone(src, err);
  return *copy;
}

int blua_batch_scratch_apart(int L, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *A, const char *a,
                             blua_tensor *const *B, const char *b, blua_tensor *const *X, blua_err *err) {
  enum { MAXL = 64 };
  blua_named_tensor t[2 + 3 * MAXL];
  int n = 0;
  t[n++] = (blua_named_tensor){x, "x", 0};
  t[n++] = (blua_named_tensor){y, "y", 0};
  for (int l = 0; l < L && l < MAXL; l++) {
    t[n++] = (blua_named_tensor){A[l], a, l + 1};
    t[n++] = (blua_named_tensor){B[l], b, l + 1};
    if (l < L - 1) t[n++] = (blua_named_tensor){X[l], "X", l + 1};
  }
  return blua_tensors_apart(n, t, err);
}

/* A gather posted to the team: GATHER_TASKS tasks per tensor pair, each a range of rows, so
 * that the caller can take over the tasks nobody has claimed when it joins. */
enum { GATHER_TASKS = 4 };

typedef struct {
  int count;
  int64_t n, *idx;
  blua_tensor *dst[BLUA_GATHER_MAX];
  blua_tensor *src[BLUA_GATHER_MAX];
} gather_job;

static void gather_task(void *ctx, int i) {
  gather_job *j = ctx;
  int k = i / GATHER_TASKS, r = i % GATHER_TASKS;
  gather_ctx g = {j->dst[k], j->src[k], j->idx, blua_tensor_cols(j->src[k])};
  gather_range(&g, j->n * r / GATHER_TASKS, j->n * (r + 1) / GATHER_TASKS);
}

static void gather_job_free(void *ctx) {
  gather_job *j = ctx;
  for (int k = 0; k < j->count; k++) {
    blua_tensor_release(j->dst[k]);
    blua_tensor_release(j->src[k]);
  }
  free(j->idx);
  free(j);
}

int blua_tensor_gather_rows_post(int count, blua_tensor *const *dst, const blua_tensor *const *src,
                                 const int64_t *idx, int64_t n, blua_err *err) {
  if (count < 0 || count > BLUA_GATHER_MAX)
    return blua_fail(err, "bad gather: %d tensors (at most %d)", count, BLUA_GATHER_MAX);
  int runs = 1;
  int64_t entries = 0;
  for (int k = 0; k < count; k++) {
    if (check_gather(dst[k], src[k], idx, n, err)) return BLUA_ERROR;
    runs = runs && rows_are_runs(dst[k], src[k]);
    entries += n * blua_tensor_cols(src[k]);
  }
  gather_job *j = NULL;
  /* (a small gather is done before another thread would have picked it up) */
  if (blua_team_active() && runs && BIG(entries)) {
    j = calloc(1, sizeof *j);
    if (j && !(j->idx = malloc((size_t)n * sizeof *j->idx))) {
      free(j);
      j = NULL;
    }
  }
  if (!j) { /* (no team, strided rows, a small gather or no memory: gather now) */
    for (int k = 0; k < count; k++)
      if (blua_tensor_gather_rows(dst[k], src[k], idx, n, err)) return BLUA_ERROR;
    return 0;
  }
  memcpy(j->idx, idx, (size_t)n * sizeof *j->idx);
  j->n = n;
  /* Views of their own, holding the storage until the gather is done, whatever the caller
   * releases or resizes meanwhile. */
  for (int k = 0; k < count; k++) {
    j->dst[k] = blua_tensor_narrow(dst[k], 0, 0, blua_tensor_rows(dst[k]), err);
    j->src[k] = j->dst[k] ? blua_tensor_narrow((blua_tensor *)src[k], 0, 0, blua_tensor_rows(src[k]), err) : NULL;
    j->count = k + 1;
    if (!j->src[k]) {
      gather_job_free(j);
      return BLUA_ERROR;
    }
  }
  if (!blua_team_post(count * GATHER_TASKS, gather_task, j, gather_job_free)) {
    for (int i = 0; i < count * GATHER_TASKS; i++) gather_task(j, i);
    gather_job_free(j);
    return 0;
  }
  return 1;
}

/* A header (no reference counting) for the slice [first, first+len) of dimension d. */
static blua_tensor slice_header(const blua_tensor *t, int d, int64_t first, int64_t len) {
  blua_tensor v = *t;
  if (len > 0) v.offset += (size_t)(first * t->stride[d]);
  v.size[d] = len;
  return v;
}

blua_tensor *blua_tensor_index(const blua_tensor *src, int d, const int64_t *idx, int64_t n, blua_err *err) {
  char s[160];
  if (d < 0 || d >= src->dim) {
    bad_dim(err, src, d);
    return NULL;
  }
  for (int64_t k = 0; k < n; k++)
    if (idx[k] < 0 || idx[k] >= src->size[d]) {
      blua_fail(err, "out of range: index %lld of dimension %d of size %s", (long long)idx[k] + (idx[k] < INT64_MAX),
                d + 1, blua_tensor_shape(src, s, sizeof s));
      return NULL;
    }
  int64_t size[BLUA_MAX_DIM];
  memcpy(size, src->size, sizeof size);
  size[d] = n;
  blua_tensor *r = blua_tensor_empty_nd(src->dim, size, err);
  if (!r) return NULL;
  for (int64_t k = 0; k < n; k++) {
    blua_tensor sv = slice_header(src, d, idx[k], 1), dv = slice_header(r, d, k, 1);
    blua_tensor_copy(&dv, &sv, err);
  }
  return r;
}

blua_tensor *blua_tensor_cat(blua_tensor *const *ts, int n, int d, blua_err *err) {
  char s1[160], s2[160];
  if (n < 1) {
    blua_fail(err, "bad argument: nothing to concatenate");
    return NULL;
  }
  const blua_tensor *first = ts[0];
  if (d < 0 || d >= first->dim) {
    bad_dim(err, first, d);
    return NULL;
  }
  int64_t size[BLUA_MAX_DIM];
  memcpy(size, first->size, sizeof size);
  size[d] = 0;
  for (int k = 0; k < n; k++) {
    const blua_tensor *t = ts[k];
    int ok = t->dim == first->dim;
    for (int e = 0; ok && e < t->dim; e++) ok = e == d || t->size[e] == first->size[e];
    if (!ok) {
      blua_fail(err, "size mismatch: cannot join %s and %s along dimension %d", blua_tensor_shape(first, s1, sizeof s1),
                blua_tensor_shape(t, s2, sizeof s2), d + 1);
      return NULL;
    }
    if (t->size[d] > BLUA_MAX_ELEMENTS - size[d]) {
      blua_fail(err, "tensor too large: joining along dimension %d", d + 1);
      return NULL;
    }
    size[d] += t->size[d];
  }
  blua_tensor *r = blua_tensor_empty_nd(first->dim, size, err);
  if (!r) return NULL;
  int64_t at = 0;
  for (int k = 0; k < n; k++) {
    blua_tensor dv = slice_header(r, d, at, ts[k]->size[d]);
    blua_tensor_copy(&dv, ts[k], err);
    at += ts[k]->size[d];
  }
  return r;
}

/* ---- elementwise arithmetic ---- */

typedef enum { OP_ADD, OP_CMUL, OP_CDIV, OP_CMAX, OP_CMIN } binary_op;

/* Each op's value from x (of a), y (of b) and alpha, written once for both loops below: the
 * op is picked once per range or run and each has a loop of its own, so the loops vectorise
 * (a switch per entry kept cmax, cmin and cdiv scalar). */
#define BINARY_OPS(X)            \
  X(OP_ADD, x + alpha * y)       \
  X(OP_CMUL, x * y)              \
  X(OP_CDIV, x / y)              \
  X(OP_CMAX, x > y ? x : y)      \
  X(OP_CMIN, x < y ? x : y)

typedef struct {
  float *pr;
  const float *pa, *pb;
  binary_op op;
  float alpha;
} binary_ctx;

static void binary_range(void *ctx, int64_t lo, int64_t hi) {
  binary_ctx *c = ctx;
  float *pr = c->pr, alpha = c->alpha;
  const float *pa = c->pa, *pb = c->pb;
  switch (c->op) {
#define CONTIGUOUS_LOOP(op, value)                          \
  case op:                                                  \
    _Pragma("omp simd") for (int64_t k = lo; k < hi; k++) { \
      float x = pa[k], y = pb[k];                           \
      pr[k] = value;                                        \
    }                                                       \
    break;
    BINARY_OPS(CONTIGUOUS_LOOP)
#undef CONTIGUOUS_LOOP
  }
}

/* One run of len entries at the given steps. */
static void binary_run(binary_op op, float alpha, float *pr, int64_t rs, const float *pa, int64_t as,
                       const float *pb, int64_t bs, int64_t len) {
  switch (op) {
#define STRIDED_LOOP(op_, value)            \
  case op_:                                 \
    for (int64_t j = 0; j < len; j++) {     \
      float x = pa[j * as], y = pb[j * bs]; \
      pr[j * rs] = value;                   \
    }                                       \
    break;
    BINARY_OPS(STRIDED_LOOP)
#undef STRIDED_LOOP
  }
}

/* dst[i] += src[i] over several contiguous pairs read as one run (flat_run.h). */
typedef struct {
  const int64_t *start;
  float *const *pd;
  const float *const *ps;
} accumulate_ctx;

static void accumulate_range(void *ctx, int64_t lo, int64_t hi) {
  const accumulate_ctx *c = ctx;
  FLAT_RUN_PIECES(c->start, lo, hi, i, off, len, {
    float *pd = c->pd[i] + off;
    const float *ps = c->ps[i] + off;
    _Pragma("omp simd") for (int64_t k = 0; k < len; k++) pd[k] = pd[k] + 1.0f * ps[k];
  });
}

int blua_tensors_accumulate(int n, blua_tensor *const *dst, const blua_tensor *const *src, blua_err *err) {
  if (n < 0) return blua_fail(err, "bad list: %d tensors", n);
  for (int i = 0; i < n; i++)
    if (!blua_tensor_same_shape(dst[i], src[i])) return shape_mismatch(err, dst[i], src[i]);
  int64_t *start = malloc((size_t)(n + 1) * sizeof *start);
  float **pd = malloc((size_t)(n + 1) * sizeof *pd);
  const float **ps = malloc((size_t)(n + 1) * sizeof *ps);
  int k = 0, status = BLUA_OK;
  if (!start || !pd || !ps) {
    status = blua_fail(err, "out of memory: sums of %d tensors", n);
  } else {
    start[0] = 0;
    for (int i = 0; i < n && status == BLUA_OK; i++) {
      if (!blua_tensor_is_contiguous(dst[i]) || !blua_tensor_is_contiguous(src[i])) {
        status = blua_tensor_add(dst[i], dst[i], 1.0f, src[i], err); /* (a view: on its own) */
        continue;
      }
      pd[k] = blua_tensor_data(dst[i]);
      ps[k] = blua_tensor_data(src[i]);
      start[k + 1] = start[k] + blua_tensor_nelement(dst[i]);
      k++;
    }
    accumulate_ctx c = {start, pd, ps};
    if (status == BLUA_OK && start[k] > 0)
      blua_team_range(start[k], BLUA_TEAM_GRAIN, BIG(start[k]), accumulate_range, &c);
  }
  free(start);
  free(pd);
  free(ps);
  return status;
}

/* Whether t's entries fill one gap-free block of memory from its first entry on, in some order
 * of its dimensions (a contiguous tensor, or a transpose of one): its dimensions of more than
 * one entry, from the smallest step up, step 1, then the size of the block below, and so on. */
static int dense_block(const blua_tensor *t) {
  int used[BLUA_MAX_DIM] = {0};
  int64_t want = 1;
  for (int k = 0; k < t->dim; k++) {
    int best = -1;
    for (int d = 0; d < t->dim; d++)
      if (!used[d] && t->size[d] > 1 && (best < 0 || t->stride[d] < t->stride[best])) best = d;
    if (best < 0) return 1;
    if (t->stride[best] != want) return 0;
    used[best] = 1;
    want *= t->size[best];
  }
  return 1;
}

/* Whether b (of a's shape) steps through its dimensions as a does. */
static int same_layout(const blua_tensor *a, const blua_tensor *b) {
  for (int d = 0; d < a->dim; d++)
    if (a->size[d] > 1 && a->stride[d] != b->stride[d]) return 0;
  return 1;
}

static int binary_apart(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, binary_op op, float alpha,
                         blua_err *err);

/* r = a op b entry by entry; a source that shares memory with r otherwise than entry for entry
 * is read from a copy. */
static int binary(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, binary_op op, float alpha,
                  blua_err *err) {
  if (!blua_tensor_same_shape(a, b)) return shape_mismatch(err, a, b);
  if (!blua_tensor_same_shape(r, a)) return shape_mismatch(err, r, a);
  blua_tensor *ca, *cb = NULL;
  const blua_tensor *pa = blua_tensor_apart_from(r, a, &ca, err), *pb = pa ? blua_tensor_apart_from(r, b, &cb, err) : NULL;
  int status = pa && pb ? binary_apart(r, pa, pb, op, alpha, err) : BLUA_ERROR;
  blua_tensor_release(ca);
  blua_tensor_release(cb);
  return status;
}

static int binary_apart(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, binary_op op, float alpha,
                         blua_err *err) {
  (void)err;
  int64_t n = blua_tensor_nelement(r);
  if (blua_tensor_is_contiguous(r) && blua_tensor_is_contiguous(a) && blua_tensor_is_contiguous(b)) {
    float *pr = blua_tensor_data(r);
    const float *pa = blua_tensor_data(a), *pb = blua_tensor_data(b);
    binary_ctx c = {pr, pa, pb, op, alpha};
    blua_team_range(n, BLUA_TEAM_GRAIN, BIG(n), binary_range, &c);
    return BLUA_OK;
  }
  if (dense_block(r) && same_layout(r, a) && same_layout(r, b)) { /* e.g. three transposes */
    binary_ctx c = {blua_tensor_data(r), blua_tensor_data(a), blua_tensor_data(b), op, alpha};
    blua_team_range(n, BLUA_TEAM_GRAIN, BIG(n), binary_range, &c);
    return BLUA_OK;
  }
  int64_t runs = blua_tensor_runs(r), len = r->size[LAST(r)];
  int64_t rs = r->stride[LAST(r)], as = a->stride[LAST(a)], bs = b->stride[LAST(b)];
  BLUA_PAR(BIG(n), "omp parallel for",
  for (int64_t i = 0; i < runs; i++) binary_run(op, alpha, RUN(r, i), rs, RUN(a, i), as, RUN(b, i), bs, len));
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
int blua_tensor_cmax(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  return binary(r, a, b, OP_CMAX, 1.0f, err);
}
int blua_tensor_cmin(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  return binary(r, a, b, OP_CMIN, 1.0f, err);
}

static int affine_apart(blua_tensor *r, const blua_tensor *a, float scale, float shift);

int blua_tensor_affine(blua_tensor *r, const blua_tensor *a, float scale, float shift, blua_err *err) {
  if (!blua_tensor_same_shape(r, a)) return shape_mismatch(err, r, a);
  blua_tensor *own;
  const blua_tensor *s = blua_tensor_apart_from(r, a, &own, err);
  int status = s ? affine_apart(r, s, scale, shift) : BLUA_ERROR;
  blua_tensor_release(own);
  return status;
}

static int affine_apart(blua_tensor *r, const blua_tensor *a, float scale, float shift) {
  int64_t n = blua_tensor_nelement(r);
  if (blua_tensor_is_contiguous(r) && blua_tensor_is_contiguous(a)) {
    float *pr = blua_tensor_data(r);
    const float *pa = blua_tensor_data(a);
    BLUA_PAR_SIMD(BIG(n), "omp parallel for simd",
    for (int64_t k = 0; k < n; k++) pr[k] = scale * pa[k] + shift);
    return BLUA_OK;
  }
  int64_t runs = blua_tensor_runs(r), len = r->size[LAST(r)], rs = r->stride[LAST(r)], as = a->stride[LAST(a)];
  BLUA_PAR(BIG(n), "omp parallel for",
  for (int64_t i = 0; i < runs; i++) {
    float *pr = RUN(r, i);
    const float *pa = RUN(a, i);
    for (int64_t j = 0; j < len; j++) pr[j * rs] = scale * pa[j * as] + shift;
  });
  return BLUA_OK;
}

/* Step along a vector given as 1-D, 1 x n or n x 1. */
static int64_t vec_step(const blua_tensor *v) {
  if (v->dim == 1) return v->stride[0];
  return v->size[0] == 1 ? v->stride[1] : v->stride[0];
}

int blua_tensor_add_rowvec(blua_tensor *r, const blua_tensor *a, float alpha, const blua_tensor *v, blua_err *err) {
  if (!blua_tensor_same_shape(r, a)) return shape_mismatch(err, r, a);
  if (blua_tensor_check_matrix(r, err) || blua_tensor_check_matrix(a, err)) return BLUA_ERROR;
  int64_t cols = blua_tensor_cols(a);
  if (v->dim > 2 || blua_tensor_nelement(v) != cols || (v->dim == 2 && v->size[0] != 1)) return shape_mismatch(err, a, v);
  int64_t rows = blua_tensor_rows(r), rc = blua_tensor_colstride(r), ac = blua_tensor_colstride(a);
  blua_tensor *oa, *ov = NULL; /* (sources sharing r's memory otherwise than entry for entry: copies) */
  const blua_tensor *sa = blua_tensor_apart_from(r, a, &oa, err), *sv = sa ? blua_tensor_apart_from(r, v, &ov, err) : NULL;
  if (!sa || !sv) {
    blua_tensor_release(oa);
    return BLUA_ERROR;
  }
  ac = blua_tensor_colstride(sa);
  int64_t vs = vec_step(sv);
  const float *pv = blua_tensor_data(sv);
  BLUA_PAR(BIG(rows * cols), "omp parallel for",
  for (int64_t i = 0; i < rows; i++) {
    float *pr = blua_tensor_at(r, i, 0);
    const float *pa = blua_tensor_at(sa, i, 0);
    for (int64_t j = 0; j < cols; j++) pr[j * rc] = pa[j * ac] + alpha * pv[j * vs];
  });
  blua_tensor_release(oa);
  blua_tensor_release(ov);
  return BLUA_OK;
}

/* ---- reductions ---- */

/* Sums are ordered sums of blocks of runs (ordered_sum.h): the same value for any thread count.
 * (absolute is a constant at both callers, so each gets a loop of its own.) */
static inline double ordered_sum(const blua_tensor *t, int absolute) {
  int64_t runs = blua_tensor_runs(t), len = t->size[LAST(t)], s = t->stride[LAST(t)];
  double acc = 0.0;
  ORDERED_SUM(acc, runs, BIG(runs * len), for (int64_t i = lo; i < hi; i++) {
    const float *p = RUN(t, i);
    double rs = 0.0;
    for (int64_t j = 0; j < len; j++) rs += absolute ? fabsf(p[j * s]) : p[j * s];
    bsum += rs;
  });
  return acc;
}

double blua_tensor_sum(const blua_tensor *t) { return ordered_sum(t, 0); }
double blua_tensor_abs_sum(const blua_tensor *t) { return ordered_sum(t, 1); }

double blua_tensor_dot(const blua_tensor *a, const blua_tensor *b) {
  if (!blua_tensor_same_shape(a, b)) return NAN;
  int64_t runs = blua_tensor_runs(a), len = a->size[LAST(a)], as = a->stride[LAST(a)], bs = b->stride[LAST(b)];
  double acc = 0.0;
  ORDERED_SUM(acc, runs, BIG(runs * len), for (int64_t i = lo; i < hi; i++) {
    const float *pa = RUN(a, i), *pb = RUN(b, i);
    double rs = 0.0;
    for (int64_t j = 0; j < len; j++) rs += (double)pa[j * as] * pb[j * bs];
    bsum += rs;
  });
  return acc;
}

double blua_tensor_norm(const blua_tensor *t) { return sqrt(blua_tensor_dot(t, t)); }

/* NaN propagates: a NaN entry makes max and min NaN, as in Torch. */
static double extreme(const blua_tensor *t, int want_max) {
  int64_t runs = blua_tensor_runs(t), len = t->size[LAST(t)], s = t->stride[LAST(t)];
  double best = want_max ? -INFINITY : INFINITY;
  for (int64_t i = 0; i < runs; i++) {
    const float *p = RUN(t, i);
    for (int64_t j = 0; j < len; j++) {
      double x = p[j * s];
      if (isnan(x)) return NAN;
      if (want_max ? x > best : x < best) best = x;
    }
  }
  return best;
}

double blua_tensor_max(const blua_tensor *t) { return extreme(t, 1); }
double blua_tensor_min(const blua_tensor *t) { return extreme(t, 0); }

/* Headers of t and out with dimension d moved last, so each run of the moved t is one line
 * along d and the matching output element sits at the same run offset of the moved out. */
blua_tensor blua_tensor_lines_along(const blua_tensor *t, int d) {
  blua_tensor v = *t;
  int last = t->dim - 1;
  v.size[d] = t->size[last];
  v.stride[d] = t->stride[last];
  v.size[last] = t->size[d];
  v.stride[last] = t->stride[d];
  return v;
}

static int reduced_shape_ok(const blua_tensor *out, const blua_tensor *t, int d, blua_err *err) {
  char s1[160], s2[160];
  if (d < 0 || d >= t->dim) return bad_dim(err, t, d);
  int ok = out->dim == t->dim;
  for (int e = 0; ok && e < t->dim; e++) ok = out->size[e] == (e == d ? 1 : t->size[e]);
  if (!ok)
    return blua_fail(err, "size mismatch: reducing %s along dimension %d into %s", blua_tensor_shape(t, s1, sizeof s1),
                     d + 1, blua_tensor_shape(out, s2, sizeof s2));
  return BLUA_OK;
}

/* Reductions down the columns of a row-major matrix (rows rs floats apart, columns adjacent)
 * walk the rows one after another, COLUMN_BLOCK columns at a time, instead of walking down
 * each column (a new cache line per entry): each column still takes its entries in row
 * order, so the results are those of the column-by-column loops. The blocks go to the threads
 * when the matrix is big. */
enum { COLUMN_BLOCK = 256 };

/* How a column's double sum becomes its output: beta out + alpha sum, the sum, or the mean. */
typedef enum { COLSUM_AXPBY, COLSUM_SUM, COLSUM_MEAN } colsum_mode;

static void column_sums(const float *pt, int64_t rs, int64_t rows, int64_t cols, float *po, int64_t os,
                        colsum_mode mode, float beta, float alpha) {
  int64_t blocks = (cols + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
  BLUA_PAR(BIG(rows * cols) && blocks > 1, "omp parallel for",
  for (int64_t blk = 0; blk < blocks; blk++) {
    double acc[COLUMN_BLOCK];
    int64_t j0 = blk * COLUMN_BLOCK, w = cols - j0 < COLUMN_BLOCK ? cols - j0 : COLUMN_BLOCK;
    for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
    for (int64_t i = 0; i < rows; i++) {
      const float *p = pt + i * rs + j0;
_Pragma("omp simd")
      for (int64_t j = 0; j < w; j++) acc[j] += p[j];
    }
    for (int64_t j = 0; j < w; j++) {
      float *o = po + (j0 + j) * os;
      *o = mode == COLSUM_AXPBY ? (float)(beta * *o + alpha * acc[j])
           : mode == COLSUM_SUM ? (float)acc[j]
                                : (float)(rows ? acc[j] / (double)rows : NAN);
    }
  });
}

/* The row of each column's largest (smallest) entry, the first one on ties. With nan_wins a
 * column's first NaN is its extreme (blua_tensor_extreme_dim); otherwise NaNs never win, but a
 * NaN in row 0 stays unless beaten (blua_tensor_argmax_cols). */
static void column_extremes(const float *pt, int64_t rs, int64_t rows, int64_t cols, int want_max, int nan_wins,
                            int64_t *best_out) {
  int64_t blocks = (cols + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
  BLUA_PAR(BIG(rows * cols) && blocks > 1, "omp parallel for",
  for (int64_t blk = 0; blk < blocks; blk++) {
    int64_t j0 = blk * COLUMN_BLOCK, w = cols - j0 < COLUMN_BLOCK ? cols - j0 : COLUMN_BLOCK;
    int64_t *best = best_out + j0;
    float val[COLUMN_BLOCK];
    unsigned char stop[COLUMN_BLOCK];
    for (int64_t j = 0; j < w; j++) {
      best[j] = 0;
      val[j] = pt[j0 + j];
      stop[j] = nan_wins && isnan(val[j]);
    }
    for (int64_t i = 1; i < rows; i++) {
      const float *p = pt + i * rs + j0;
      for (int64_t j = 0; j < w; j++) {
        float x = p[j];
        if (stop[j]) continue;
        if (nan_wins && isnan(x)) {
          best[j] = i;
          val[j] = x;
          stop[j] = 1;
        } else if (want_max ? x > val[j] : x < val[j]) {
          best[j] = i;
          val[j] = x;
        }
      }
    }
  });
}

int blua_tensor_sum_dim(blua_tensor *out, const blua_tensor *t, int d, int mean, blua_err *err) {
  if (reduced_shape_ok(out, t, d, err)) return BLUA_ERROR;
  if (t->dim == 2 && d == 0 && t->stride[1] == 1) { /* (column sums of a matrix) */
    column_sums(blua_tensor_data(t), t->stride[0], t->size[0], t->size[1], blua_tensor_data(out), out->stride[1],
                mean ? COLSUM_MEAN : COLSUM_SUM, 0.0f, 1.0f);
    return BLUA_OK;
  }
  blua_tensor tv = blua_tensor_lines_along(t, d), ov = blua_tensor_lines_along(out, d);
  int64_t runs = blua_tensor_runs(&tv), len = t->size[d], s = t->stride[d];
  float *po = blua_tensor_data(out);
  const float *pt = blua_tensor_data(t);
  BLUA_PAR(BIG(runs * len), "omp parallel for",
  for (int64_t i = 0; i < runs; i++) {
    const float *p = pt + blua_tensor_run_offset(&tv, i);
    double acc = 0.0;
    for (int64_t j = 0; j < len; j++) acc += p[j * s];
    po[blua_tensor_run_offset(&ov, i)] = (float)(mean ? (len ? acc / (double)len : NAN) : acc);
  });
  return BLUA_OK;
}

/* The variance or standard deviation from n entries' sum of squared deviations ss: divided by
 * n - 1 (one entry gives 0/0 = NaN, as Torch) or, biased, by n. */
static double spread(double ss, int64_t n, blua_stat kind) {
  int biased = kind == BLUA_STAT_VAR_BIASED || kind == BLUA_STAT_STD_BIASED;
  double var = ss / (double)(biased ? n : n - 1);
  return kind == BLUA_STAT_STD || kind == BLUA_STAT_STD_BIASED ? sqrt(var) : var;
}

/* Spread and product of len floats s apart, in double. The variance takes two passes (the mean,
 * then the squared deviations). */
static double stat_run(const float *p, int64_t len, int64_t s, blua_stat kind) {
  if (kind == BLUA_STAT_PROD) {
    double acc = 1.0;
    for (int64_t j = 0; j < len; j++) acc *= p[j * s];
    return acc;
  }
  if (len == 0) return NAN;
  double mean = 0.0, ss = 0.0;
  for (int64_t j = 0; j < len; j++) mean += p[j * s];
  mean /= (double)len;
  for (int64_t j = 0; j < len; j++) ss += ((double)p[j * s] - mean) * ((double)p[j * s] - mean);
  return spread(ss, len, kind);
}

double blua_tensor_stat(const blua_tensor *t, blua_stat kind) {
  int64_t runs = blua_tensor_runs(t), len = t->size[LAST(t)], s = t->stride[LAST(t)];
  int64_t n = blua_tensor_nelement(t);
  if (kind == BLUA_STAT_PROD) {
    double acc = 1.0;
    for (int64_t i = 0; i < runs; i++) acc *= stat_run(RUN(t, i), len, s, kind);
    return acc;
  }
  if (n == 0) return NAN;
  double mean = 0.0, ss = 0.0;
  for (int64_t i = 0; i < runs; i++)
    for (int64_t j = 0; j < len; j++) mean += RUN(t, i)[j * s];
  mean /= (double)n;
  for (int64_t i = 0; i < runs; i++) {
    const float *p = RUN(t, i);
    for (int64_t j = 0; j < len; j++) ss += ((double)p[j * s] - mean) * ((double)p[j * s] - mean);
  }
  return spread(ss, n, kind);
}

int blua_tensor_stat_dim(blua_tensor *out, const blua_tensor *t, int d, blua_stat kind, blua_err *err) {
  if (reduced_shape_ok(out, t, d, err)) return BLUA_ERROR;
  blua_tensor tv = blua_tensor_lines_along(t, d), ov = blua_tensor_lines_along(out, d);
  int64_t runs = blua_tensor_runs(&tv), len = t->size[d], s = t->stride[d];
  float *po = blua_tensor_data(out);
  const float *pt = blua_tensor_data(t);
  BLUA_PAR(BIG(runs * len), "omp parallel for",
  for (int64_t i = 0; i < runs; i++)
    po[blua_tensor_run_offset(&ov, i)] = (float)stat_run(pt + blua_tensor_run_offset(&tv, i), len, s, kind););
  return BLUA_OK;
}

/* Running sums or products of t along d into out (t's shape, not overlapping t), in double. */
static int running(blua_tensor *out, const blua_tensor *t, int d, int product, blua_err *err) {
  char s1[160], s2[160];
  if (d < 0 || d >= t->dim) return blua_fail(err, "bad dimension: %d for %s", d + 1, blua_tensor_shape(t, s1, sizeof s1));
  if (!blua_tensor_same_shape(out, t))
    return blua_fail(err, "size mismatch: %s and %s", blua_tensor_shape(out, s1, sizeof s1), blua_tensor_shape(t, s2, sizeof s2));
  blua_named_tensor both[2] = {{out, "out", 0}, {t, "t", 0}};
  if (blua_tensors_apart(2, both, err)) return BLUA_ERROR;
  blua_tensor tv = blua_tensor_lines_along(t, d), ov = blua_tensor_lines_along(out, d);
  int64_t runs = blua_tensor_runs(&tv), len = t->size[d], s = t->stride[d], os = out->stride[d];
  float *po = blua_tensor_data(out);
  const float *pt = blua_tensor_data(t);
  BLUA_PAR(BIG(runs * len), "omp parallel for",
  for (int64_t i = 0; i < runs; i++) {
    const float *p = pt + blua_tensor_run_offset(&tv, i);
    float *o = po + blua_tensor_run_offset(&ov, i);
    double acc = product ? 1.0 : 0.0;
    for (int64_t j = 0; j < len; j++) {
      acc = product ? acc * p[j * s] : acc + p[j * s];
      o[j * os] = (float)acc;
    }
  });
  return BLUA_OK;
}

int blua_tensor_cumsum(blua_tensor *out, const blua_tensor *t, int d, blua_err *err) { return running(out, t, d, 0, err); }
int blua_tensor_cumprod(blua_tensor *out, const blua_tensor *t, int d, blua_err *err) { return running(out, t, d, 1, err); }

/* Whether x goes before y: by value (descending or not), NaN after every number. */
static int sorts_before(float x, float y, int descending) {
  if (isnan(x)) return 0;
  if (isnan(y)) return 1;
  return descending ? x > y : x < y;
}

/* Stable merge sort of the positions ix[0..n) of the floats p (s apart), tmp as scratch. */
static void merge_sort(int64_t *ix, int64_t *tmp, int64_t n, const float *p, int64_t s, int descending) {
  for (int64_t w = 1; w < n; w *= 2) {
    for (int64_t lo = 0; lo < n; lo += 2 * w) {
      int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, a = lo, b = mid, o = lo;
      while (a < mid && b < hi) tmp[o++] = sorts_before(p[ix[b] * s], p[ix[a] * s], descending) ? ix[b++] : ix[a++];
      while (a < mid) tmp[o++] = ix[a++];
      while (b < hi) tmp[o++] = ix[b++];
    }
    memcpy(ix, tmp, (size_t)n * sizeof *ix);
  }
}

int blua_tensor_sort(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int d, int descending, blua_err *err) {
  char s1[160], s2[160];
  if (d < 0 || d >= t->dim) return blua_fail(err, "dimension %d out of range for %s", d + 1, blua_tensor_shape(t, s1, sizeof s1));
  int64_t len = t->size[d], k = vals->size[d];
  int bad = vals->dim != t->dim || !blua_tensor_same_shape(vals, idx) || k > len;
  for (int i = 0; !bad && i < t->dim; i++) bad = i != d && vals->size[i] != t->size[i];
  if (bad) return blua_fail(err, "size mismatch: %s from %s", blua_tensor_shape(vals, s1, sizeof s1), blua_tensor_shape(t, s2, sizeof s2));
  int64_t *ix = malloc((size_t)(len ? 2 * len : 1) * sizeof *ix);
  if (!ix) return blua_fail(err, "out of memory: sorting %lld entries", (long long)len);
  blua_tensor tv = blua_tensor_lines_along(t, d), vv = blua_tensor_lines_along(vals, d), iv = blua_tensor_lines_along(idx, d);
  int64_t runs = blua_tensor_runs(&tv), s = t->stride[d], vs = vals->stride[d], is = idx->stride[d];
  const float *pt = blua_tensor_data(t);
  float *pv = blua_tensor_data(vals), *pi = blua_tensor_data(idx);
  for (int64_t i = 0; len && i < runs; i++) {
    const float *p = pt + blua_tensor_run_offset(&tv, i);
    for (int64_t j = 0; j < len; j++) ix[j] = j;
    merge_sort(ix, ix + len, len, p, s, descending);
    float *ov = pv + blua_tensor_run_offset(&vv, i), *oi = pi + blua_tensor_run_offset(&iv, i);
    for (int64_t j = 0; j < k; j++) {
      ov[j * vs] = p[ix[j] * s];
      oi[j * is] = (float)(ix[j] + 1);
    }
  }
  free(ix);
  return BLUA_OK;
}

int blua_tensor_extreme_dim(blua_tensor *out, blua_tensor *idx, const blua_tensor *t, int d, int want_max,
                            blua_err *err) {
  if (reduced_shape_ok(out, t, d, err) || (idx && reduced_shape_ok(idx, t, d, err))) return BLUA_ERROR;
  if (t->size[d] == 0) {
    char s[160];
    return blua_fail(err, "empty dimension: %d of %s has no elements", d + 1, blua_tensor_shape(t, s, sizeof s));
  }
  if (t->dim == 2 && d == 0 && t->stride[1] == 1) { /* (column extremes of a matrix) */
    int64_t rows = t->size[0], cols = t->size[1], rs = t->stride[0];
    int64_t *best = malloc((size_t)(cols ? cols : 1) * sizeof *best);
    if (!best) return blua_fail(err, "out of memory: extremes of %lld columns", (long long)cols);
    const float *pt = blua_tensor_data(t);
    column_extremes(pt, rs, rows, cols, want_max, 1, best);
    float *po = blua_tensor_data(out), *pi = idx ? blua_tensor_data(idx) : NULL;
    for (int64_t j = 0; j < cols; j++) {
      po[j * out->stride[1]] = pt[best[j] * rs + j];
      if (pi) pi[j * idx->stride[1]] = (float)(best[j] + 1);
    }
    free(best);
    return BLUA_OK;
  }
  blua_tensor tv = blua_tensor_lines_along(t, d), ov = blua_tensor_lines_along(out, d), iv = idx ? blua_tensor_lines_along(idx, d) : ov;
  int64_t runs = blua_tensor_runs(&tv), len = t->size[d], s = t->stride[d];
  float *po = blua_tensor_data(out), *pi = idx ? blua_tensor_data(idx) : NULL;
  const float *pt = blua_tensor_data(t);
  BLUA_PAR(BIG(runs * len), "omp parallel for",
  for (int64_t i = 0; i < runs; i++) {
    const float *p = pt + blua_tensor_run_offset(&tv, i);
    int64_t best = 0;
    for (int64_t j = 0; j < len; j++) {
      float x = p[j * s];
      if (isnan(x)) {
        best = j;
        break;
      }
      if (j > 0 && (want_max ? x > p[best * s] : x < p[best * s])) best = j;
    }
    po[blua_tensor_run_offset(&ov, i)] = p[best * s];
    if (pi) pi[blua_tensor_run_offset(&iv, i)] = (float)(best + 1);
  });
  return BLUA_OK;
}

void blua_tensor_argmax_rows(const blua_tensor *t, int64_t *out) {
  int64_t rows = blua_tensor_rows(t), cols = blua_tensor_cols(t), cs = blua_tensor_colstride(t);
  BLUA_PAR(BIG(rows * cols), "omp parallel for",
  for (int64_t i = 0; i < rows; i++) {
    const float *p = blua_tensor_at(t, i, 0);
    int64_t best = 0;
    for (int64_t j = 1; j < cols; j++)
      if (p[j * cs] > p[best * cs]) best = j;
    out[i] = best;
  });
}

void blua_tensor_argmax_cols(const blua_tensor *t, int64_t *out) {
  int64_t rows = blua_tensor_rows(t), cols = blua_tensor_cols(t);
  if (blua_tensor_colstride(t) == 1 && rows > 0) {
    column_extremes(blua_tensor_at(t, 0, 0), t->stride[0], rows, cols, 1, 0, out);
    return;
  }
  for (int64_t j = 0; j < cols; j++) {
    int64_t best = 0;
    for (int64_t i = 1; i < rows; i++)
      if (*blua_tensor_at(t, i, j) > *blua_tensor_at(t, best, j)) best = i;
    out[j] = best;
  }
}

int blua_tensor_sum_rows(blua_tensor *out, float beta, float alpha, const blua_tensor *t, blua_err *err) {
  if (blua_tensor_check_matrix(t, err)) return BLUA_ERROR;
  int64_t rows = blua_tensor_rows(t), cols = blua_tensor_cols(t);
  if (out->dim > 2 || blua_tensor_nelement(out) != cols || (out->dim == 2 && out->size[0] != 1))
    return shape_mismatch(err, out, t);
  int64_t os = vec_step(out);
  float *po = blua_tensor_data(out);
  if (blua_tensor_colstride(t) == 1) {
    column_sums(blua_tensor_at(t, 0, 0), t->stride[0], rows, cols, po, os, COLSUM_AXPBY, beta, alpha);
    return BLUA_OK;
  }
  BLUA_PAR(BIG(rows * cols), "omp parallel for",
  for (int64_t j = 0; j < cols; j++) {
    double s = 0.0;
    for (int64_t i = 0; i < rows; i++) s += *blua_tensor_at(t, i, j);
    po[j * os] = (float)(beta * po[j * os] + alpha * s);
  });
  return BLUA_OK;
}

int blua_tensor_all_finite(const blua_tensor *t) {
  int64_t runs = blua_tensor_runs(t), len = t->size[LAST(t)], s = t->stride[LAST(t)];
  int ok = 1;
  BLUA_PAR(BIG(runs * len), "omp parallel for reduction(&& : ok)",
  for (int64_t i = 0; i < runs; i++) {
    const float *p = RUN(t, i);
    for (int64_t j = 0; j < len; j++) ok = ok && isfinite(p[j * s]);
  });
  return ok;
}

/* ---- random fills (sequential: the stream order must not depend on threads) ---- */

void blua_tensor_uniform(blua_tensor *t, double lo, double hi) {
  blua_rng *r = blua_default_rng();
  int64_t runs = blua_tensor_runs(t), len = t->size[LAST(t)], s = t->stride[LAST(t)];
  for (int64_t i = 0; i < runs; i++) {
    float *p = RUN(t, i);
    for (int64_t j = 0; j < len; j++) p[j * s] = (float)(lo + (hi - lo) * blua_rng_uniform(r));
  }
}

void blua_tensor_normal(blua_tensor *t, double mean, double std) {
  blua_rng *r = blua_default_rng();
  int64_t runs = blua_tensor_runs(t), len = t->size[LAST(t)], s = t->stride[LAST(t)];
  for (int64_t i = 0; i < runs; i++) {
    float *p = RUN(t, i);
    for (int64_t j = 0; j < len; j++) p[j * s] = (float)(mean + std * blua_rng_normal(r));
  }
}

void blua_tensor_bernoulli(blua_tensor *t, double prob) {
  blua_rng *r = blua_default_rng();
  int64_t runs = blua_tensor_runs(t), len = t->size[LAST(t)], s = t->stride[LAST(t)];
  for (int64_t i = 0; i < runs; i++) {
    float *p = RUN(t, i);
    for (int64_t j = 0; j < len; j++) p[j * s] = blua_rng_uniform(r) < prob ? 1.0f : 0.0f;
  }
}
