/* ‖W‖₂ by power iteration (see blua/lifted.h).
 *
 * Each step u = W v/‖v‖, v ← Wᵀu makes one pass over W, not two: row w_i gives u_i = w_i·v/‖v‖
 * and adds u_i w_i to v while the row is still in the first-level cache. The rows are cut into
 * blocks of a fixed size, each block sums its own share of Wᵀu, and the block sums are added
 * in block order (in double); the dot products add in 16 fixed lanes, chunk by chunk of a long
 * row (the chunks' sums in double). So the result depends on W and the start alone, not on the
 * thread count or the vector width of the machine, and a big W (a wide layer's 1024 x 1024) is
 * walked by all threads at once. */
#include "blua/lifted.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blua/shares.h"
#include "blua/team.h"

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define POWER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef POWER_CLONES
#define POWER_CLONES
#endif

/* Rows per block. Fixed, so the order of the additions is too; small enough that a wide W
 * gives every thread several blocks. */
enum { POWER_BLOCK_ROWS = 128 };

/* Euclidean norm of n floats, accumulated in double. */
static double norm_of(const float *x, int64_t n) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
  return sqrt(acc);
}

/* One step of the power iteration, cut into blocks of rows. */
typedef struct {
  const float *w, *v;
  int64_t m, n;
  float scale;  /* 1/‖v‖ */
  float *part;  /* block b's share of Wᵀu: part + b n */
  double *usq;  /* block b's Σ u_i² */
} power_step;

/* 16 floats as one value: one AVX-512 register, two AVX2 ones, four SSE ones; the arithmetic
 * is lane by lane whatever the width. */
typedef float lanes16 __attribute__((vector_size(64)));
typedef float lanes16_unaligned __attribute__((vector_size(64), aligned(4), may_alias));

#define LOAD16(p) (*(const lanes16_unaligned *)(p))

/* The 16 lanes of a dot product folded in halves (lane k + 8 onto lane k, and so on). */
static inline __attribute__((always_inline)) float fold16(const lanes16 *a) {
  float l[16];
  memcpy(l, a, sizeof l);
  for (int k = 0; k < 8; k++) l[k] += l[k + 8];
  for (int k = 0; k < 4; k++) l[k] += l[k + 4];
  for (int k = 0; k < 2; k++) l[k] += l[k + 2];
  return l[0] + l[1];
}

/* The entries j >= n16 of w·v, added to lane j - n16 of a. */
static inline __attribute__((always_inline)) void tail16(lanes16 *a, const float *w, const float *v, int64_t n16, int64_t n) {
  float l[16];
  memcpy(l, a, sizeof l);
  for (int64_t j = n16; j < n; j++) l[j - n16] += w[j] * v[j];
  memcpy(a, l, sizeof l);
}

/* A dot product's lanes add up at most DOT_CHUNK entries (64 per lane) in float; longer rows
 * add their chunks' sums in double, so their rounding stays that of a short row. */
enum { DOT_CHUNK = 1024 };

/* Σ_j w[j] v[j] for four rows w0..w3 at once, each chunk in 16 fixed lanes (lane k takes
 * j ≡ k mod 16) folded in halves: the same order at every vector width. Side by side, v is
 * read once and the four sums do not wait on one another. */
static inline __attribute__((always_inline)) void dot4(const float *w0, const float *w1, const float *w2,
                                                       const float *w3, const float *v, int64_t n, float *u) {
  const int64_t n16 = n & ~(int64_t)15;
  double d[4] = {0};
  for (int64_t c = 0;; c += DOT_CHUNK) {
    lanes16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    const int64_t end = n16 - c < DOT_CHUNK ? n16 : c + DOT_CHUNK;
    for (int64_t j = c; j < end; j += 16) {
      const lanes16 x = LOAD16(v + j);
      a0 += LOAD16(w0 + j) * x;
      a1 += LOAD16(w1 + j) * x;
      a2 += LOAD16(w2 + j) * x;
      a3 += LOAD16(w3 + j) * x;
    }
    if (end == n16 && n16 < n) {
      tail16(&a0, w0, v, n16, n);
      tail16(&a1, w1, v, n16, n);
      tail16(&a2, w2, v, n16, n);
      tail16(&a3, w3, v, n16, n);
    }
    if (c == 0 && end == n16) { /* (one chunk: the float sums as they are) */
      u[0] = fold16(&a0);
      u[1] = fold16(&a1);
      u[2] = fold16(&a2);
      u[3] = fold16(&a3);
      return;
    }
    d[0] += fold16(&a0);
    d[1] += fold16(&a1);
    d[2] += fold16(&a2);
    d[3] += fold16(&a3);
    if (end == n16) break;
  }
  for (int r = 0; r < 4; r++) u[r] = (float)d[r];
}

