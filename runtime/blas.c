/* Matrix products through cblas_sgemm. Views are passed to BLAS as they are whenever their
 * strides describe a row-major matrix or its transpose; only other layouts are copied. */
#include <cblas.h>
#include <omp.h>

#include "blua/tensor.h"
#include "blua/threads.h"

typedef struct {
  CBLAS_TRANSPOSE trans;
  int ld;
  const float *data;
  blua_tensor *copy; /* owned when the operand had to be made contiguous */
} gemm_operand;

static int as_operand(const blua_tensor *t, gemm_operand *op, blua_err *err) {
  int64_t r = t->size[0], c = t->size[1], rs = t->stride[0], cs = t->stride[1];
  op->copy = NULL;
  /* BLAS takes int leading dimensions: a wider step goes through the copy below. */
  int narrow_steps = rs <= INT32_MAX && cs <= INT32_MAX;
  if (narrow_steps && (cs == 1 || c <= 1) && (rs >= (c > 1 ? c : 1) || r <= 1)) {
    op->trans = CblasNoTrans;
    op->ld = (int)(r <= 1 ? (c > 1 ? c : 1) : rs);
  } else if (narrow_steps && (rs == 1 || r <= 1) && (cs >= (r > 1 ? r : 1) || c <= 1)) {
    op->trans = CblasTrans;
    op->ld = (int)(c <= 1 ? (r > 1 ? r : 1) : cs);
  } else {
    op->copy = blua_tensor_clone(t, err);
    if (!op->copy) return BLUA_ERROR;
    op->trans = CblasNoTrans;
    op->ld = (int)(c > 1 ? c : 1);
    op->data = blua_tensor_data(op->copy);
    return BLUA_OK;
  }
  op->data = blua_tensor_data(t);
  return BLUA_OK;
}

static int overlaps(const blua_tensor *a, const blua_tensor *b) { return a->storage == b->storage; }

/* Small products run on one BLAS thread: with passive waiting, waking a second thread for a
 * few megaflops cost more than it saved (RESULTS.md, "Speed"). */
int blua_mm_serial_begin(int64_t m, int64_t n, int64_t k) {
  /* Inside a parallel region OpenBLAS runs on one thread anyway; its global count stays. */
  if (omp_in_parallel()) return 0;
  int threads = blua_get_num_threads();
  if (threads > 1 && 2.0 * (double)m * (double)n * (double)k < BLUA_MM_SERIAL_FLOPS) {
    openblas_set_num_threads(1);
    return threads;
  }
  return 0;
}

void blua_mm_serial_end(int saved) {
  if (saved) blua_set_num_threads(saved);
}

int blua_mm(blua_tensor *c, float beta, float alpha, const blua_tensor *a, const blua_tensor *b, blua_err *err) {
  char sa[48], sb[48], sc[48];
  if (a->dim != 2 || b->dim != 2 || c->dim != 2)
    return blua_fail(err, "2-D tensors expected: %s * %s -> %s", blua_tensor_shape(a, sa, sizeof sa),
                     blua_tensor_shape(b, sb, sizeof sb), blua_tensor_shape(c, sc, sizeof sc));
  int64_t m = a->size[0], k = a->size[1], n = b->size[1];
  if (b->size[0] != k)
    return blua_fail(err, "size mismatch: %s * %s", blua_tensor_shape(a, sa, sizeof sa),
                     blua_tensor_shape(b, sb, sizeof sb));
  if (c->size[0] != m || c->size[1] != n)
    return blua_fail(err, "size mismatch: %s * %s -> %s", blua_tensor_shape(a, sa, sizeof sa),
                     blua_tensor_shape(b, sb, sizeof sb), blua_tensor_shape(c, sc, sizeof sc));
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return blua_fail(err, "tensor too large for BLAS: %s * %s", blua_tensor_shape(a, sa, sizeof sa),
                     blua_tensor_shape(b, sb, sizeof sb));
  if (m == 0 || n == 0) return BLUA_OK;

  /* The result must be a plain row-major matrix that shares nothing with the inputs;
   * otherwise compute into a fresh tensor and copy back. */
  blua_tensor *out = c;
  int direct = blua_tensor_is_contiguous(c) && !overlaps(c, a) && !overlaps(c, b);
  if (!direct) {
    out = blua_tensor_clone(c, err);
    if (!out) return BLUA_ERROR;
  }
  gemm_operand oa, ob;
  if (as_operand(a, &oa, err) != BLUA_OK) {
    if (!direct) blua_tensor_release(out);
    return BLUA_ERROR;
  }
  if (as_operand(b, &ob, err) != BLUA_OK) {
    blua_tensor_release(oa.copy);
    if (!direct) blua_tensor_release(out);
    return BLUA_ERROR;
  }
  if (k == 0) { /* no products: beta·c, where beta 0 gives zeros whatever c held (as BLAS) */
    if (beta == 0.0f)
      blua_tensor_fill(out, 0.0f);
    else
      blua_tensor_affine(out, out, beta, 0.0f, err);
  } else {
    int saved = blua_mm_serial_begin(m, n, k);
    cblas_sgemm(CblasRowMajor, oa.trans, ob.trans, (int)m, (int)n, (int)k, alpha, oa.data, oa.ld, ob.data, ob.ld,
                beta, blua_tensor_data(out), (int)(n > 1 ? n : 1));
    blua_mm_serial_end(saved);
  }
  blua_tensor_release(oa.copy);
  blua_tensor_release(ob.copy);
  int status = BLUA_OK;
  if (!direct) {
    status = blua_tensor_copy(c, out, err);
    blua_tensor_release(out);
  }
  return status;
}
