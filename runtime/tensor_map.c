/* Elementwise maps in place (blua/tensor_map.h). The op is chosen once per run of entries, not
 * per entry: each op has its own loop, so the cheap ones (abs, neg, square, sqrt, floor, ceil,
 * round, sign, the comparisons, clamp, max, min) become vector loops, compiled for AVX-512 and
 * AVX2 as well as the baseline. Every op is the same scalar expression at every width (no reassociation, no
 * fused multiply-add, IEEE min/max order kept), so the bits do not depend on the clone chosen.
 * exp, log, log1p, tanh and sigmoid are vector loops too, over the double-precision routines
 * of vmath.h rounded to float (the correctly rounded float but for a handful of the 2^32
 * floats; tests/c/test_map_accuracy.c): libm's calls would keep them scalar, 2-12 ns an entry.
 * pow stays a libm call per entry. */
#include "blua/tensor_map.h"

#include <math.h>

#include "par.h"
#include "vmath.h"

#if defined(__x86_64__) && (defined(__clang__) ? __clang_major__ >= 14 : defined(__GNUC__))
#define MAP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MAP_CLONES
#endif

/* Entries per piece when one long run is split over threads: 32 KB, a multiple of every
 * vector width, so each piece but the last is whole vectors. */
#define MAP_BLOCK 8192

/* The floor of every float of magnitude 2^23 or more is itself, and a NaN comes back as it
 * came: the baseline compilation of floorf (an SSE2 sequence, no libm call) returns even a
 * signalling NaN unchanged, where the AVX round instructions would quieten it. */
static inline float floor_of(float x) { return fabsf(x) < 0x1p23f ? floorf(x) : x; }
static inline float ceil_of(float x) { return fabsf(x) < 0x1p23f ? ceilf(x) : x; }
static inline float round_of(float x) { return fabsf(x) < 0x1p23f ? roundf(x) : x; }

/* p[k * step] = E(x) for k < n, x the old entry. VEC: a loop the compiler is told to vectorise
 * where the entries are adjacent; CALL: a libm call per entry (pow), left scalar. */
#define VEC(E)                                                              \
  do {                                                                      \
    if (step == 1) {                                                        \
      _Pragma("omp simd") for (int64_t k = 0; k < n; k++) {                 \
        float x = p[k];                                                     \
        p[k] = (E);                                                         \
      }                                                                     \
    } else {                                                                \
      for (int64_t k = 0; k < n; k++) {                                     \
        float x = p[k * step];                                              \
        p[k * step] = (E);                                                  \
      }                                                                     \
    }                                                                       \
  } while (0)

#define CALL(E)                                                             \
  do {                                                                      \
    for (int64_t k = 0; k < n; k++) {                                       \
      float x = p[k * step];                                                \
      p[k * step] = (E);                                                    \
    }                                                                       \
  } while (0)

/* One run: n entries step apart from p. No OpenMP region in here (the clones are picked per
 * call; the threads are started by the caller). */
MAP_CLONES static void map_run(float *p, int64_t n, int64_t step, blua_map_op op, float a, float b) {
  switch (op) {
    case BLUA_MAP_ABS: VEC(fabsf(x)); break;
    case BLUA_MAP_EXP: VEC(vm_expf(x)); break;
    case BLUA_MAP_LOG: VEC(vm_logf(x)); break;
    case BLUA_MAP_SQRT: VEC(sqrtf(x)); break;
    case BLUA_MAP_TANH: VEC(vm_tanhf(x)); break;
    case BLUA_MAP_SIGMOID: VEC(vm_sigmoidf(x)); break;
    case BLUA_MAP_SIGN: VEC((float)((x > 0) - (x < 0))); break;
    case BLUA_MAP_NEG: VEC(-x); break;
    case BLUA_MAP_SQUARE: VEC(x * x); break;
    case BLUA_MAP_LOG1P: VEC(vm_log1pf(x)); break;
    case BLUA_MAP_FLOOR: VEC(floor_of(x)); break;
    case BLUA_MAP_CEIL: VEC(ceil_of(x)); break;
    case BLUA_MAP_ROUND: VEC(round_of(x)); break;
    case BLUA_MAP_CLAMP: VEC(x < a ? a : (x > b ? b : x)); break;
    case BLUA_MAP_GT: VEC((float)(x > a)); break;
    case BLUA_MAP_GE: VEC((float)(x >= a)); break;
    case BLUA_MAP_LT: VEC((float)(x < a)); break;
    case BLUA_MAP_LE: VEC((float)(x <= a)); break;
    case BLUA_MAP_EQ: VEC((float)(x == a)); break;
    case BLUA_MAP_NE: VEC((float)(x != a)); break;
    case BLUA_MAP_POW: CALL(powf(x, a)); break;
    case BLUA_MAP_MAX: VEC(x > a ? x : a); break;
    case BLUA_MAP_MIN: VEC(x < a ? x : a); break;
    case BLUA_MAP_COUNT: break;
  }
}

/* The ops that cost more than the memory traffic: a polynomial or a libm call per entry. */
static int compute_bound(blua_map_op op) {
  return op == BLUA_MAP_EXP || op == BLUA_MAP_LOG || op == BLUA_MAP_TANH || op == BLUA_MAP_SIGMOID ||
         op == BLUA_MAP_LOG1P || op == BLUA_MAP_POW;
}

/* Piece i of MAP_BLOCK entries (the last one shorter) of a run of len entries. */
static void map_piece(float *p, int64_t len, int64_t step, int64_t i, blua_map_op op, float a, float b) {
  int64_t lo = i * MAP_BLOCK, m = len - lo < MAP_BLOCK ? len - lo : MAP_BLOCK;
  map_run(p + lo * step, m, step, op, a, b);
}

int blua_tensor_map(blua_tensor *t, blua_map_op op, float a, float b, blua_err *err) {
  if ((unsigned)op >= BLUA_MAP_COUNT) return blua_fail(err, "unknown map op %d", (int)op);
  if (op == BLUA_MAP_CLAMP && a > b) return blua_fail(err, "bad clamp bounds: %g > %g", a, b);
  int64_t n = blua_tensor_nelement(t);
  if (n == 0) return BLUA_OK;
  int big = n > BLUA_OMP_THRESHOLD;
  float *p = blua_tensor_data(t);
  int last = t->dim - 1;
  int64_t runs = blua_tensor_runs(t), len = t->size[last], step = t->stride[last];
  if (blua_tensor_is_contiguous(t)) {
    runs = 1;
    len = n;
    step = 1;
  }
  if (runs == 1) {
    /* One run (contiguous, or a strided 1-D view): cut into pieces when it is worth threads. */
    int64_t pieces = (len + MAP_BLOCK - 1) / MAP_BLOCK;
    if (!big || pieces < 2) {
      map_run(p, len, step, op, a, b);
    } else if (compute_bound(op)) {
      /* Pieces dealt as threads come free: on a shared machine a thread whose core is busy
       * would hold up a static split of compute-bound work. */
#pragma omp parallel for schedule(dynamic)
      for (int64_t i = 0; i < pieces; i++) map_piece(p, len, step, i, op, a, b);
    } else {
      /* Memory-bound: one contiguous share per thread, the same shares every call (the same
       * core's cache when the tensor is mapped again). */
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < pieces; i++) map_piece(p, len, step, i, op, a, b);
    }
    return BLUA_OK;
  }
  BLUA_PAR(big, "omp parallel for",
  for (int64_t r = 0; r < runs; r++) map_run(p + blua_tensor_run_offset(t, r), len, step, op, a, b));
  return BLUA_OK;
}
