/* Indexing by position lists and masks on tensors: the core of runtime/ltensor_index.c.
 *
 * Every kernel walks its tensors element by element through their strides (the walker below),
 * so transposed, narrowed and permuted views need no copy. Each function checks everything
 * first and only then writes, so an error leaves the tensor untouched. */
#include <math.h>
#include <string.h>

#include "blua/tensor_index.h"

#define SHAPE_LEN 160

/* ---- walking a shape ---- */

/* Row-major positions over one shape, with the offsets of up to three tensors laid over it
 * (each with its own strides), updated per step without divisions. */
enum { WALK_MAX = 3 };
typedef struct {
  int dim, n;
  int64_t size[BLUA_MAX_DIM], pos[BLUA_MAX_DIM];
  int64_t stride[WALK_MAX][BLUA_MAX_DIM];
  int64_t off[WALK_MAX];
} walker;

static void walk_start(walker *w, int dim, const int64_t *size) {
  memset(w, 0, sizeof *w);
  w->dim = dim;
  memcpy(w->size, size, (size_t)dim * sizeof *size);
}

/* Lays a tensor over the walk with these strides (dim entries), starting at offset off. */
static int walk_add(walker *w, const int64_t *stride, int64_t off) {
  memcpy(w->stride[w->n], stride, (size_t)w->dim * sizeof *stride);
  w->off[w->n] = off;
  return w->n++;
}

static void walk_next(walker *w) {
  for (int d = w->dim - 1; d >= 0; d--) {
    if (++w->pos[d] < w->size[d]) {
      for (int k = 0; k < w->n; k++) w->off[k] += w->stride[k][d];
      return;
    }
    w->pos[d] = 0;
    for (int k = 0; k < w->n; k++) w->off[k] -= (w->size[d] - 1) * w->stride[k][d];
  }
}

static int64_t count_of(int dim, const int64_t *size) {
  int64_t n = 1;
  for (int d = 0; d < dim; d++) n *= size[d];
  return n;
}

/* ---- shared checks ---- */

static const char *shape(const blua_tensor *t, char *buf) { return blua_tensor_shape(t, buf, SHAPE_LEN); }

static int check_dim(const blua_tensor *t, int d, blua_err *err) {
  if (d < 0 || d >= t->dim) return blua_fail(err, "bad dimension: %d for a %d-D tensor", d + 1, t->dim);
  return BLUA_OK;
}

/* Every position in 0..t->size[d]. */
static int check_positions(const blua_tensor *t, int d, const int64_t *idx, int64_t n, blua_err *err) {
  char s[SHAPE_LEN];
  for (int64_t k = 0; k < n; k++)
    if (idx[k] < 0 || idx[k] >= t->size[d])
      return blua_fail(err, "index out of range: entry %lld is %lld, not in 1..%lld (dimension %d of %s)",
                       (long long)k + 1, (long long)idx[k] + (idx[k] < INT64_MAX), (long long)t->size[d], d + 1,
                       shape(t, s));
  return BLUA_OK;
}

static int overlaps(const blua_tensor *a, const blua_tensor *b) {
  blua_named_tensor pair[2] = {{a, "a", 0}, {b, "b", 0}};
  return blua_tensors_apart(2, pair, NULL) != BLUA_OK;
}

/* x itself, or a copy of it in *own when it shares memory with the tensor t that is written
 * (reading x as t changes would give another result than Torch's separate tensors). NULL when
 * the copy cannot be made. */
static const blua_tensor *apart_from(const blua_tensor *t, const blua_tensor *x, blua_tensor **own, blua_err *err) {
  *own = NULL;
  if (!overlaps(t, x)) return x;
  *own = blua_tensor_clone(x, err);
  return *own;
}

/* ---- indexFill, indexCopy, indexAdd ---- */

