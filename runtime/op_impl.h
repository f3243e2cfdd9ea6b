/* Inside of the operators (blua/op.h): the operator record, its table of kernels and the
 * helpers the op_*.c files share. The kernels work on raw row-major blocks: n samples, row i
 * of x at x + i * ldx; the public functions in op.c check shapes and hand them raw pointers. */
#ifndef BLUA_OP_IMPL_H
#define BLUA_OP_IMPL_H

#include <stddef.h>

#include "blua/op.h"

typedef struct blua_op_vtable {
  /* y = A(x) + b (no bias when its pointer is NULL). */
  int (*forward)(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, float *y,
                 int64_t ldy, blua_err *err);
  /* g = alpha A*(r) + beta g; beta == 0 ignores g's contents. */
  int (*adjoint)(blua_op *op, const float *const *params, int64_t n, const float *r, int64_t ldr, float *g,
                 int64_t ldg, float alpha, float beta, blua_err *err);
  /* grads[i] = alpha ∂⟨r, A(x)⟩/∂θ_i + beta grads[i] for non-NULL grads[i]; NULL for no params. */
  int (*wgrad)(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, const float *r,
               int64_t ldr, float *const *grads, float alpha, float beta, blua_err *err);
  void (*destroy)(blua_op *op); /* frees the kind's own data; NULL when there is none */
} blua_op_vtable;

struct blua_op {
  const blua_op_vtable *vt;
  const char *kind;
  blua_shape in, out;
  int identity;          /* reshape: the output rows are the input rows */
  int nparams;
  int64_t (*pshape)[2];  /* rows, cols of each parameter */
  unsigned char *pbias;  /* 1 for a bias */
  const float **raw;     /* nparams pointers, scratch of the public calls */
  float **graw;          /* the same for gradients */
  /* conv2d and avgpool2d geometry */
  int64_t kh, kw, stride, padding;
  /* chain */
  blua_op **members;
  int nmembers;
  int *poffset;          /* first parameter of each member */
  /* workspaces, grown on demand and kept */
  float *ws;
  size_t ws_cap;         /* floats */
  double *wsd;
  size_t wsd_cap;        /* doubles */
  int refcount;
};

/* A zeroed operator record with nparams parameter slots, or NULL. */
blua_op *blua_op_alloc(const blua_op_vtable *vt, const char *kind, blua_shape in, blua_shape out, int nparams,
                       blua_err *err);
/* The operator's float (double) workspace, at least n entries, or NULL with err. */
float *blua_op_ws(blua_op *op, size_t n, blua_err *err);
double *blua_op_wsd(blua_op *op, size_t n, blua_err *err);
/* Each size of s between 1 and a total below 2^31, or an error naming kind and role. */
int blua_op_check_shape(const char *kind, const char *role, blua_shape s, blua_err *err);
/* *r = a * b, failing when the product exceeds BLUA_MAX_ELEMENTS. */
int blua_op_mul(int64_t a, int64_t b, int64_t *r);

/* Column sums of an n x cols block into out: out[j] = beta out[j] + alpha Σ_i x[i][j], summed in
 * double in row order, as blua_tensor_sum_rows does (so dense biases match it bit for bit). */
int blua_op_colsum(blua_op *op, int64_t n, int64_t cols, const float *x, int64_t ldx, float *out, float alpha,
                   float beta, blua_err *err);

/* Per-sample loops that are store- or shuffle-bound (im2col, col2im, pooling) are compiled for
 * AVX-512 and AVX2 as well as the baseline; the CPU picks one when the program starts. Such a
 * function must not contain an OpenMP parallel region. */
#if defined(__x86_64__) && (defined(__clang__) ? __clang_major__ >= 14 : defined(__GNUC__))
#define BLUA_OP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BLUA_OP_CLONES
#endif

/* Rows at or below this many floats of work stay serial in the OpenMP loops. */
#define BLUA_OP_PAR_MIN 32768

#endif
