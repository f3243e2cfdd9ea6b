/* The loadable module blua/core.so for a stock Lua 5.4 interpreter: a small loader that sets
 * the default OpenMP waiting behaviour (see wait_policy.h) and then loads the runtime itself,
 * blua/runtime.so beside it, which is what pulls in OpenBLAS and libgomp. This file links
 * neither, so libgomp has not read its settings yet when the loader runs. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "wait_policy.h"

LUAMOD_API int luaopen_blua_core(lua_State *L) {
  Dl_info self;
  if (!dladdr((void *)luaopen_blua_core, &self) || !self.dli_fname)
    return luaL_error(L, "cannot load blua.core: the module cannot find its own file");
  const char *slash = strrchr(self.dli_fname, '/');
  int dirlen = slash ? (int)(slash - self.dli_fname) : 1;
  const char *dir = slash ? self.dli_fname : ".";
  lua_pushfstring(L, "%s/runtime.so", lua_pushlstring(L, dir, (size_t)dirlen));
  const char *path = lua_tostring(L, -1);
  /* Too late when libgomp is already in the process (another module brought it). */
  void *gomp = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (gomp) dlclose(gomp);
  else blua_default_wait_policy();
  void *runtime = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!runtime) return luaL_error(L, "cannot load blua.core: %s", dlerror());
  lua_CFunction open = (lua_CFunction)dlsym(runtime, "luaopen_blua_runtime");
  if (!open) return luaL_error(L, "cannot load blua.core: %s has no luaopen_blua_runtime", path);
  lua_pop(L, 2);
  return open(L); /* the runtime stays loaded for the life of the process */
}
