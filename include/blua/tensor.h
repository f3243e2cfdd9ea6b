/* The blua tensor: float32, 1 to BLUA_MAX_DIM dimensions, row-major, over reference-counted,
 * 64-byte aligned storage. Views (narrow, select, transpose, view, squeeze, unsqueeze) share
 * the storage.
 *
 * Ownership: every function that returns a blua_tensor* returns a new reference that the
 * caller releases with blua_tensor_release. Functions never exit or abort; on bad input they
 * return NULL or BLUA_ERROR and fill the blua_err.
 *
 * Matrix kernels see any tensor as rows x cols with rows = size[0] and cols = the product of
 * the other sizes (a 1-D tensor is n x 1). blua_tensor_at(t, i, j) is exact for 1-D and 2-D
 * tensors of any strides, and for N-d tensors whose trailing dimensions collapse into one
 * (blua_tensor_check_matrix says so, with an error otherwise). Dimensions are 0-based here. */
#ifndef BLUA_TENSOR_H
#define BLUA_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "blua/error.h"

#define BLUA_MAX_DIM 8

typedef struct blua_storage {
  float *data;  /* 64-byte aligned, inside base */
  void *base;   /* what the allocator returned */
  size_t n;     /* number of floats */
  int refcount;
} blua_storage;

typedef struct blua_tensor {
  blua_storage *storage;
  size_t offset;                /* first element, in floats from storage->data */
  int dim;                      /* 1..BLUA_MAX_DIM */
  int64_t size[BLUA_MAX_DIM];   /* entries from dim on are 1 (so size[1] == 1 for 1-D) */
  int64_t stride[BLUA_MAX_DIM]; /* entries from dim on are 1 */
  int refcount;
} blua_tensor;

/* Largest number of elements one tensor may hold (guards size overflow). The product of all
 * sizes, counting a size 0 as 1, never exceeds it, so no stride or offset can overflow. */
#define BLUA_MAX_ELEMENTS ((int64_t)1 << 34)

/* Creation: zero-filled, contiguous. dim is 1 or 2 for these (cols ignored for 1-D). */
blua_tensor *blua_tensor_new(int dim, int64_t rows, int64_t cols, blua_err *err);
/* Uninitialised contents: for results that are written in full before they are read. */
blua_tensor *blua_tensor_empty(int dim, int64_t rows, int64_t cols, blua_err *err);
blua_tensor *blua_tensor_new2d(int64_t rows, int64_t cols, blua_err *err);
blua_tensor *blua_tensor_new1d(int64_t n, blua_err *err);
/* Any number of dimensions: size[0..dim). */
blua_tensor *blua_tensor_new_nd(int dim, const int64_t *size, blua_err *err);
blua_tensor *blua_tensor_empty_nd(int dim, const int64_t *size, blua_err *err);
/* Same shape as t (any dim), contiguous; zero-filled / uninitialised. */
blua_tensor *blua_tensor_new_like(const blua_tensor *t, blua_err *err);
blua_tensor *blua_tensor_empty_like(const blua_tensor *t, blua_err *err);
blua_tensor *blua_tensor_eye(int64_t n, blua_err *err);
/* BLUA_OK when the sizes make a valid shape (1 <= dim <= BLUA_MAX_DIM, sizes >= 0, element
 * count within BLUA_MAX_ELEMENTS); *count gets the element count. */
int blua_shape_check(int dim, const int64_t *size, int64_t *count, blua_err *err);

/* Grows (or shrinks) a contiguous 1-D tensor that is the only user of its storage to n
 * elements, keeping its values (realloc: no second copy where the allocator can remap). For
 * readers that learn the size as data arrives. */
int blua_tensor_resize1d(blua_tensor *t, int64_t n, blua_err *err);

void blua_tensor_retain(blua_tensor *t);
void blua_tensor_release(blua_tensor *t);          /* NULL is fine */

/* Size and layout. */
static inline int64_t blua_tensor_rows(const blua_tensor *t) { return t->size[0]; }
static inline int64_t blua_tensor_cols(const blua_tensor *t) {
  int64_t c = 1;
  for (int d = 1; d < t->dim; d++) c *= t->size[d];
  return c;
}
static inline int64_t blua_tensor_nelement(const blua_tensor *t) { return t->size[0] * blua_tensor_cols(t); }
static inline float *blua_tensor_data(const blua_tensor *t) { return t->storage->data + t->offset; }
/* Step between neighbouring columns of the rows x cols matrix (0 for 1-D). */
static inline int64_t blua_tensor_colstride(const blua_tensor *t) { return t->dim >= 2 ? t->stride[t->dim - 1] : 0; }
/* Pointer to element (i, j) of the rows x cols matrix, 0-based, no bounds check. */
static inline float *blua_tensor_at(const blua_tensor *t, int64_t i, int64_t j) {
  return blua_tensor_data(t) + i * t->stride[0] + j * blua_tensor_colstride(t);
}
/* BLUA_OK when blua_tensor_at addresses t correctly as rows x cols (always for 1-D and 2-D;
 * for N-d when the dimensions after the first collapse into one run of equal steps). */
