/* Binding of the io part of the core (placeholder until its issue lands). */
#include "lblua.h"

void lblua_open_io(lua_State *L) { (void)L; }
