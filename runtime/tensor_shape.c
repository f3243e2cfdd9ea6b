/* Shapes and small linear algebra on tensors: the core of runtime/ltensor_shape.c. */
#include "blua/tensor_shape.h"
