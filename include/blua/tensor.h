/* The blua tensor: float32, 1-D or 2-D, row-major, over reference-counted,
 * 64-byte aligned storage. Views (narrow, transpose) share the storage.
 *
 * Ownership: every function that returns a blua_tensor* returns a new reference
 * that the caller releases with blua_tensor_release. Functions never exit or
 * abort; on bad input they return NULL or BLUA_ERROR and fill the blua_err. */
#ifndef BLUA_TENSOR_H
#define BLUA_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "blua/error.h"

typedef struct blua_storage {
  float *data;  /* 64-byte aligned, inside base */
  void *base;   /* what the allocator returned */
  size_t n;     /* number of floats */
  int refcount;
} blua_storage;

typedef struct blua_tensor {
  blua_storage *storage;
  size_t offset;      /* first element, in floats from storage->data */
  int dim;            /* 1 or 2 */
  int64_t size[2];    /* size[1] == 1 and stride[1] == 1 for 1-D tensors */
  int64_t stride[2];
  int refcount;
} blua_tensor;

/* Largest number of elements one tensor may hold (guards size overflow). */
#define BLUA_MAX_ELEMENTS ((int64_t)1 << 34)

/* Creation: zero-filled, contiguous. */
blua_tensor *blua_tensor_new(int dim, int64_t rows, int64_t cols, blua_err *err);
/* Uninitialised contents: for results that are written in full before they are read. */
blua_tensor *blua_tensor_empty(int dim, int64_t rows, int64_t cols, blua_err *err);
blua_tensor *blua_tensor_new2d(int64_t rows, int64_t cols, blua_err *err);
blua_tensor *blua_tensor_new1d(int64_t n, blua_err *err);
blua_tensor *blua_tensor_new_like(const blua_tensor *t, blua_err *err);
blua_tensor *blua_tensor_eye(int64_t n, blua_err *err);

void blua_tensor_retain(blua_tensor *t);
void blua_tensor_release(blua_tensor *t);          /* NULL is fine */

/* Size and layout. Rows and columns treat a 1-D tensor as n x 1. */
static inline int64_t blua_tensor_rows(const blua_tensor *t) { return t->size[0]; }
static inline int64_t blua_tensor_cols(const blua_tensor *t) { return t->dim == 2 ? t->size[1] : 1; }
static inline int64_t blua_tensor_nelement(const blua_tensor *t) { return t->size[0] * (t->dim == 2 ? t->size[1] : 1); }
static inline float *blua_tensor_data(const blua_tensor *t) { return t->storage->data + t->offset; }
/* Pointer to element (i, j), 0-based, no bounds check. */
static inline float *blua_tensor_at(const blua_tensor *t, int64_t i, int64_t j) {
  return blua_tensor_data(t) + i * t->stride[0] + (t->dim == 2 ? j * t->stride[1] : 0);
}
int blua_tensor_is_contiguous(const blua_tensor *t);
int blua_tensor_same_shape(const blua_tensor *a, const blua_tensor *b);
/* Writes "RxC" (or "N" for 1-D) into buf and returns buf. */
const char *blua_tensor_shape(const blua_tensor *t, char *buf, size_t len);

/* Views sharing storage. dim is 0-based here. */
blua_tensor *blua_tensor_narrow(blua_tensor *t, int dim, int64_t first, int64_t len, blua_err *err);
blua_tensor *blua_tensor_transpose(blua_tensor *t, blua_err *err);
/* A rows x cols view of a contiguous tensor with the same number of elements. */
blua_tensor *blua_tensor_view(blua_tensor *t, int dim, int64_t rows, int64_t cols, blua_err *err);

/* Copies. */
blua_tensor *blua_tensor_clone(const blua_tensor *t, blua_err *err);
/* t itself (retained) when contiguous, else a contiguous clone. */
blua_tensor *blua_tensor_contiguous(blua_tensor *t, blua_err *err);
int blua_tensor_copy(blua_tensor *dst, const blua_tensor *src, blua_err *err);
void blua_tensor_fill(blua_tensor *t, float v);
/* Rows idx[0..n) of src (0-based) into the rows of dst (n x cols). */
int blua_tensor_gather_rows(blua_tensor *dst, const blua_tensor *src, const int64_t *idx, int64_t n, blua_err *err);

/* Elementwise arithmetic; r may alias a or b, shapes must match. */
int blua_tensor_add(blua_tensor *r, const blua_tensor *a, float alpha, const blua_tensor *b, blua_err *err); /* r = a + alpha b */
int blua_tensor_cmul(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err);
int blua_tensor_cdiv(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err);
int blua_tensor_affine(blua_tensor *r, const blua_tensor *a, float scale, float shift, blua_err *err); /* r = scale a + shift */
/* r[i, :] = a[i, :] + alpha * v for a 1 x cols (or cols-element 1-D) v. */
int blua_tensor_add_rowvec(blua_tensor *r, const blua_tensor *a, float alpha, const blua_tensor *v, blua_err *err);

/* Matrix product c = beta c + alpha op(a) op(b) through cblas_sgemm; any of a, b may be a
 * transposed view or a narrowed view; c must not overlap a or b. */
int blua_mm(blua_tensor *c, float beta, float alpha, const blua_tensor *a, const blua_tensor *b, blua_err *err);

/* Reductions, accumulated in double. */
double blua_tensor_sum(const blua_tensor *t);
double blua_tensor_max(const blua_tensor *t);     /* -inf for no elements */
double blua_tensor_min(const blua_tensor *t);
double blua_tensor_norm(const blua_tensor *t);    /* Frobenius */
double blua_tensor_dot(const blua_tensor *a, const blua_tensor *b); /* shapes must match */
/* 0-based index of the largest entry of each row (out has rows entries). */
void blua_tensor_argmax_rows(const blua_tensor *t, int64_t *out);
/* 0-based index of the largest entry of each column (out has cols entries). */
void blua_tensor_argmax_cols(const blua_tensor *t, int64_t *out);
/* out (1 x cols, or cols 1-D) = beta out + alpha * column sums of t. */
int blua_tensor_sum_rows(blua_tensor *out, float beta, float alpha, const blua_tensor *t, blua_err *err);
/* 1 when every entry is finite. */
int blua_tensor_all_finite(const blua_tensor *t);

/* Random fills from the process-wide seeded generator (blua/random.h). */
void blua_tensor_uniform(blua_tensor *t, double lo, double hi);
void blua_tensor_normal(blua_tensor *t, double mean, double std);

/* Elementwise loops go parallel above this many elements. */
#define BLUA_OMP_THRESHOLD 32768

#endif
