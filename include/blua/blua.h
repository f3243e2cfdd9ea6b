/* Umbrella header of the Lua-free blua core. */
#ifndef BLUA_H
#define BLUA_H

#define BLUA_VERSION "0.1.0"

#include "blua/error.h"
#include "blua/lifted.h"
#include "blua/op.h"
#include "blua/optim.h"
#include "blua/penalty.h"
#include "blua/prox.h"
#include "blua/random.h"
#include "blua/tensor.h"
#include "blua/tensor_index.h"
#include "blua/tensor_map.h"
#include "blua/tensor_math.h"
#include "blua/tensor_shape.h"
#include "blua/team.h"
#include "blua/threads.h"

#endif
