/* Entry of the binding: builds the blua.core table from every binding file. */
#include "lblua.h"

#include <string.h>

int lblua_error(lua_State *L, const char *fname, const blua_err *err) {
  const char *msg = err ? err->msg : "unknown error";
  const char *sep = strstr(msg, ": ");
  if (sep)
    return luaL_error(L, "%s in '%s': %s", lua_pushlstring(L, msg, (size_t)(sep - msg)), fname, sep + 2);
  return luaL_error(L, "%s in '%s'", msg, fname);
}

int lblua_open(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, BLUA_VERSION);
  lua_setfield(L, -2, "version");
  lblua_open_tensor(L);
  lblua_open_prox(L);
  lblua_open_io(L);
  lblua_open_lifted(L);
  return 1;
}
