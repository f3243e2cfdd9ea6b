/* See wait_policy.h. */
#define _POSIX_C_SOURCE 200809L
#include "wait_policy.h"

#include <stdlib.h>

int blua_default_wait_policy(void) {
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return 0;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return 0;
  setenv("GOMP_SPINCOUNT", BLUA_SPIN_COUNT, 1);
  setenv(BLUA_WAIT_MARK, "1", 1);
  return 1;
}
