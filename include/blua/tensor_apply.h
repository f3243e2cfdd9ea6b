/* Whole-tensor truth tests (runtime/tensor_apply.c): Torch7's all and any, on any view. The
 * callback methods of the same group (apply, map, map2) run Lua code and live in the binding
 * only (runtime/ltensor_apply.c). */
#ifndef BLUA_TENSOR_APPLY_H
#define BLUA_TENSOR_APPLY_H

#include "blua/tensor.h"

/* 1 when every entry of t is non-zero, else 0. NaN counts as non-zero (as a C condition does);
 * an empty tensor gives 1. */
int blua_tensor_all(const blua_tensor *t);
/* 1 when some entry of t is non-zero (NaN included), else 0; an empty tensor gives 0. */
int blua_tensor_any(const blua_tensor *t);

#endif
