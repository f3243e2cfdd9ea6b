/* Indexing by position lists and masks on tensors (runtime/tensor_index.c). */
#ifndef BLUA_TENSOR_INDEX_H
#define BLUA_TENSOR_INDEX_H

#include "blua/tensor.h"

#endif
