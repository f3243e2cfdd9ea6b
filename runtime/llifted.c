/* Binding of the lifted part of the core (placeholder until its issue lands). */
#include "lblua.h"

void lblua_open_lifted(lua_State *L) { (void)L; }
