/* Entry of the binding: builds the blua.core table from every binding file. */
#define _POSIX_C_SOURCE 200809L
#include "lblua.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int lblua_error(lua_State *L, const char *fname, const blua_err *err) {
  const char *msg = err ? err->msg : "unknown error";
  const char *sep = strstr(msg, ": ");
  if (sep)
    return luaL_error(L, "%s in '%s': %s", lua_pushlstring(L, msg, (size_t)(sep - msg)), fname, sep + 2);
  return luaL_error(L, "%s in '%s'", msg, fname);
}

/* blua.isatty([fd]): whether stdout (or fd) is a terminal, for progress bars. */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
  return 1;
}

/* blua._waitProbe(): CPU seconds a thread spends waiting for another (see blua/threads.h). */
static int l_waitProbe(lua_State *L) {
  lua_pushnumber(L, blua_wait_probe());
  return 1;
}

int lblua_open(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, BLUA_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushcfunction(L, l_isatty);
  lua_setfield(L, -2, "isatty");
  lua_pushcfunction(L, l_waitProbe);
  lua_setfield(L, -2, "_waitProbe");
  lblua_open_tensor(L);
  lblua_open_prox(L);
  lblua_open_io(L);
  lblua_open_lifted(L);
  lblua_open_op(L);
  return 1;
}
