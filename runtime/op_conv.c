/* The conv2d operator by im2col and sgemm.
 *
 * Per sample, im2col lays the input patches out as a K x P matrix (K = C_in kh kw, P = OH OW),
 * so the convolution is W (C_out x K) times it. A chunk of samples is laid side by side into one
 * K x (m P) matrix, which gives BLAS one wide product instead of m thin ones:
 *   forward   T = W col,               then T's columns go to each sample's row (+ bias)
 *   adjoint   col = Wᵀ T (T gathered from the residual rows), then col2im into each sample
 *   wgrad     dW = T colᵀ summed over chunks, db = Σ of the residual per channel
 * Forward and adjoint hand whole chunks to the threads (each its own slice of the workspace,
 * BLAS on the calling thread); the weight gradient, whose chunks add into one result in order,
 * runs im2col and the gathers in OpenMP loops over a chunk's samples and BLAS after them. The
 * columns live in the operator's workspace, reused from call to call. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "blua/threads.h"
#include "op_impl.h"

/* Floats of workspace one chunk aims at: the columns plus the product, about 512 KB (at
 * least 4 samples), so what im2col writes the GEMM reads from the core's own L2 cache. With
 * 4 MB chunks (in the shared L3) a back-prop epoch of the reference CNN took about 10 % more
 * time on one thread; a second thread now runs a part of the batch of its own
 * (runtime/backprop_ops.c) rather than half of each chunk. */
#define CONV_CHUNK_FLOATS ((int64_t)1 << 17)

typedef struct {
  int64_t C, H, W, Co, OH, OW, kh, kw, s, p, P, K;
} geom;

static geom geometry(const blua_op *op) {
  geom g = {op->in.c, op->in.h, op->in.w, op->out.c, op->out.h, op->out.w, op->kh, op->kw, op->stride, op->padding,
            op->out.h * op->out.w, op->in.c * op->kh * op->kw};
  return g;
}

/* The outputs o (of n) whose input o s - p + t lies inside [0, size): [*lo, *hi). t is the
 * kernel tap (row i or column j). */
static void valid_range(int64_t size, int64_t n, int64_t s, int64_t p, int64_t t, int64_t *lo, int64_t *hi) {
  int64_t first = p - t; /* the smallest o s with o s - p + t >= 0 */
  *lo = first > 0 ? (first + s - 1) / s : 0;
  int64_t last = size - 1 + p - t; /* the largest o s with o s - p + t <= size - 1 */
  *hi = last >= 0 ? last / s + 1 : 0;
  if (*hi > n) *hi = n;
  if (*lo > *hi) *lo = *hi;
}

static void zero(float *restrict p, int64_t n) {
#pragma omp simd
  for (int64_t k = 0; k < n; k++) p[k] = 0.0f;
}

/* Stride 1 with output rows as long as input rows (the "same" padding 2p = kw - 1, and 1x1
 * kernels without padding): the window of tap (i, j) is then one contiguous run of the input
 * shifted by (i - p) W + (j - p), so each tap is one long copy (add) instead of OH short ones.
 * The run also passes over pixels that wrap from one row into the next; a mask per kernel
 * column j (1 where output column ox reads inside the image, over all P outputs) selects them
 * out in the same pass. */
static int same_rows(const geom *g) { return g->s == 1 && g->OW == g->W; }

/* The kw masks (kw x P floats) of the same-rows layout. */
static void make_masks(const geom *g, float *mask) {
  for (int64_t j = 0; j < g->kw; j++) {
    int64_t lo, hi;
    valid_range(g->W, g->OW, 1, g->p, j, &lo, &hi);
    for (int64_t q = 0; q < g->P; q++) {
      int64_t ox = q % g->OW;
      mask[j * g->P + q] = ox >= lo && ox < hi ? 1.0f : 0.0f;
    }
  }
}

/* One tap row of the columns: row[oy OW + ox] = x[(oy s - p + i) W + ox s - p + j], zero where
 * that pixel lies in the padding. x is the tap's channel plane; m its column mask (same-rows
 * layout only). */
