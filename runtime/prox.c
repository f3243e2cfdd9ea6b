/* Placeholder until its issue lands. */
#include "blua/blua.h"

typedef int blua_prox_placeholder;