/* The same for one row. */
static inline __attribute__((always_inline)) float dot1(const float *w, const float *v, int64_t n) {
  const int64_t n16 = n & ~(int64_t)15;
  double d = 0.0;
  for (int64_t c = 0;; c += DOT_CHUNK) {
    lanes16 a = {0};
    const int64_t end = n16 - c < DOT_CHUNK ? n16 : c + DOT_CHUNK;
    for (int64_t j = c; j < end; j += 16) a += LOAD16(w + j) * LOAD16(v + j);
    if (end == n16 && n16 < n) tail16(&a, w, v, n16, n);
    if (c == 0 && end == n16) return fold16(&a);
    d += fold16(&a);
    if (end == n16) break;
  }
  return (float)d;
}

/* Rows lo..hi-1 of block b: u_i = (w_i·v) scale, then p += u_i w_i row after row. Four rows at
 * a time keep p in registers across them (the additions stay in row order). */
POWER_CLONES static void power_block(void *ctx, int b) {
  const power_step *s = ctx;
  const int64_t n = s->n, lo = (int64_t)b * POWER_BLOCK_ROWS;
  const int64_t hi = s->m - lo < POWER_BLOCK_ROWS ? s->m : lo + POWER_BLOCK_ROWS;
  const float *restrict v = s->v;
  float *restrict p = s->part + (int64_t)b * n;
  double usq = 0.0;
  for (int64_t j = 0; j < n; j++) p[j] = 0.0f;
  int64_t i = lo;
  if (n < 16) { /* (short rows: each dot product in the order of j, four rows side by side) */
    for (; i + 4 <= hi; i += 4) {
      const float *restrict w0 = s->w + i * n, *restrict w1 = w0 + n, *restrict w2 = w1 + n, *restrict w3 = w2 + n;
      float u[4] = {0};
      for (int64_t j = 0; j < n; j++) {
        u[0] += w0[j] * v[j];
        u[1] += w1[j] * v[j];
        u[2] += w2[j] * v[j];
        u[3] += w3[j] * v[j];
      }
      for (int r = 0; r < 4; r++) {
        u[r] *= s->scale;
        usq += (double)u[r] * u[r];
      }
      for (int64_t j = 0; j < n; j++) p[j] = (((p[j] + u[0] * w0[j]) + u[1] * w1[j]) + u[2] * w2[j]) + u[3] * w3[j];
    }
    for (; i < hi; i++) {
      const float *restrict wi = s->w + i * n;
      float u = 0.0f;
      for (int64_t j = 0; j < n; j++) u += wi[j] * v[j];
      u *= s->scale;
      usq += (double)u * u;
      for (int64_t j = 0; j < n; j++) p[j] += u * wi[j];
    }
    s->usq[b] = usq;
    return;
  }
  for (; i + 4 <= hi; i += 4) {
    const float *restrict w0 = s->w + i * n, *restrict w1 = w0 + n, *restrict w2 = w1 + n, *restrict w3 = w2 + n;
    float u[4];
    dot4(w0, w1, w2, w3, v, n, u);
    for (int r = 0; r < 4; r++) {
      u[r] *= s->scale;
      usq += (double)u[r] * u[r];
    }
#pragma omp simd
    for (int64_t j = 0; j < n; j++) p[j] = (((p[j] + u[0] * w0[j]) + u[1] * w1[j]) + u[2] * w2[j]) + u[3] * w3[j];
  }
  for (; i < hi; i++) {
    const float *restrict wi = s->w + i * n;
    const float u = dot1(wi, v, n) * s->scale;
    usq += (double)u * u;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) p[j] += u * wi[j];
  }
  s->usq[b] = usq;
}

