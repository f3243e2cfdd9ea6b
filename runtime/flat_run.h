/* Private to the kernels: several tensors read as one run of entries, tensor i holding
 * [start[i], start[i + 1]) of it, so that elementwise work over all of them (an optimiser
 * step, the sums of the shares' gradients) goes to the threads as ranges of one run.
 *
 * FLAT_RUN_PIECES(start, lo, hi, i, off, len, statements) runs the statements for each piece
 * of entries [lo, hi) that lies in one tensor: tensor i (int), from its entry off, len entries
 * (int64_t; all three declared by the macro). */
#ifndef BLUA_FLAT_RUN_H
#define BLUA_FLAT_RUN_H

#include <stdint.h>

#define FLAT_RUN_PIECES(start, lo, hi, i, off, len, ...)                 \
  do {                                                                   \
    const int64_t *const fs_ = (start);                                  \
    int64_t flo_ = (lo);                                                 \
    const int64_t fhi_ = (hi);                                           \
    int i = 0;                                                           \
    while (fs_[i + 1] <= flo_) i++;                                      \
    for (; flo_ < fhi_; i++) {                                           \
      const int64_t fend_ = fs_[i + 1] < fhi_ ? fs_[i + 1] : fhi_;       \
      const int64_t off = flo_ - fs_[i], len = fend_ - flo_;             \
      __VA_ARGS__;                                                       \
      flo_ = fend_;                                                      \
    }                                                                    \
  } while (0)

#endif
