/* Shapes and small linear algebra on tensors (runtime/tensor_shape.c). */
#ifndef BLUA_TENSOR_SHAPE_H
#define BLUA_TENSOR_SHAPE_H

#include "blua/tensor.h"

#endif