double blua_spectral_norm(const blua_tensor *W, int iters, blua_tensor *start) {
  int64_t m = blua_tensor_rows(W), n = blua_tensor_cols(W);
  if (m == 0 || n == 0) return 0.0;
  if (start && (blua_tensor_nelement(start) != n || start->dim > 2 ||
                (start->dim == 2 && start->size[0] != 1 && start->size[1] != 1)))
    return NAN;
  /* start is any vector view: step along it by its own stride. */
  int64_t ss = !start ? 0 : start->dim == 1 || start->size[0] != 1 ? start->stride[0] : start->stride[1];
  const int64_t blocks = (m + POWER_BLOCK_ROWS - 1) / POWER_BLOCK_ROWS;
  if (blocks > INT32_MAX || n > (INT64_MAX / (int64_t)sizeof(double)) / (blocks + 1)) return NAN;
  blua_err err;
  blua_tensor *Wc = blua_tensor_contiguous((blua_tensor *)W, &err);
  float *v = malloc((size_t)((blocks + 1) * n) * sizeof *v);
  double *usq = malloc((size_t)(blocks + n) * sizeof *usq), *sum = usq ? usq + blocks : NULL;
  if (!Wc || !v || !usq) {
    blua_tensor_release(Wc);
    free(v);
    free(usq);
    return NAN;
  }
  /* A given start (the previous estimate's vector) makes a few steps enough while W changes
   * slowly; otherwise a fixed, non-symmetric start keeps the estimate deterministic. */
  int warm = 0;
  for (int64_t j = 0; j < n; j++) {
    v[j] = start ? blua_tensor_data(start)[j * ss] : 0.0f;
    warm |= v[j] != 0.0f;
  }
  if (!warm)
    for (int64_t j = 0; j < n; j++) v[j] = 1.0f + 0.01f * (float)(j % 7);
  power_step step = {blua_tensor_data(Wc), v, m, n, 1.0f, v + n, usq};
  /* (side by side only when W is big enough to pay for handing out the blocks) */
  const int side_by_side = blocks > 1 && blua_shares_side_by_side(2, (double)m * (double)n / 2);
  double sigma = 0.0;
  for (int it = 0; it < (iters > 0 ? iters : 1); it++) {
    double nv = norm_of(v, n);
    if (nv == 0.0 || !isfinite(nv)) {
      sigma = isfinite(nv) ? 0.0 : NAN;
      break;
    }
    step.scale = (float)(1.0 / nv);
    if (side_by_side) {
      blua_team_for((int)blocks, 1, power_block, &step);
    } else { /* (not through the team, which would first wait for a posted gather) */
      for (int b = 0; b < (int)blocks; b++) power_block(&step, b);
    }
    double total = 0.0;
    for (int64_t b = 0; b < blocks; b++) total += usq[b];
    sigma = sqrt(total);
    /* (the blocks' shares added in block order, in double: a tall W has many blocks) */
    if (blocks > 1) {
      for (int64_t j = 0; j < n; j++) sum[j] = step.part[j];
      for (int64_t b = 1; b < blocks; b++)
        for (int64_t j = 0; j < n; j++) sum[j] += step.part[b * n + j];
      for (int64_t j = 0; j < n; j++) v[j] = (float)sum[j];
    } else {
      for (int64_t j = 0; j < n; j++) v[j] = step.part[j];
    }
  }
  if (start && isfinite(sigma)) {
    double nv = norm_of(v, n);
    for (int64_t j = 0; j < n; j++)
      blua_tensor_data(start)[j * ss] = nv > 0 ? (float)(v[j] / nv) : 0.0f;
  }
  blua_tensor_release(Wc);
  free(v);
  free(usq);
  return sigma;
}
