/* Private to the kernels: loops that go to the OpenMP threads only when they are big enough.
 * An `if` clause is not enough for that: a region whose `if` is false still runs through
 * libgomp, which builds and frees a team of one thread, about half a microsecond per call on
 * this runtime's machines; on the small tensors of a training share that is more than the loop.
 *
 * BLUA_PAR(cond, "omp parallel for ...", statement): the statement under the pragma when cond
 * holds, and plainly otherwise. BLUA_PAR_SIMD does the same and keeps the plain loop a vector
 * loop ("omp simd"), for a pragma of the form "omp parallel for simd ...". */
#ifndef BLUA_PAR_H
#define BLUA_PAR_H

#define BLUA_PAR(cond, pragma, ...) \
  do {                              \
    if (cond) {                     \
      _Pragma(pragma) __VA_ARGS__;  \
    } else {                        \
      __VA_ARGS__;                  \
    }                               \
  } while (0)

#define BLUA_PAR_SIMD(cond, pragma, ...) \
  do {                                   \
    if (cond) {                          \
      _Pragma(pragma) __VA_ARGS__;       \
    } else {                             \
      _Pragma("omp simd") __VA_ARGS__;   \
    }                                    \
  } while (0)

#endif
