/* The avgpool2d operator: each output pixel is the mean of a kh x kw window of its channel,
 * windows stride apart, no padding. Its adjoint spreads each residual entry evenly back over
 * its window. No parameters. Both run in OpenMP loops over samples. */
#include "op_impl.h"
#include "par.h"

/* One sample's pooling, a whole output row at a time, one window offset (a, b) after the
 * other: long inner loops over ox, and per output the same additions in the same order as
 * window by window. The common 2x2 windows at stride 2 have a loop of their own with the
 * stride a constant, which vectorises (de-interleaving shuffles) where a variable stride
 * does not. */
BLUA_OP_CLONES static void pool_sample(const blua_op *op, const float *restrict xi, float *restrict yi) {
  int64_t C = op->in.c, H = op->in.h, W = op->in.w, OH = op->out.h, OW = op->out.w;
  int64_t kh = op->kh, kw = op->kw, s = op->stride;
  float scale = 1.0f / (float)(kh * kw);
  for (int64_t c = 0; c < C; c++)
    for (int64_t oy = 0; oy < OH; oy++) {
      float *restrict out = yi + (c * OH + oy) * OW;
      const float *restrict top = xi + (c * H + oy * s) * W;
      if (kh == 2 && kw == 2 && s == 2) {
        const float *restrict bottom = top + W;
#pragma omp simd
        for (int64_t ox = 0; ox < OW; ox++)
          out[ox] = (((top[2 * ox] + top[2 * ox + 1]) + bottom[2 * ox]) + bottom[2 * ox + 1]) * scale;
        continue;
      }
      for (int64_t ox = 0; ox < OW; ox++) out[ox] = 0.0f;
      for (int64_t a = 0; a < kh; a++)
        for (int64_t b = 0; b < kw; b++) {
          const float *restrict src = top + a * W + b;
#pragma omp simd
          for (int64_t ox = 0; ox < OW; ox++) out[ox] += src[ox * s];
        }
#pragma omp simd
      for (int64_t ox = 0; ox < OW; ox++) out[ox] *= scale;
    }
}

static int pool_forward(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, float *y,
                        int64_t ldy, blua_err *err) {
  (void)params, (void)err;
  BLUA_PAR(n * blua_shape_size(op->in) > BLUA_OP_PAR_MIN, "omp parallel for",
  for (int64_t i = 0; i < n; i++) pool_sample(op, x + i * ldx, y + i * ldy));
  return BLUA_OK;
}

/* One sample's adjoint: g = beta g + (alpha / (kh kw)) times each residual entry spread over
 * its window. With windows that do not overlap (stride = kernel, the usual case) every pixel
 * inside a window receives exactly one term, so the 2x2 stride-2 case writes each pixel once
 * instead of clearing and adding. */
BLUA_OP_CLONES static void pool_sample_adjoint(const blua_op *op, const float *restrict ri, float *restrict gi,
                                               float alpha, float beta) {
  int64_t C = op->in.c, H = op->in.h, W = op->in.w, OH = op->out.h, OW = op->out.w;
  int64_t kh = op->kh, kw = op->kw, s = op->stride, nin = C * H * W;
  float scale = alpha / (float)(kh * kw);
  if (kh == 2 && kw == 2 && s == 2 && beta == 0.0f && H == 2 * OH && W == 2 * OW) {
    for (int64_t c = 0; c < C; c++)
      for (int64_t oy = 0; oy < OH; oy++) {
        const float *restrict src = ri + (c * OH + oy) * OW;
        float *restrict top = gi + (c * H + 2 * oy) * W, *restrict bottom = top + W;
#pragma omp simd
        for (int64_t ox = 0; ox < OW; ox++) {
          float v = src[ox] * scale;
          top[2 * ox] = v;
          top[2 * ox + 1] = v;
          bottom[2 * ox] = v;
          bottom[2 * ox + 1] = v;
        }
      }
    return;
  }
  if (beta == 0.0f)
    for (int64_t q = 0; q < nin; q++) gi[q] = 0.0f;
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

static int pool_adjoint(blua_op *op, const float *const *params, int64_t n, const float *r, int64_t ldr, float *g,
                        int64_t ldg, float alpha, float beta, blua_err *err) {
  (void)params, (void)err;
  BLUA_PAR(n * blua_shape_size(op->in) > BLUA_OP_PAR_MIN, "omp parallel for",
  for (int64_t i = 0; i < n; i++) pool_sample_adjoint(op, r + i * ldr, g + i * ldg, alpha, beta));
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