int blua_tensor_index_fill(blua_tensor *t, int d, const int64_t *idx, int64_t n, float v, blua_err *err) {
  if (check_dim(t, d, err) || check_positions(t, d, idx, n, err)) return BLUA_ERROR;
  int64_t size[BLUA_MAX_DIM];
  memcpy(size, t->size, sizeof size);
  size[d] = 1;
  int64_t count = count_of(t->dim, size);
  float *p = blua_tensor_data(t);
  for (int64_t k = 0; k < n; k++) {
    walker w;
    walk_start(&w, t->dim, size);
    walk_add(&w, t->stride, idx[k] * t->stride[d]);
    for (int64_t e = 0; e < count; e++, walk_next(&w)) p[w.off[0]] = v;
  }
  return BLUA_OK;
}

static int index_put(blua_tensor *t, int d, const int64_t *idx, int64_t n, const blua_tensor *src, int add,
                     blua_err *err) {
  char s1[SHAPE_LEN], s2[SHAPE_LEN], s3[SHAPE_LEN];
  if (check_dim(t, d, err)) return BLUA_ERROR;
  blua_tensor want = *t;
  want.size[d] = n;
  if (!blua_tensor_same_shape(src, &want))
    return blua_fail(err, "size mismatch: src is %s, expected %s (%lld %s along dimension %d of %s)",
                     shape(src, s1), shape(&want, s2), (long long)n, n == 1 ? "index" : "indices", d + 1,
                     shape(t, s3));
  if (check_positions(t, d, idx, n, err)) return BLUA_ERROR;
  blua_tensor *own;
  src = apart_from(t, src, &own, err);
  if (!src) return BLUA_ERROR;
  int64_t size[BLUA_MAX_DIM];
  memcpy(size, t->size, sizeof size);
  size[d] = 1;
  int64_t count = count_of(t->dim, size);
  float *p = blua_tensor_data(t);
  const float *q = blua_tensor_data(src);
  for (int64_t k = 0; k < n; k++) {
    walker w;
    walk_start(&w, t->dim, size);
    walk_add(&w, t->stride, idx[k] * t->stride[d]);
    walk_add(&w, src->stride, k * src->stride[d]);
    if (add)
      for (int64_t e = 0; e < count; e++, walk_next(&w)) p[w.off[0]] += q[w.off[1]];
    else
      for (int64_t e = 0; e < count; e++, walk_next(&w)) p[w.off[0]] = q[w.off[1]];
  }
  blua_tensor_release(own);
  return BLUA_OK;
}

int blua_tensor_index_copy(blua_tensor *t, int d, const int64_t *idx, int64_t n, const blua_tensor *src,
                           blua_err *err) {
  return index_put(t, d, idx, n, src, 0, err);
}

int blua_tensor_index_add(blua_tensor *t, int d, const int64_t *idx, int64_t n, const blua_tensor *src,
                          blua_err *err) {
  return index_put(t, d, idx, n, src, 1, err);
}

/* ---- maskedFill, maskedSelect, maskedCopy ---- */

int64_t blua_tensor_mask_count(const blua_tensor *mask, blua_err *err) {
  int64_t count = blua_tensor_nelement(mask), ones = 0;
  const float *p = blua_tensor_data(mask);
  walker w;
  walk_start(&w, mask->dim, mask->size);
  walk_add(&w, mask->stride, 0);
  for (int64_t e = 0; e < count; e++, walk_next(&w)) {
    float v = p[w.off[0]];
    if (v == 1.0f)
      ones++;
    else if (v != 0.0f) {
      blua_fail(err, "bad mask: entry %lld is %g, not 0 or 1", (long long)e + 1, (double)v);
      return -1;
    }
  }
  return ones;
}

/* The mask's element count against t's, then its values: the number of ones, or -1. */
static int64_t check_mask(const blua_tensor *t, const blua_tensor *mask, blua_err *err) {
  char s1[SHAPE_LEN], s2[SHAPE_LEN];
  if (blua_tensor_nelement(mask) != blua_tensor_nelement(t)) {
    blua_fail(err, "size mismatch: mask %s has %lld elements, tensor %s has %lld", shape(mask, s1),
              (long long)blua_tensor_nelement(mask), shape(t, s2), (long long)blua_tensor_nelement(t));
    return -1;
  }
  return blua_tensor_mask_count(mask, err);
}

