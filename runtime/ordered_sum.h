/* Private to the kernels: sums whose value does not depend on the thread count. An OpenMP
 * reduction adds each thread's partial sum, so its last bits change with the number of
 * threads (and, with dynamic scheduling, from run to run). Here the entries are cut into
 * blocks of ORDERED_SUM_BLOCK, each block is summed on its own, on whichever thread, and the
 * block sums are added in block order: the result depends on n alone. Up to ORDERED_SUM_GROUP
 * blocks are summed side by side at a time, into an array on the stack, so nothing is
 * allocated.
 *
 * ORDERED_SUM(acc, n, parallel, statements) adds to acc the sum over [0, n): the statements
 * add the terms of [lo, hi) (int64_t, declared by the macro) to `bsum` (a double, declared by
 * the macro, 0 at the start of each block); `parallel` says whether the blocks may run side by
 * side. */
#ifndef BLUA_ORDERED_SUM_H
#define BLUA_ORDERED_SUM_H

#include <stdint.h>

#include "par.h"

#define ORDERED_SUM_BLOCK 4096
#define ORDERED_SUM_GROUP 64

#define ORDERED_SUM(acc, n, parallel, ...)                                                                \
  do {                                                                                                    \
    const int64_t on_ = (n), onb_ = (on_ + ORDERED_SUM_BLOCK - 1) / ORDERED_SUM_BLOCK;                    \
    const int opar_ = (parallel) && onb_ > 1;                                                             \
    double opart_[ORDERED_SUM_GROUP];                                                                     \
    for (int64_t og_ = 0; og_ < onb_; og_ += ORDERED_SUM_GROUP) {                                         \
      const int64_t ong_ = onb_ - og_ < ORDERED_SUM_GROUP ? onb_ - og_ : ORDERED_SUM_GROUP;               \
      BLUA_PAR(opar_, "omp parallel for schedule(dynamic, 1)",                                            \
      for (int64_t ob_ = 0; ob_ < ong_; ob_++) {                                                          \
        const int64_t lo = (og_ + ob_) * ORDERED_SUM_BLOCK;                                               \
        const int64_t hi = on_ - lo < ORDERED_SUM_BLOCK ? on_ : lo + ORDERED_SUM_BLOCK;                   \
        double bsum = 0.0;                                                                                \
        __VA_ARGS__;                                                                                      \
        opart_[ob_] = bsum;                                                                               \
      });                                                                                                 \
      for (int64_t ob_ = 0; ob_ < ong_; ob_++) (acc) += opart_[ob_];                                      \
    }                                                                                                     \
  } while (0)

#endif
