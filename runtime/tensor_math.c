/* Elementwise maps and statistics on tensors: the core of runtime/ltensor_math.c. */
#include "blua/tensor_math.h"