/* t and mask walked side by side in their own row-major orders; out (when not NULL) gets t's
 * masked entries, else they are set to v, or (src not NULL) to src's entries in order. */
static void masked_walk(const blua_tensor *t, const blua_tensor *mask, float *out, float v, const blua_tensor *src) {
  int64_t count = blua_tensor_nelement(t);
  float *p = blua_tensor_data(t);
  const float *m = blua_tensor_data(mask), *q = src ? blua_tensor_data(src) : NULL;
  walker wt, wm, ws;
  walk_start(&wt, t->dim, t->size);
  walk_add(&wt, t->stride, 0);
  walk_start(&wm, mask->dim, mask->size);
  walk_add(&wm, mask->stride, 0);
  if (src) {
    walk_start(&ws, src->dim, src->size);
    walk_add(&ws, src->stride, 0);
  }
  for (int64_t e = 0; e < count; e++, walk_next(&wt), walk_next(&wm)) {
    if (m[wm.off[0]] == 0.0f) continue;
    if (out) {
      *out++ = p[wt.off[0]];
    } else if (src) {
      p[wt.off[0]] = q[ws.off[0]];
      walk_next(&ws);
    } else {
      p[wt.off[0]] = v;
    }
  }
}

int blua_tensor_masked_fill(blua_tensor *t, const blua_tensor *mask, float v, blua_err *err) {
  if (check_mask(t, mask, err) < 0) return BLUA_ERROR;
  blua_tensor *own;
  mask = apart_from(t, mask, &own, err);
  if (!mask) return BLUA_ERROR;
  masked_walk(t, mask, NULL, v, NULL);
  blua_tensor_release(own);
  return BLUA_OK;
}

blua_tensor *blua_tensor_masked_select(const blua_tensor *t, const blua_tensor *mask, blua_err *err) {
  int64_t ones = check_mask(t, mask, err);
  if (ones < 0) return NULL;
  blua_tensor *r = blua_tensor_empty_nd(1, &ones, err);
  if (!r) return NULL;
  masked_walk(t, mask, blua_tensor_data(r), 0.0f, NULL);
  return r;
}

int blua_tensor_masked_copy(blua_tensor *t, const blua_tensor *mask, const blua_tensor *src, blua_err *err) {
  char s[SHAPE_LEN];
  int64_t ones = check_mask(t, mask, err);
  if (ones < 0) return BLUA_ERROR;
  if (blua_tensor_nelement(src) < ones)
    return blua_fail(err, "size mismatch: src %s has %lld elements, the mask selects %lld", shape(src, s),
                     (long long)blua_tensor_nelement(src), (long long)ones);
  blua_tensor *own_mask, *own_src = NULL;
  mask = apart_from(t, mask, &own_mask, err);
  if (mask) src = apart_from(t, src, &own_src, err);
  if (mask && src) masked_walk(t, mask, NULL, 0.0f, src);
  blua_tensor_release(own_mask);
  blua_tensor_release(own_src);
  return mask && src ? BLUA_OK : BLUA_ERROR;
}

/* ---- gather, scatter ---- */

/* index has t's dimensions and t's sizes outside d, and every entry is an integer in
 * 1..t->size[d]. */
static int check_index(const blua_tensor *t, int d, const blua_tensor *index, blua_err *err) {
  char s1[SHAPE_LEN], s2[SHAPE_LEN];
  if (check_dim(t, d, err)) return BLUA_ERROR;
  int agree = index->dim == t->dim;
  for (int e = 0; agree && e < t->dim; e++) agree = e == d || index->size[e] == t->size[e];
  if (!agree)
    return blua_fail(err, "size mismatch: index %s for tensor %s (the index needs the tensor's dimensions and "
                     "its sizes outside dimension %d)", shape(index, s1), shape(t, s2), d + 1);
  int64_t count = blua_tensor_nelement(index), size = t->size[d];
  const float *p = blua_tensor_data(index);
  walker w;
  walk_start(&w, index->dim, index->size);
  walk_add(&w, index->stride, 0);
  for (int64_t e = 0; e < count; e++, walk_next(&w)) {
    float v = p[w.off[0]];
    if (v != floorf(v) || isnan(v))
      return blua_fail(err, "bad index: entry %lld of the index is %g, not an integer", (long long)e + 1, (double)v);
    if (!(v >= 1.0f && (double)v <= (double)size))
      return blua_fail(err, "index out of range: entry %lld of the index is %.0f, not in 1..%lld (dimension %d of %s)",
                       (long long)e + 1, (double)v, (long long)size, d + 1, shape(t, s2));
  }
  return BLUA_OK;
}