int blua_tensor_check_matrix(const blua_tensor *t, blua_err *err);
/* A rows x cols 2-D view of t (t itself, retained, when t is 2-D); fails as check_matrix. */
blua_tensor *blua_tensor_as_matrix(blua_tensor *t, blua_err *err);
int blua_tensor_is_contiguous(const blua_tensor *t);
int blua_tensor_same_shape(const blua_tensor *a, const blua_tensor *b);
/* Writes "AxBxC" (or "N" for 1-D) into buf and returns buf. */
const char *blua_tensor_shape(const blua_tensor *t, char *buf, size_t len);
/* Offset (in floats, from blua_tensor_data) of the element with row-major linear index k. */
int64_t blua_tensor_offset_of(const blua_tensor *t, int64_t k);
/* Layout walk for kernels on any view: t is blua_tensor_runs(t) runs of size[dim-1] elements
 * spaced stride[dim-1] apart; run r (row-major order) starts at blua_tensor_run_offset(t, r). */
int64_t blua_tensor_runs(const blua_tensor *t);
int64_t blua_tensor_run_offset(const blua_tensor *t, int64_t r);

/* Views sharing storage. Dimensions are 0-based here. */
blua_tensor *blua_tensor_narrow(blua_tensor *t, int dim, int64_t first, int64_t len, blua_err *err);
/* 1-D or 2-D: swaps the two dimensions (a 1-D tensor comes back as a view of itself). */
blua_tensor *blua_tensor_transpose(blua_tensor *t, blua_err *err);
/* Any dim: swaps dimensions d1 and d2. */
blua_tensor *blua_tensor_transpose_dims(blua_tensor *t, int d1, int d2, blua_err *err);
/* Dimension i of the view is dimension order[i] of t; order (t->dim entries) must name every
 * dimension once. */
blua_tensor *blua_tensor_permute(blua_tensor *t, const int *order, blua_err *err);
/* A rows x cols (dim 2) or rows (dim 1) view of a contiguous tensor with the same count. */
blua_tensor *blua_tensor_view(blua_tensor *t, int dim, int64_t rows, int64_t cols, blua_err *err);
blua_tensor *blua_tensor_view_nd(blua_tensor *t, int dim, const int64_t *size, blua_err *err);
/* The slice at index i of dimension d, one dimension fewer (t must have at least 2). */
blua_tensor *blua_tensor_select(blua_tensor *t, int d, int64_t i, blua_err *err);
/* Removes dimension d when its size is 1 (d < 0: every size-1 dimension, keeping at least one). */
blua_tensor *blua_tensor_squeeze(blua_tensor *t, int d, blua_err *err);
/* Inserts a dimension of size 1 before dimension d (0 <= d <= dim). */
blua_tensor *blua_tensor_unsqueeze(blua_tensor *t, int d, blua_err *err);

/* Torch7's expand: a view of t with size[0..dim) (dim >= t->dim; the first dim - t->dim are new
 * leading dimensions), each dimension of t of size 1 repeated by a step of 0, the others kept
 * (their size must be given unchanged). Its entries overlap: see blua_tensor_overlapping. */
blua_tensor *blua_tensor_expand(blua_tensor *t, int dim, const int64_t *size, blua_err *err);
/* 1 when two positions of t are the same float (a dimension of size > 1 steps 0, as in an
 * expanded view). Such a tensor may be read but never written: a write would store one float
 * many times, racing in the parallel loops; the binding refuses it as a destination. */
int blua_tensor_overlapping(const blua_tensor *t);

/* Copies. */
blua_tensor *blua_tensor_clone(const blua_tensor *t, blua_err *err);
/* t itself (retained) when contiguous, else a contiguous clone. */
blua_tensor *blua_tensor_contiguous(blua_tensor *t, blua_err *err);
/* Same shape, or the same element count (then in row-major order). */
int blua_tensor_copy(blua_tensor *dst, const blua_tensor *src, blua_err *err);
void blua_tensor_fill(blua_tensor *t, float v);
/* Rows idx[0..n) of src (0-based) into the rows of dst (n x cols); both as matrices. */
int blua_tensor_gather_rows(blua_tensor *dst, const blua_tensor *src, const int64_t *idx, int64_t n, blua_err *err);

