/* Whole-tensor truth tests: Torch7's all and any. They walk t run by run (blua_tensor_runs), so
 * transposed, narrowed and permuted views are read in place, and stop at the first entry that
 * decides the answer. */
#include "blua/tensor_apply.h"

/* Whether some entry of t is zero (want_zero) or non-zero (!want_zero). */
static int has_entry(const blua_tensor *t, int want_zero) {
  if (blua_tensor_nelement(t) == 0) return 0;
  int64_t runs = blua_tensor_runs(t), len = t->size[t->dim - 1], step = t->stride[t->dim - 1];
  const float *data = blua_tensor_data(t);
  for (int64_t r = 0; r < runs; r++) {
    const float *p = data + blua_tensor_run_offset(t, r);
    for (int64_t j = 0; j < len; j++)
      if ((p[j * step] == 0.0f) == want_zero) return 1;
  }
  return 0;
}

int blua_tensor_all(const blua_tensor *t) { return !has_entry(t, 1); }
int blua_tensor_any(const blua_tensor *t) { return has_entry(t, 0); }
