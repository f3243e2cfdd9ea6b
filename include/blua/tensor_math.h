/* Elementwise maps and statistics on tensors (runtime/tensor_math.c). */
#ifndef BLUA_TENSOR_MATH_H
#define BLUA_TENSOR_MATH_H

#include "blua/tensor.h"

#endif
