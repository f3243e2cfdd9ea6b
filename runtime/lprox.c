/* Binding of the prox part of the core (placeholder until its issue lands). */
#include "lblua.h"

void lblua_open_prox(lua_State *L) { (void)L; }