/* A tensor a kernel writes, named for messages as what[index] (index 0: no index), for
 * blua_tensors_apart. */
typedef struct {
  const blua_tensor *t;
  const char *what;
  int index;
} blua_named_tensor;

/* BLUA_OK when no two of the n tensors share memory (NULL entries are skipped), else an error
 * naming the first such pair: a kernel whose outputs or scratch overlap would compute wrong
 * numbers. */
int blua_tensors_apart(int n, const blua_named_tensor *t, blua_err *err);
/* Whether b addresses exactly a's entries in a's order (b is a, or a view equal to it). */
int blua_tensor_same_view(const blua_tensor *a, const blua_tensor *b);
/* src itself when a loop writing dst entry by entry cannot disturb it (other memory, or dst's
 * own entries in dst's order), else a private copy of it in *copy (NULL on failure, with err
 * set); the caller releases *copy. In-place kernels read their sources through it, so that
 * t:add(t:t()) adds t's transpose as it was, not a half-updated one. */
const blua_tensor *blua_tensor_apart_from(const blua_tensor *dst, const blua_tensor *src, blua_tensor **copy,
                                          blua_err *err);

/* The same for a batch step of L layers (L <= 64): the inputs x, y and the scratch lists A
 * and B (one tensor per layer, named a and b in messages) and X (one per hidden layer). */
int blua_batch_scratch_apart(int L, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *A, const char *a,
                             blua_tensor *const *B, const char *b, blua_tensor *const *X, blua_err *err);

/* The same for up to BLUA_GATHER_MAX pairs dst[k], src[k] and one list of rows, checked first
 * (BLUA_ERROR on bad input, nothing gathered). Inside an active thread team (blua/team.h), when
 * the rows are contiguous and there are over BLUA_OMP_THRESHOLD entries in all, the copies go
 * to its waiting threads while the caller goes on, and 1 is returned:
 * blua_team_join (or the team's next batch of tasks) waits for them. The tensors are held until
 * then. Otherwise the rows are gathered at once and 0 is returned. */
enum { BLUA_GATHER_MAX = 8 };
int blua_tensor_gather_rows_post(int count, blua_tensor *const *dst, const blua_tensor *const *src,
                                 const int64_t *idx, int64_t n, blua_err *err);
/* Slices idx[0..n) (0-based) of dimension d of src, a new tensor with size n along d. */
blua_tensor *blua_tensor_index(const blua_tensor *src, int d, const int64_t *idx, int64_t n, blua_err *err);
/* ts[0..n) joined along dimension d (their other sizes must agree). */
blua_tensor *blua_tensor_cat(blua_tensor *const *ts, int n, int d, blua_err *err);

/* Elementwise arithmetic; r may alias a or b, shapes must match (no broadcasting). */
int blua_tensor_add(blua_tensor *r, const blua_tensor *a, float alpha, const blua_tensor *b, blua_err *err); /* r = a + alpha b */
/* dst[i] += src[i] for i < n, each pair of one shape, as blua_tensor_add(dst[i], dst[i], 1,
 * src[i]) would (the same bits): the contiguous pairs as one run of entries, handed to the
 * threads at once. For the sums of the row shares' gradients. */
int blua_tensors_accumulate(int n, blua_tensor *const *dst, const blua_tensor *const *src, blua_err *err);
int blua_tensor_cmul(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err);
int blua_tensor_cdiv(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err);
int blua_tensor_cmax(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err);
int blua_tensor_cmin(blua_tensor *r, const blua_tensor *a, const blua_tensor *b, blua_err *err);
int blua_tensor_affine(blua_tensor *r, const blua_tensor *a, float scale, float shift, blua_err *err); /* r = scale a + shift */
/* r[i, :] = a[i, :] + alpha * v for a 1 x cols (or cols-element 1-D) v; a as a matrix. */
int blua_tensor_add_rowvec(blua_tensor *r, const blua_tensor *a, float alpha, const blua_tensor *v, blua_err *err);

/* Matrix product c = beta c + alpha op(a) op(b) through cblas_sgemm; any of a, b may be a
 * transposed view or a narrowed view; c must not overlap a or b. */
