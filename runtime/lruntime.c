/* Entry of blua/runtime.so, the binding and core that blua/core.so (runtime/lmodule.c)
 * loads for a stock Lua 5.4 interpreter. */
#include "lblua.h"

LUAMOD_API int luaopen_blua_runtime(lua_State *L) { return lblua_open(L); }