__attribute__((always_inline)) static inline void tap_im2col(const geom *g, const float *restrict x, const float *restrict m, int64_t i, int64_t j,
                              float *restrict row) {
  int64_t ylo, yhi, lo, hi;
  valid_range(g->H, g->OH, g->s, g->p, i, &ylo, &yhi);
  valid_range(g->W, g->OW, g->s, g->p, j, &lo, &hi);
  if (yhi <= ylo || hi <= lo) {
    zero(row, g->P);
    return;
  }
  if (m) {
    int64_t q0 = ylo * g->OW + lo, q1 = (yhi - 1) * g->OW + hi;
    const float *restrict src = x + (ylo - g->p + i) * g->W + (lo - g->p + j);
    zero(row, q0);
#pragma omp simd
    for (int64_t k = 0; k < q1 - q0; k++) row[q0 + k] = m[q0 + k] != 0.0f ? src[k] : 0.0f;
    zero(row + q1, g->P - q1);
    return;
  }
  zero(row, ylo * g->OW);
  for (int64_t oy = ylo; oy < yhi; oy++) {
    float *restrict dst = row + oy * g->OW;
    const float *restrict src = x + (oy * g->s - g->p + i) * g->W + (lo * g->s - g->p + j);
    zero(dst, lo);
    if (g->s == 1) {
#pragma omp simd
      for (int64_t k = 0; k < hi - lo; k++) dst[lo + k] = src[k];
    } else {
      for (int64_t k = 0; k < hi - lo; k++) dst[lo + k] = src[k * g->s];
    }
    zero(dst + hi, g->OW - hi);
  }
  zero(row + yhi * g->OW, (g->OH - yhi) * g->OW);
}

/* The adjoint of tap_im2col: every entry of the tap row added back to the pixel it came from. */
__attribute__((always_inline)) static inline void tap_col2im(const geom *g, const float *restrict row, const float *restrict m, int64_t i,
                              int64_t j, float *restrict x) {
  int64_t ylo, yhi, lo, hi;
  valid_range(g->H, g->OH, g->s, g->p, i, &ylo, &yhi);
  valid_range(g->W, g->OW, g->s, g->p, j, &lo, &hi);
  if (yhi <= ylo || hi <= lo) return;
  if (m) {
    int64_t q0 = ylo * g->OW + lo, q1 = (yhi - 1) * g->OW + hi;
    float *restrict dst = x + (ylo - g->p + i) * g->W + (lo - g->p + j);
#pragma omp simd
    for (int64_t k = 0; k < q1 - q0; k++) dst[k] = m[q0 + k] != 0.0f ? dst[k] + row[q0 + k] : dst[k];
    return;
  }
  for (int64_t oy = ylo; oy < yhi; oy++) {
    const float *restrict src = row + oy * g->OW + lo;
    float *restrict dst = x + (oy * g->s - g->p + i) * g->W + (lo * g->s - g->p + j);
    if (g->s == 1) {
#pragma omp simd
      for (int64_t k = 0; k < hi - lo; k++) dst[k] += src[k];
    } else {
      for (int64_t k = 0; k < hi - lo; k++) dst[k * g->s] += src[k];
    }
  }
}

/* One sample's patches into col (K rows of P, row stride ldc); mask: make_masks' or NULL. The
 * loops are short and store-bound, so they are compiled for AVX-512 and AVX2 as well as the
 * baseline and the CPU picks when the program starts. */
BLUA_OP_CLONES static void im2col(const geom *g, const float *mask, const float *restrict x, float *restrict col,
                                  int64_t ldc) {
  for (int64_t c = 0; c < g->C; c++)
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = 0; j < g->kw; j++)
        tap_im2col(g, x + c * g->H * g->W, mask ? mask + j * g->P : NULL, i, j, col + ((c * g->kh + i) * g->kw + j) * ldc);
}

/* The adjoint of im2col into one sample's input gradient x. */
BLUA_OP_CLONES static void col2im(const geom *g, const float *mask, const float *restrict col, int64_t ldc,
                                  float *restrict x) {
  for (int64_t c = 0; c < g->C; c++)
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = 0; j < g->kw; j++)
        tap_col2im(g, col + ((c * g->kh + i) * g->kw + j) * ldc, mask ? mask + j * g->P : NULL, i, j, x + c * g->H * g->W);
}

/* Samples per chunk for n samples, and the workspace (columns, then the product) it needs. */
static int64_t chunk_samples(const geom *g, int64_t n) {
  int64_t per = (g->K + g->Co) * g->P;
  int64_t nb = CONV_CHUNK_FLOATS / (per > 0 ? per : 1);
  /* Whole rounds of samples for 1, 2 or 4 threads of the OpenMP loops. The chunks fix the
   * order of the weight gradient's sums, so they must not depend on the thread count. */
  nb = nb < 4 ? 4 : nb / 4 * 4;
  if (nb > n) nb = n;
  while (nb > 1 && nb * g->P > INT32_MAX) nb /= 2;
  return nb;
}