int blua_mm(blua_tensor *c, float beta, float alpha, const blua_tensor *a, const blua_tensor *b, blua_err *err);
/* blua_mm runs products under BLUA_MM_SERIAL_FLOPS on one BLAS thread. Kernels that call
 * cblas_sgemm themselves wrap the call in these to stay bit for bit alike: begin returns the
 * thread count to restore (0: nothing changed), end restores it. */
int blua_mm_serial_begin(int64_t m, int64_t n, int64_t k);
void blua_mm_serial_end(int saved);

/* Reductions over all elements, accumulated in double. */
double blua_tensor_sum(const blua_tensor *t);
double blua_tensor_abs_sum(const blua_tensor *t); /* Σ|t|: the bits of a copy's abs then sum */
double blua_tensor_max(const blua_tensor *t);     /* -inf for no elements */
double blua_tensor_min(const blua_tensor *t);
double blua_tensor_norm(const blua_tensor *t);    /* Frobenius */
double blua_tensor_dot(const blua_tensor *a, const blua_tensor *b); /* shapes must match */
/* Reductions along dimension d into out, which has t's shape with size 1 at d. mean divides
 * by the size of d. For max/min, idx (same shape as out, may be NULL) gets 1-based positions;
 * NaN wins, as in the whole-tensor max. */
int blua_tensor_sum_dim(blua_tensor *out, const blua_tensor *t, int d, int mean, blua_err *err);
/* Unbiased variance (divides by n - 1: one element gives NaN, as in Torch), its square root,
 * the biased ones (divide by n, Torch's flag = true), or the product; two passes in double.
 * Whole tensor, or along d into out as sum_dim. */
typedef enum { BLUA_STAT_VAR, BLUA_STAT_STD, BLUA_STAT_VAR_BIASED, BLUA_STAT_STD_BIASED, BLUA_STAT_PROD } blua_stat;
double blua_tensor_stat(const blua_tensor *t, blua_stat kind);
int blua_tensor_stat_dim(blua_tensor *out, const blua_tensor *t, int d, blua_stat kind, blua_err *err);
/* t's header with dimension d swapped with the last, sharing t's data: each run of it
 * (blua_tensor_runs) is one line of t along d, and run r of a reduced tensor swapped the same
 * way holds that line's result. */
blua_tensor blua_tensor_lines_along(const blua_tensor *t, int d);
/* out (t's shape, not sharing memory with t) = running sums or products of t along d,
 * accumulated in double. */
int blua_tensor_cumsum(blua_tensor *out, const blua_tensor *t, int d, blua_err *err);
int blua_tensor_cumprod(blua_tensor *out, const blua_tensor *t, int d, blua_err *err);
/* Sorts each line of t along d (stable, ascending or descending, NaN after every number) and
 * writes its first vals->size[d] entries (at most t's) to vals, their 1-based positions to idx;
 * vals and idx have t's shape elsewhere. */
int blua_tensor_sort(blua_tensor *vals, blua_tensor *idx, const blua_tensor *t, int d, int descending, blua_err *err);
int blua_tensor_extreme_dim(blua_tensor *out, blua_tensor *idx, const blua_tensor *t, int d, int want_max,
                            blua_err *err);
/* 0-based index of the largest entry of each row (out has rows entries); t as a matrix. */
void blua_tensor_argmax_rows(const blua_tensor *t, int64_t *out);
/* 0-based index of the largest entry of each column (out has cols entries). */
void blua_tensor_argmax_cols(const blua_tensor *t, int64_t *out);
/* out (1 x cols, or cols 1-D) = beta out + alpha * column sums of t (as a matrix). */
int blua_tensor_sum_rows(blua_tensor *out, float beta, float alpha, const blua_tensor *t, blua_err *err);
/* 1 when every entry is finite. */
int blua_tensor_all_finite(const blua_tensor *t);

/* Random fills from the process-wide seeded generator (blua/random.h), in row-major order. */
void blua_tensor_uniform(blua_tensor *t, double lo, double hi);
void blua_tensor_normal(blua_tensor *t, double mean, double std);
/* 1 with probability p (a uniform draw below p), else 0; one draw per entry. */
void blua_tensor_bernoulli(blua_tensor *t, double p);

/* Elementwise loops go parallel above this many elements. */
#define BLUA_OMP_THRESHOLD 32768
/* Inside a training epoch's thread team (blua/team.h) a hand-off costs microseconds, not an
 * OpenMP wake-up: the optimiser, the gradient sums and the row gathers split from this many
 * elements per thread. */
#define BLUA_TEAM_GRAIN 8192
/* Matrix products below this many flops run on one BLAS thread (see runtime/blas.c). */
#define BLUA_MM_SERIAL_FLOPS 3.2e7

#endif
