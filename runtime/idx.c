/* Placeholder until its issue lands. */
#include "blua/blua.h"

typedef int blua_idx_placeholder;
