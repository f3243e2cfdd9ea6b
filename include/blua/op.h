/* Linear operators for lifted training and back-propagation (docs/design.md, "Operators").
 *
 * A layer of a network is an operator A(x; θ) plus a bias, applied to a batch whose rows are
 * samples. Each sample is a flat row of C*H*W floats read as a (C, H, W) image in row-major
 * order (channel, then row, then column); the operator carries the per-sample input and output
 * shapes, tensors stay 2-D (rows x features). Lifted training needs from each operator:
 *
 *   forward   Y = A(X; W) + b                      (the pre-activation of a block)
 *   adjoint   G = alpha A*(R) + beta G             (the X-step's g = A*_{l+1} r_{l+1})
 *   wgrad     dθ = alpha ∂⟨R, A(X; θ)⟩/∂θ + beta dθ  (dW = Σ over samples, db = Σ of R per channel)
 *   norm      ‖A‖₂ by power iteration on A A*     (the X-step size μ ≤ 1/‖A_{l+1}‖²)
 *
 * Back-propagation needs the same three: forward, adjoint (the input gradient) and wgrad.
 *
 * Operators:
 *   dense    in n_in, out n_out; params W (n_in x n_out), b (1 x n_out): Y = X W + 1 bᵀ, the
 *            very BLAS calls of the MLP kernels (blua/lifted.h), so results are bit-identical.
 *   conv2d   in (C_in, H, W), out (C_out, OH, OW) with OH = (H + 2 padding - kh) / stride + 1;
 *            params W (C_out x C_in*kh*kw, each row one filter in (c, i, j) order) and
 *            b (1 x C_out). Cross-correlation, as in Torch. im2col + sgemm.
 *   avgpool2d in (C, H, W), out (C, OH, OW) with OH = (H - kh) / stride + 1; no params.
 *   reshape  same number of features, another (C, H, W) reading; free on row storage.
 *   chain    a composition of operators with no activation between them (one lifted block,
 *            e.g. avgpool -> conv2d); its params are its members' params in member order, and
 *            each member adds its own bias. wgrad recomputes the members' inputs from X (a
 *            forward through the members before the last parameterised one).
 *
 * params is an array of blua_op_nparams(op) tensors in the order of blua_op_param_shape:
 * for each parameterised member its W, then its b. A NULL bias means "no bias" in forward; a
 * NULL gradient is not computed. Parameters must be contiguous; X, R, Y, G may be any 2-D
 * tensors whose rows are contiguous (row views of a batch are fine) and must not overlap.
 *
 * Operators own their workspaces (im2col columns, intermediates), grown to the largest batch
 * seen and reused, so the hot paths allocate nothing after the first call. Hence one call at a
 * time per operator (blua_op_clone gives another thread its own); the calls use OpenMP loops
 * and BLAS (inside a parallel region BLAS runs on the calling thread), and called inside a
 * parallel region they run on the calling thread alone.
 * Operators are reference counted (a chain holds its members). No function aborts: errors
 * return NULL or BLUA_ERROR with a message naming the operator and the shapes. */
#ifndef BLUA_OP_H
#define BLUA_OP_H

#include <stdint.h>

#include "blua/tensor.h"

/* A per-sample shape; a flat vector of n features is (n, 1, 1). */
typedef struct blua_shape {
  int64_t c, h, w;
} blua_shape;

typedef struct blua_op blua_op;

/* Most parameters one operator (a chain) may have. */
#define BLUA_OP_MAX_PARAMS 256

typedef struct blua_conv2d_spec {
  int64_t c_in, h, w;   /* input image */
  int64_t c_out;
  int64_t kh, kw;       /* kernel */
  int64_t stride;       /* >= 1, both directions */
  int64_t padding;      /* >= 0 zeros on every side */
} blua_conv2d_spec;

/* Constructors return a new reference (release with blua_op_release), or NULL and err. */
blua_op *blua_op_dense(int64_t n_in, int64_t n_out, blua_err *err);
blua_op *blua_op_conv2d(const blua_conv2d_spec *spec, blua_err *err);
/* stride 0 means stride = kernel (non-overlapping windows). */
blua_op *blua_op_avgpool2d(blua_shape in, int64_t kh, int64_t kw, int64_t stride, blua_err *err);
blua_op *blua_op_reshape(blua_shape in, blua_shape out, blua_err *err);
/* Composition members[n-1] ∘ … ∘ members[0]: member i's output shape must equal member i+1's
 * input shape. The chain retains its members. */
blua_op *blua_op_chain(blua_op *const *members, int n, blua_err *err);

/* A new operator of the same kind and shapes (a chain: clones of its members) with workspaces
 * of its own, so two threads can run the same layer on different rows at once. */
blua_op *blua_op_clone(const blua_op *op, blua_err *err);

void blua_op_retain(blua_op *op);
void blua_op_release(blua_op *op); /* NULL is fine */

/* Description. */
const char *blua_op_kind(const blua_op *op); /* "dense", "conv2d", "avgpool2d", "reshape", "chain" */
blua_shape blua_op_in_shape(const blua_op *op);
blua_shape blua_op_out_shape(const blua_op *op);
static inline int64_t blua_shape_size(blua_shape s) { return s.c * s.h * s.w; }
int blua_op_nparams(const blua_op *op);
/* Rows and columns of parameter i (0-based). */
void blua_op_param_shape(const blua_op *op, int i, int64_t *rows, int64_t *cols);
/* 1 when parameter i is a bias (1 x channels), 0 for a weight matrix. */
int blua_op_param_is_bias(const blua_op *op, int i);
/* Number of members of a chain (1 for any other operator) and member i (not retained). */
int blua_op_nmembers(const blua_op *op);
const blua_op *blua_op_member(const blua_op *op, int i);
/* "conv2d 1x28x28 -> 8x28x28 (5x5, stride 1, padding 2)" into buf; returns buf. */
const char *blua_op_describe(const blua_op *op, char *buf, size_t len);

/* y = A(x; W) + b: x is rows x in-size, y rows x out-size. */
int blua_op_forward(blua_op *op, blua_tensor *const *params, const blua_tensor *x, blua_tensor *y, blua_err *err);
/* g = alpha A*(r) + beta g: r is rows x out-size, g rows x in-size (beta 0 ignores g's contents). */
int blua_op_adjoint(blua_op *op, blua_tensor *const *params, const blua_tensor *r, blua_tensor *g, float alpha,
                    float beta, blua_err *err);
/* grads[i] = alpha ∂⟨r, A(x; θ)⟩/∂θ_i + beta grads[i], for every non-NULL grads[i]. */
int blua_op_wgrad(blua_op *op, blua_tensor *const *params, const blua_tensor *x, const blua_tensor *r,
                  blua_tensor *const *grads, float alpha, float beta, blua_err *err);
/* ‖A‖₂ of the linear part (biases ignored) by `iters` steps of power iteration on A A*, into
 * *norm. start (NULL, or a tensor of out-size entries) is the starting vector when non-zero and
 * receives the final unit vector, so a caller tracking slowly changing weights needs only a few
 * steps; without it the start is fixed and the result deterministic. For dense this is
 * blua_spectral_norm(W, iters, start). NaN when the weights hold NaN or Inf. */
int blua_op_norm(blua_op *op, blua_tensor *const *params, int iters, blua_tensor *start, double *norm,
                 blua_err *err);

#endif
