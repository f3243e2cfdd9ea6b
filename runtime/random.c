/* xoshiro256** seeded through splitmix64: small, fast, and identical on every machine. */
#include "blua/random.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void blua_rng_seed(blua_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
  r->has_spare = 0;
  r->spare = 0.0;
}

uint64_t blua_rng_next(blua_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double blua_rng_uniform(blua_rng *r) { return (double)(blua_rng_next(r) >> 11) * 0x1.0p-53; }

/* Marsaglia's polar method; keeps the second value for the next call. */
double blua_rng_normal(blua_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u, v, s;
  do {
    u = 2.0 * blua_rng_uniform(r) - 1.0;
    v = 2.0 * blua_rng_uniform(r) - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  double f = sqrt(-2.0 * log(s) / s);
  r->spare = v * f;
  r->has_spare = 1;
  return u * f;
}

/* Lemire's rejection keeps the draw unbiased for any n. */
uint64_t blua_rng_below(blua_rng *r, uint64_t n) {
  if (n == 0) return 0;
  uint64_t threshold = (0 - n) % n;
  for (;;) {
    uint64_t x = blua_rng_next(r);
    if (x >= threshold) return x % n;
  }
}

void blua_rng_permutation(blua_rng *r, int64_t *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)blua_rng_below(r, (uint64_t)i + 1);
    int64_t t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
}

static blua_rng default_rng;
static uint64_t default_seed;
static int default_ready;

blua_rng *blua_default_rng(void) {
  if (!default_ready) blua_manual_seed(1);
  return &default_rng;
}

void blua_manual_seed(uint64_t seed) {
  default_seed = seed;
  blua_rng_seed(&default_rng, seed);
  default_ready = 1;
}

uint64_t blua_initial_seed(void) {
  (void)blua_default_rng();
  return default_seed;
}