/* t's strides with the one along d left out: the index supplies that part. */
static void strides_but(const blua_tensor *t, int d, int64_t *stride) {
  memcpy(stride, t->stride, sizeof t->stride);
  stride[d] = 0;
}

blua_tensor *blua_tensor_gather(const blua_tensor *t, int d, const blua_tensor *index, blua_err *err) {
  if (check_index(t, d, index, err)) return NULL;
  blua_tensor *r = blua_tensor_empty_nd(index->dim, index->size, err);
  if (!r) return NULL;
  int64_t stride[BLUA_MAX_DIM], count = blua_tensor_nelement(index), step = t->stride[d];
  strides_but(t, d, stride);
  walker w;
  walk_start(&w, index->dim, index->size);
  walk_add(&w, stride, 0);
  walk_add(&w, index->stride, 0);
  const float *p = blua_tensor_data(t), *ip = blua_tensor_data(index);
  float *out = blua_tensor_data(r); /* contiguous, and walked in its row-major order */
  for (int64_t e = 0; e < count; e++, walk_next(&w)) out[e] = p[w.off[0] + ((int64_t)ip[w.off[1]] - 1) * step];
  return r;
}

static int scatter(blua_tensor *t, int d, const blua_tensor *index, const blua_tensor *src, float v, blua_err *err) {
  char s1[SHAPE_LEN], s2[SHAPE_LEN];
  if (check_index(t, d, index, err)) return BLUA_ERROR;
  if (src) {
    int agree = src->dim == index->dim;
    for (int e = 0; agree && e < index->dim; e++)
      agree = e == d ? src->size[e] >= index->size[e] : src->size[e] == index->size[e];
    if (!agree)
      return blua_fail(err, "size mismatch: src %s for index %s (src needs the index's sizes, or more along "
                       "dimension %d)", shape(src, s1), shape(index, s2), d + 1);
  }
  blua_tensor *own_index, *own_src = NULL;
  const blua_tensor *ix = apart_from(t, index, &own_index, err);
  const blua_tensor *sx = ix && src ? apart_from(t, src, &own_src, err) : NULL;
  int ok = ix && (!src || sx);
  if (ok) {
    int64_t stride[BLUA_MAX_DIM], count = blua_tensor_nelement(ix), step = t->stride[d];
    strides_but(t, d, stride);
    walker w;
    walk_start(&w, ix->dim, ix->size);
    walk_add(&w, stride, 0);
    walk_add(&w, ix->stride, 0);
    if (sx) walk_add(&w, sx->stride, 0);
    float *p = blua_tensor_data(t);
    const float *ip = blua_tensor_data(ix), *q = sx ? blua_tensor_data(sx) : NULL;
    for (int64_t e = 0; e < count; e++, walk_next(&w))
      p[w.off[0] + ((int64_t)ip[w.off[1]] - 1) * step] = q ? q[w.off[2]] : v;
  }
  blua_tensor_release(own_index);
  blua_tensor_release(own_src);
  return ok ? BLUA_OK : BLUA_ERROR;
}

int blua_tensor_scatter(blua_tensor *t, int d, const blua_tensor *index, const blua_tensor *src, blua_err *err) {
  return scatter(t, d, index, src, 0.0f, err);
}

int blua_tensor_scatter_fill(blua_tensor *t, int d, const blua_tensor *index, float v, blua_err *err) {
  return scatter(t, d, index, NULL, v, err);
}
