/* See blua/shares.h. */
#include "blua/shares.h"

#include "blua/team.h"

#include <omp.h>

void blua_share_bounds(int64_t rows, int parts, int p, int64_t *first, int64_t *count) {
  if (parts < 1) parts = 1;
  int64_t base = rows / parts, extra = rows % parts;
  *first = p * base + (p < extra ? p : extra);
  *count = base + (p < extra ? 1 : 0);
}

int blua_shares_side_by_side(int parts, double work) {
  return parts >= 2 && omp_get_max_threads() >= 2 && (!omp_in_parallel() || blua_team_active()) &&
         !(work < BLUA_SHARE_MIN_WORK);
}