/* The workspace of `slots` chunks of nb samples: per slot the columns (K x nb P) and the
 * product (C_out x nb P); then `extra` floats; for the same-rows layout, the masks last. */
typedef struct {
  float *col, *T, *extra, *mask;
  int64_t slot; /* floats from one slot to the next */
} conv_space;

static int conv_ws(blua_op *op, const geom *g, int64_t nb, int slots, int64_t extra, conv_space *ws,
                   blua_err *err) {
  int64_t cols, slot, size, masks = same_rows(g) ? g->kw * g->P : 0;
  if (blua_op_mul(nb, g->P, &cols) || blua_op_mul(g->K + g->Co, cols, &slot) || cols > INT32_MAX ||
      blua_op_mul(slot, slots, &size) || blua_op_mul(size + extra + masks, 1, &size)) {
    char so[160];
    return blua_fail(err, "too large: %s needs more than 2^34 floats of columns", blua_op_describe(op, so, sizeof so));
  }
  float *p = blua_op_ws(op, (size_t)size, err);
  if (!p) return BLUA_ERROR;
  ws->col = p;
  ws->T = p + g->K * cols;
  ws->slot = slot;
  ws->extra = p + slot * slots;
  ws->mask = masks ? p + size - masks : NULL;
  if (ws->mask) make_masks(g, ws->mask);
  return BLUA_OK;
}

/* Threads for a loop over `chunks` independent chunks: the team outside a parallel region,
 * one inside one (a part of a batch running on its own thread). */
static int chunk_threads(int64_t chunks) {
  int t = omp_in_parallel() ? 1 : omp_get_max_threads();
  return chunks < t ? (int)chunks : t;
}

/* BLAS on one thread for a loop run on `threads` threads: a loop of one thread outside a
 * parallel region would otherwise hand its products to every BLAS thread, whose split rounds
 * differently (a power iteration's one sample gave another norm on two threads than on one).
 * Returns what serial_blas_end restores. */
static int serial_blas_begin(int threads) {
  int saved = !omp_in_parallel() && threads == 1 ? blua_get_num_threads() : 0;
  if (saved > 1) openblas_set_num_threads(1);
  return saved;
}

static void serial_blas_end(int saved) {
  if (saved > 1) blua_set_num_threads(saved);
}

/* Forward and adjoint give each sample its own outputs, so their chunks are independent: the
 * threads take whole chunks, each with its own slot of the workspace and single-threaded BLAS
 * (one parallel region per call, not three per chunk). A chunk's result does not depend on
 * which thread computes it. */
static int conv_forward(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, float *y,
                        int64_t ldy, blua_err *err) {
  geom g = geometry(op);
  int64_t nb = chunk_samples(&g, n), chunks = (n + nb - 1) / nb;
  int threads = chunk_threads(chunks);
  conv_space ws;
  if (conv_ws(op, &g, nb, threads, 0, &ws, err)) return BLUA_ERROR;
  const float *W = params[0], *b = params[1];
  int saved = serial_blas_begin(threads);
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < chunks; ch++) {
    int64_t s0 = ch * nb, m = n - s0 < nb ? n - s0 : nb, ldc = m * g.P;
    float *col = ws.col + omp_get_thread_num() * ws.slot, *T = ws.T + omp_get_thread_num() * ws.slot;
    for (int64_t s = 0; s < m; s++) im2col(&g, ws.mask, x + (s0 + s) * ldx, col + s * g.P, ldc);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g.Co, (int)ldc, (int)g.K, 1.0f, W, (int)g.K, col,
                (int)ldc, 0.0f, T, (int)ldc);
    for (int64_t s = 0; s < m; s++)
      for (int64_t co = 0; co < g.Co; co++) {
        float *dst = y + (s0 + s) * ldy + co * g.P;
        const float *src = T + co * ldc + s * g.P;
        float bias = b ? b[co] : 0.0f;
#pragma omp simd
        for (int64_t q = 0; q < g.P; q++) dst[q] = src[q] + bias;
      }
  }
  serial_blas_end(saved);
  return BLUA_OK;
}

