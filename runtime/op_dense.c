/* The dense operator: Y = X W + 1 bᵀ with W n_in x n_out, the MLP's affine layer. Each product
 * is the one cblas_sgemm call that blua_mm makes for the same operands (blua/lifted.h's
 * kernels go through blua_mm), so a network moved onto operators trains bit for bit alike. */
#include <cblas.h>

#include "op_impl.h"
#include "par.h"

/* How blua_mm hands a rows x cols matrix with strides (rs, cs) to BLAS (runtime/blas.c). */
static void operand(int64_t r, int64_t c, int64_t rs, int64_t cs, CBLAS_TRANSPOSE *trans, int *ld) {
  if ((cs == 1 || c <= 1) && (rs >= (c > 1 ? c : 1) || r <= 1)) {
    *trans = CblasNoTrans;
    *ld = (int)(r <= 1 ? (c > 1 ? c : 1) : rs);
  } else {
    *trans = CblasTrans;
    *ld = (int)(c <= 1 ? (r > 1 ? r : 1) : cs);
  }
}

/* c (m x n, row stride ldc) = beta c + alpha a b, with a and b given as strided matrices. */
static void gemm(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t ars, int64_t acs,
                 const float *b, int64_t brs, int64_t bcs, float beta, float *c, int64_t ldc) {
  CBLAS_TRANSPOSE ta, tb;
  int lda, ldb;
  operand(m, k, ars, acs, &ta, &lda);
  operand(k, n, brs, bcs, &tb, &ldb);
  int saved = blua_mm_serial_begin(m, n, k);
  cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, alpha, a, lda, b, ldb, beta, c, (int)ldc);
  blua_mm_serial_end(saved);
}

static int dense_forward(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, float *y,
                         int64_t ldy, blua_err *err) {
  (void)err;
  int64_t nin = op->in.c, nout = op->out.c;
  const float *W = params[0], *b = params[1];
  if (b) {
    /* y = 1 bᵀ, then y += x W in the same GEMM (beta = 1), as blua_lifted_affine does. */
    BLUA_PAR(n * nout > BLUA_OMP_THRESHOLD, "omp parallel for",
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < nout; j++) y[i * ldy + j] = b[j]);
  }
  gemm(n, nout, nin, 1.0f, x, ldx, 1, W, nout, 1, b ? 1.0f : 0.0f, y, ldy);
  return BLUA_OK;
}

static int dense_adjoint(blua_op *op, const float *const *params, int64_t n, const float *r, int64_t ldr, float *g,
                         int64_t ldg, float alpha, float beta, blua_err *err) {
  (void)err;
  int64_t nin = op->in.c, nout = op->out.c;
  /* g = alpha r Wᵀ + beta g: Wᵀ is W read with swapped strides. */
  gemm(n, nin, nout, alpha, r, ldr, 1, params[0], 1, nout, beta, g, ldg);
  return BLUA_OK;
}

static int dense_wgrad(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, const float *r,
                       int64_t ldr, float *const *grads, float alpha, float beta, blua_err *err) {
  (void)params;
  int64_t nin = op->in.c, nout = op->out.c;
  /* dW = alpha xᵀ r + beta dW, db = alpha 1ᵀ r + beta db. */
  if (grads[0]) gemm(nin, nout, n, alpha, x, 1, ldx, r, ldr, 1, beta, grads[0], nout);
  if (grads[1] && blua_op_colsum(op, n, nout, r, ldr, grads[1], alpha, beta, err)) return BLUA_ERROR;
  return BLUA_OK;
}

static const blua_op_vtable dense_vt = {dense_forward, dense_adjoint, dense_wgrad, NULL};

blua_op *blua_op_dense(int64_t n_in, int64_t n_out, blua_err *err) {
  if (blua_op_check_shape("dense", "input", (blua_shape){n_in, 1, 1}, err) ||
      blua_op_check_shape("dense", "output", (blua_shape){n_out, 1, 1}, err))
    return NULL;
  int64_t size;
  if (blua_op_mul(n_in, n_out, &size)) {
    blua_fail(err, "too large: dense %lld -> %lld has too many weights", (long long)n_in, (long long)n_out);
    return NULL;
  }
  blua_op *op = blua_op_alloc(&dense_vt, "dense", (blua_shape){n_in, 1, 1}, (blua_shape){n_out, 1, 1}, 2, err);
  if (!op) return NULL;
  op->pshape[0][0] = n_in;
  op->pshape[0][1] = n_out;
  op->pshape[1][0] = 1;
  op->pshape[1][1] = n_out;
  op->pbias[1] = 1;
  return op;
}
