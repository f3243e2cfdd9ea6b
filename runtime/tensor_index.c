/* Indexing by position lists and masks on tensors: the core of runtime/ltensor_index.c. */
#include "blua/tensor_index.h"