static int conv_adjoint(blua_op *op, const float *const *params, int64_t n, const float *r, int64_t ldr, float *gx,
                        int64_t ldg, float alpha, float beta, blua_err *err) {
  geom g = geometry(op);
  int64_t nb = chunk_samples(&g, n), chunks = (n + nb - 1) / nb;
  int threads = chunk_threads(chunks);
  conv_space ws;
  if (conv_ws(op, &g, nb, threads, 0, &ws, err)) return BLUA_ERROR;
  int64_t nin = g.C * g.H * g.W;
  int saved = serial_blas_begin(threads);
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < chunks; ch++) {
    int64_t s0 = ch * nb, m = n - s0 < nb ? n - s0 : nb, ldc = m * g.P;
    float *col = ws.col + omp_get_thread_num() * ws.slot, *T = ws.T + omp_get_thread_num() * ws.slot;
    for (int64_t s = 0; s < m; s++)
      for (int64_t co = 0; co < g.Co; co++)
        memcpy(T + co * ldc + s * g.P, r + (s0 + s) * ldr + co * g.P, (size_t)g.P * sizeof *T);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.K, (int)ldc, (int)g.Co, alpha, params[0], (int)g.K, T,
                (int)ldc, 0.0f, col, (int)ldc);
    for (int64_t s = 0; s < m; s++) {
      float *dst = gx + (s0 + s) * ldg;
      if (beta == 0.0f)
        memset(dst, 0, (size_t)nin * sizeof *dst);
      else if (beta != 1.0f)
        for (int64_t q = 0; q < nin; q++) dst[q] *= beta;
      col2im(&g, ws.mask, col + s * g.P, ldc, dst);
    }
  }
  serial_blas_end(saved);
  return BLUA_OK;
}

/* dW (+)= alpha T colᵀ over the rows [0, n) of x and r, chunk after chunk in order, with the
 * workspace slot at col / T; beta applies to the first chunk. Serial: inside a parallel region
 * (or on one thread) BLAS runs on the calling thread. */
static void wgrad_rows(const geom *g, const float *mask, int64_t n, int64_t nb, const float *x, int64_t ldx,
                       const float *r, int64_t ldr, float *col, float *T, float *dW, float alpha, float beta) {
  for (int64_t s0 = 0; s0 < n; s0 += nb) {
    int64_t m = n - s0 < nb ? n - s0 : nb, ldc = m * g->P;
    for (int64_t s = 0; s < m; s++) {
      im2col(g, mask, x + (s0 + s) * ldx, col + s * g->P, ldc);
      for (int64_t co = 0; co < g->Co; co++)
        memcpy(T + co * ldc + s * g->P, r + (s0 + s) * ldr + co * g->P, (size_t)g->P * sizeof *T);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->Co, (int)g->K, (int)ldc, alpha, T, (int)ldc, col,
                (int)ldc, s0 == 0 ? beta : 1.0f, dW, (int)g->K);
  }
}

/* The weight gradient sums over every sample into one small C_out x K result. A batch of two
 * chunks or more is split into two fixed halves, each summed chunk by chunk in order (its own
 * workspace slot, BLAS on its thread), and the second half's sum is added to the first's: two
 * threads share the work, and the result depends on the batch size only, not on the thread
 * count. (OpenBLAS's own split of such a product, few entries and a long reduction, ran 2-3x
 * slower on 2 threads than on one on a shared machine, whose threads meet once per block of
 * the reduction; so the products always run on one BLAS thread.) */
static int conv_wgrad(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, const float *r,
                      int64_t ldr, float *const *grads, float alpha, float beta, blua_err *err) {
  (void)params;
  geom g = geometry(op);
  float *dW = grads[0], *db = grads[1];
  int64_t nb = chunk_samples(&g, n);
  if (dW) {
    int halves = n >= 2 * nb ? 2 : 1;
    int threads = chunk_threads(halves);
    conv_space ws;
    /* a slot per half, then the second half's C_out x K sum */
    if (conv_ws(op, &g, nb, halves, g.Co * g.K, &ws, err)) return BLUA_ERROR;
    float *second = ws.extra;
    int saved = serial_blas_begin(threads);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (int h = 0; h < halves; h++) {
      int64_t first = n * h / halves, count = n * (h + 1) / halves - first;
      wgrad_rows(&g, ws.mask, count, nb, x + first * ldx, ldx, r + first * ldr, ldr, ws.col + h * ws.slot,
                 ws.T + h * ws.slot, h == 0 ? dW : second, alpha, h == 0 ? beta : 0.0f);
    }
    serial_blas_end(saved);
    if (halves == 2)
      for (int64_t k = 0; k < g.Co * g.K; k++) dW[k] += second[k];
  }
  if (db) {
    /* Per-sample channel sums of the residual in double, added up in sample order: the same
     * bias gradient whatever the thread count. Blocks of samples bound the scratch. */
    int64_t block = 256;
    double *part = blua_op_wsd(op, (size_t)((block + 1) * g.Co), err);
    if (!part) return BLUA_ERROR;
    double *acc = part + block * g.Co;
    for (int64_t co = 0; co < g.Co; co++) acc[co] = 0.0;
    for (int64_t s0 = 0; s0 < n; s0 += block) {
      int64_t m = n - s0 < block ? n - s0 : block;
#pragma omp parallel for if (m * g.Co * g.P > BLUA_OP_PAR_MIN)
      for (int64_t s = 0; s < m; s++)
        for (int64_t co = 0; co < g.Co; co++) {
          const float *rs = r + (s0 + s) * ldr + co * g.P;
          double sum = 0.0;
#pragma omp simd reduction(+ : sum)
          for (int64_t q = 0; q < g.P; q++) sum += rs[q];
          part[s * g.Co + co] = sum;
        }
      for (int64_t s = 0; s < m; s++)
        for (int64_t co = 0; co < g.Co; co++) acc[co] += part[s * g.Co + co];
    }
    for (int64_t co = 0; co < g.Co; co++) db[co] = (float)((beta == 0.0f ? 0.0f : beta * db[co]) + alpha * acc[co]);
  }
  return BLUA_OK;
}

