/* Shared by the Lua-level fuzz harnesses: a fresh Lua state with the blua module loaded from
 * the source tree, as the blua command makes it. */
#ifndef BLUA_FUZZ_HARNESS_H
#define BLUA_FUZZ_HARNESS_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lblua.h"

static lua_State *fuzz_state(void) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, lblua_open);
  lua_setfield(L, -2, "blua.core");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushliteral(L, BLUA_SOURCE_DIR "/lua/?.lua;" BLUA_SOURCE_DIR "/lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  if (luaL_dostring(L, "blua = require 'blua' blua.setNumThreads(1)") != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  return L;
}

#endif
