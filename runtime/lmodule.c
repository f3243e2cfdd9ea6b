/* The loadable module blua/core.so for a stock Lua 5.4 interpreter. */
#include "lblua.h"

LUAMOD_API int luaopen_blua_core(lua_State *L) { return lblua_open(L); }