static const blua_op_vtable conv_vt = {conv_forward, conv_adjoint, conv_wgrad, NULL};

blua_op *blua_op_conv2d(const blua_conv2d_spec *spec, blua_err *err) {
  blua_shape in = {spec->c_in, spec->h, spec->w};
  if (blua_op_check_shape("conv2d", "input", in, err)) return NULL;
  if (spec->c_out < 1 || spec->c_out > INT32_MAX) {
    blua_fail(err, "bad output channels: conv2d needs at least 1, got %lld", (long long)spec->c_out);
    return NULL;
  }
  if (spec->kh < 1 || spec->kw < 1 || spec->kh > INT32_MAX || spec->kw > INT32_MAX) {
    blua_fail(err, "bad kernel: conv2d kernel %lldx%lld (each at least 1)", (long long)spec->kh, (long long)spec->kw);
    return NULL;
  }
  if (spec->stride < 1 || spec->stride > INT32_MAX) {
    blua_fail(err, "bad stride: conv2d stride must be a positive integer, got %lld", (long long)spec->stride);
    return NULL;
  }
  if (spec->padding < 0 || spec->padding > INT32_MAX / 4) {
    blua_fail(err, "bad padding: conv2d padding must be a non-negative integer, got %lld", (long long)spec->padding);
    return NULL;
  }
  int64_t ph = spec->h + 2 * spec->padding, pw = spec->w + 2 * spec->padding;
  if (spec->kh > ph || spec->kw > pw) {
    blua_fail(err, "kernel larger than padded input: conv2d kernel %lldx%lld, input %lldx%lldx%lld padded by %lld is %lldx%lld",
              (long long)spec->kh, (long long)spec->kw, (long long)spec->c_in, (long long)spec->h, (long long)spec->w,
              (long long)spec->padding, (long long)ph, (long long)pw);
    return NULL;
  }
  blua_shape out = {spec->c_out, (ph - spec->kh) / spec->stride + 1, (pw - spec->kw) / spec->stride + 1};
  int64_t k, wsize, patches;
  if (blua_op_check_shape("conv2d", "output", out, err)) return NULL;
  if (blua_op_mul(spec->c_in, spec->kh, &k) || blua_op_mul(k, spec->kw, &k) || k > INT32_MAX ||
      blua_op_mul(k, spec->c_out, &wsize) || blua_op_mul(k, out.h * out.w, &patches)) {
    blua_fail(err, "too large: conv2d %lld -> %lld channels with a %lldx%lld kernel on %lldx%lld",
              (long long)spec->c_in, (long long)spec->c_out, (long long)spec->kh, (long long)spec->kw,
              (long long)spec->h, (long long)spec->w);
    return NULL;
  }
  blua_op *op = blua_op_alloc(&conv_vt, "conv2d", in, out, 2, err);
  if (!op) return NULL;
  op->kh = spec->kh;
  op->kw = spec->kw;
  op->stride = spec->stride;
  op->padding = spec->padding;
  op->pshape[0][0] = spec->c_out;
  op->pshape[0][1] = k;
  op->pshape[1][0] = 1;
  op->pshape[1][1] = spec->c_out;
  op->pbias[1] = 1;
  return op;
}
