/* The runtime's own random generator (xoshiro256**, seeded through splitmix64), so the
 * same seed gives the same numbers on every machine. One process-wide stream, used from the
 * Lua thread only. */
#ifndef BLUA_RANDOM_H
#define BLUA_RANDOM_H

#include <stdint.h>

typedef struct blua_rng {
  uint64_t s[4];
  int has_spare;
  double spare;
} blua_rng;

void blua_rng_seed(blua_rng *r, uint64_t seed);
uint64_t blua_rng_next(blua_rng *r);
double blua_rng_uniform(blua_rng *r);               /* [0, 1) */
double blua_rng_normal(blua_rng *r);                /* N(0, 1) */
uint64_t blua_rng_below(blua_rng *r, uint64_t n);   /* uniform in [0, n), unbiased */
void blua_rng_permutation(blua_rng *r, int64_t *out, int64_t n); /* 0..n-1 shuffled */

/* The process-wide generator that blua.manualSeed reseeds. */
blua_rng *blua_default_rng(void);
void blua_manual_seed(uint64_t seed);
uint64_t blua_initial_seed(void);

#endif
