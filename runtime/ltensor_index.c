/* Lua binding of the tensor methods for indexing and masking (indexCopy, indexFill, indexAdd, maskedSelect, maskedFill, maskedCopy, gather, scatter); their core is
 * runtime/tensor_index.c. */
#include "lblua.h"

const lblua_method lblua_index_methods[] = {
    {NULL, NULL, 0, NULL}};

const lblua_method lblua_index_funcs[] = {
    {NULL, NULL, 0, NULL}};
