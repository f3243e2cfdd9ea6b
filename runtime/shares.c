/* See blua/shares.h. */
#include "blua/shares.h"

#include <omp.h>

#include "blua/tensor.h"

void blua_share_bounds(int64_t rows, int parts, int p, int64_t *first, int64_t *count) {
  if (parts < 1) parts = 1;
  int64_t base = rows / parts, extra = rows % parts;
  *first = p * base + (p < extra ? p : extra);
  *count = base + (p < extra ? 1 : 0);
}

int blua_shares_side_by_side(int L, const blua_lifted_layer *layers, int64_t rows, int parts) {
  if (parts < 2 || omp_get_max_threads() < 2 || omp_in_parallel()) return 0;
  int64_t share_rows = (rows + parts - 1) / parts;
  double largest = 0.0;
  for (int l = 0; l < L; l++) {
    double flops = 2.0 * (double)share_rows * (double)blua_tensor_rows(layers[l].W) * (double)blua_tensor_cols(layers[l].W);
    if (flops > largest) largest = flops;
  }
  return largest < BLUA_MM_SERIAL_FLOPS;
}
