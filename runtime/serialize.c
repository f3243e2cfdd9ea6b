/* Placeholder until its issue lands. */
#include "blua/blua.h"

typedef int blua_serialize_placeholder;
