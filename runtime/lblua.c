/* Entry of the binding: builds the blua.core table from every binding file. */
#define _POSIX_C_SOURCE 200809L
#include "lblua.h"

#include "blua/shares.h"
#include "blua/team.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* blua._team(f, ...): f(...) with a thread team up for its batches of tasks (blua/team.h);
 * returns what f returns. f runs under lua_pcall, so an error never leaves the parallel region
 * by a long jump; it is raised again once the team is down. */
typedef struct {
  lua_State *L;
  int nargs, status;
} team_call;

static int team_body(void *ctx) {
  team_call *c = ctx;
  c->status = lua_pcall(c->L, c->nargs, LUA_MULTRET, 0);
  return 0;
}

static int l_team(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  team_call c = {L, lua_gettop(L) - 1, LUA_OK};
  blua_team_open(team_body, &c);
  if (c.status != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/* blua._teamJoin(): waits for the tasks posted to the team (blua._gatherRows). */
static int l_teamJoin(lua_State *L) {
  (void)L;
  blua_team_join();
  return 0;
}

/* blua._teamStats(): {batches =, caller =, others =, late =} of the last team (benchmarks). */
static int l_teamStats(lua_State *L) {
  blua_team_stats s;
  blua_team_get_stats(&s);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, s.batches);
  lua_setfield(L, -2, "batches");
  lua_pushinteger(L, s.tasks_caller);
  lua_setfield(L, -2, "caller");
  lua_pushinteger(L, s.tasks_others);
  lua_setfield(L, -2, "others");
  lua_pushinteger(L, s.late_batches);
  lua_setfield(L, -2, "late");
  return 1;
}

int lblua_terminal_width(void) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  const char *env = getenv("COLUMNS");
  long n = env ? strtol(env, NULL, 10) : 0;
  return n >= 20 && n <= 1000 ? (int)n : 80;
}

/* blua.terminalWidth(): the columns of the terminal on stdout; else $COLUMNS; else 80. */
static int l_terminalWidth(lua_State *L) {
  lua_pushinteger(L, lblua_terminal_width());
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
  lua_pushcfunction(L, l_team);
  lua_setfield(L, -2, "_team");
  lua_pushcfunction(L, l_teamStats);
  lua_setfield(L, -2, "_teamStats");
  lua_pushcfunction(L, l_teamJoin);
  lua_setfield(L, -2, "_teamJoin");
  lua_pushnumber(L, BLUA_SHARE_MIN_WORK); /* (shares below it run one after another) */
  lua_setfield(L, -2, "_shareMinWork");
  lua_pushcfunction(L, l_terminalWidth);
  lua_setfield(L, -2, "terminalWidth");
  lblua_open_tensor(L);
  lblua_open_prox(L);
  lblua_open_io(L);
  lblua_open_lifted(L);
  lblua_open_image(L);
  lblua_open_op(L);
  lblua_open_epoch(L);
  return 1;
}
