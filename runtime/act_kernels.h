/* Private to the activation kernels (prox.c, penalty.c): the per-kind dispatch that lets
 * the compiler specialise each elementwise loop, and the chunk size of their OpenMP loops. */
#ifndef BLUA_ACT_KERNELS_H
#define BLUA_ACT_KERNELS_H

#include "blua/prox.h"

#define INLINE static inline __attribute__((always_inline))

/* Runs LOOP(K) with K the constant kind of act, for the elementwise kinds. */
#define DISPATCH(kind, LOOP)                                              \
  switch (kind) {                                                         \
    case BLUA_ACT_IDENTITY: LOOP(BLUA_ACT_IDENTITY); break;               \
    case BLUA_ACT_RELU: LOOP(BLUA_ACT_RELU); break;                       \
    case BLUA_ACT_LEAKY_RELU: LOOP(BLUA_ACT_LEAKY_RELU); break;           \
    case BLUA_ACT_CLIP: LOOP(BLUA_ACT_CLIP); break;                       \
    case BLUA_ACT_SOFT_THRESHOLD: LOOP(BLUA_ACT_SOFT_THRESHOLD); break;   \
    case BLUA_ACT_SIGMOID: LOOP(BLUA_ACT_SIGMOID); break;                 \
    case BLUA_ACT_TANH: LOOP(BLUA_ACT_TANH); break;                       \
    default: break;                                                       \
  }

/* sigmoid and tanh are compute-bound (a vectorised float exp or log per entry, several for the
 * prox), so their loops run over blocks of entries in functions compiled three times, for
 * AVX-512 (16 floats a vector), AVX2 and the baseline, and the CPU picks one when the program
 * starts. None of the clones contracts to FMA, so all three give the same bits. */
#define SMOOTH_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SMOOTH_BLOCK 256

static inline int is_smooth(blua_act_kind kind) { return kind == BLUA_ACT_SIGMOID || kind == BLUA_ACT_TANH; }

/* Loop chunks are dealt dynamically: on a machine shared with other jobs a static split leaves
 * the loop waiting for the thread whose core is busy. Small chunks for the kinds that iterate
 * or call exp/log per entry, a few large ones for the others. */
static inline int64_t chunk_of(blua_act_kind kind, int64_t n) {
  if (kind == BLUA_ACT_SIGMOID || kind == BLUA_ACT_TANH) return 2048;
  return n / 8 > 4096 ? n / 8 : 4096;
}

/* An L1 term α|u| on top of Φ as a transformation T of the point before the prox or the
 * projection (blua/prox_l1.h, threshold t = μα): a shift down when σ's range lies in [0, ∞), up
 * when it lies in (−∞, 0], else a soft-threshold (then σ(0) = 0). Softmax takes none. */
typedef enum { L1_SHIFT_DOWN, L1_SHIFT_UP, L1_SHRINK } l1_rule;

static inline int l1_rule_of(const blua_act *act, l1_rule *rule) {
  switch (act->kind) {
  case BLUA_ACT_RELU:
  case BLUA_ACT_SIGMOID: *rule = L1_SHIFT_DOWN; break;
  case BLUA_ACT_CLIP: *rule = act->a >= 0 ? L1_SHIFT_DOWN : act->b <= 0 ? L1_SHIFT_UP : L1_SHRINK; break;
  case BLUA_ACT_SOFTMAX: return -1;
  default: *rule = L1_SHRINK; break;
  }
  return 0;
}

/* (selects between values, so that the loops that call it vectorise; NaN becomes 0 when shrunk) */
INLINE float l1_apply(l1_rule rule, float t, float u) {
  float down = u - t, up = u + t, shrunk = u > t ? down : (u < -t ? up : 0.0f);
  return rule == L1_SHIFT_DOWN ? down : (rule == L1_SHIFT_UP ? up : shrunk);
}

#endif
