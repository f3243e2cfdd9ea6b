/* The avgpool2d operator: each output pixel is the mean of a kh x kw window of its channel,
 * windows stride apart, no padding. Its adjoint spreads each residual entry evenly back over
 * its window. No parameters. Both run in OpenMP loops over samples. */
#include <string.h>

#include "op_impl.h"

static int pool_forward(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, float *y,
                        int64_t ldy, blua_err *err) {
  (void)params, (void)err;
  int64_t C = op->in.c, H = op->in.h, W = op->in.w, OH = op->out.h, OW = op->out.w;
  int64_t kh = op->kh, kw = op->kw, s = op->stride;
  float scale = 1.0f / (float)(kh * kw);
#pragma omp parallel for if (n * C * H * W > BLUA_OP_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float *xi = x + i * ldx;
    float *yi = y + i * ldy;
    /* A whole output row at a time, one window offset (a, b) after the other: long inner loops
     * over ox, and the same additions in the same order as window by window. */
    for (int64_t c = 0; c < C; c++)
      for (int64_t oy = 0; oy < OH; oy++) {
        float *restrict out = yi + (c * OH + oy) * OW;
        for (int64_t ox = 0; ox < OW; ox++) out[ox] = 0.0f;
        for (int64_t a = 0; a < kh; a++)
          for (int64_t b = 0; b < kw; b++) {
            const float *restrict src = xi + (c * H + oy * s + a) * W + b;
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++) out[ox] += src[ox * s];
          }
#pragma omp simd
        for (int64_t ox = 0; ox < OW; ox++) out[ox] *= scale;
      }
  }
  return BLUA_OK;
}

static int pool_adjoint(blua_op *op, const float *const *params, int64_t n, const float *r, int64_t ldr, float *g,
                        int64_t ldg, float alpha, float beta, blua_err *err) {
  (void)params, (void)err;
  int64_t C = op->in.c, H = op->in.h, W = op->in.w, OH = op->out.h, OW = op->out.w;
  int64_t kh = op->kh, kw = op->kw, s = op->stride, nin = C * H * W;
  float scale = alpha / (float)(kh * kw);
#pragma omp parallel for if (n * nin > BLUA_OP_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float *ri = r + i * ldr;
    float *gi = g + i * ldg;
    if (beta == 0.0f)
      memset(gi, 0, (size_t)nin * sizeof *gi);
    else if (beta != 1.0f)
      for (int64_t q = 0; q < nin; q++) gi[q] *= beta;
    for (int64_t c = 0; c < C; c++)
      for (int64_t oy = 0; oy < OH; oy++) {
        const float *restrict src = ri + (c * OH + oy) * OW;
        for (int64_t a = 0; a < kh; a++)
          for (int64_t b = 0; b < kw; b++) {
            /* Distinct ox hit distinct pixels for one offset (a, b), so this loop is free of
             * conflicts even when windows overlap. */
            float *restrict dst = gi + (c * H + oy * s + a) * W + b;
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++) dst[ox * s] += src[ox] * scale;
          }
      }
  }
  return BLUA_OK;
}

static const blua_op_vtable pool_vt = {pool_forward, pool_adjoint, NULL, NULL};

blua_op *blua_op_avgpool2d(blua_shape in, int64_t kh, int64_t kw, int64_t stride, blua_err *err) {
  if (blua_op_check_shape("avgpool2d", "input", in, err)) return NULL;
  if (kh < 1 || kw < 1) {
    blua_fail(err, "bad kernel: avgpool2d kernel %lldx%lld (each at least 1)", (long long)kh, (long long)kw);
    return NULL;
  }
  if (stride < 0 || stride > INT32_MAX) {
    blua_fail(err, "bad stride: avgpool2d stride must be a positive integer, got %lld", (long long)stride);
    return NULL;
  }
  if (stride == 0) stride = kh;
  if (kh > in.h || kw > in.w) {
    blua_fail(err, "kernel larger than input: avgpool2d kernel %lldx%lld, input %lldx%lldx%lld", (long long)kh,
              (long long)kw, (long long)in.c, (long long)in.h, (long long)in.w);
    return NULL;
  }
  blua_shape out = {in.c, (in.h - kh) / stride + 1, (in.w - kw) / stride + 1};
  blua_op *op = blua_op_alloc(&pool_vt, "avgpool2d", in, out, 0, err);
  if (!op) return NULL;
  op->kh = kh;
  op->kw = kw;
  op->stride = stride;
  return op;
}
