/* The vectorisable exp, log, log1p, σ and tanh of runtime/vmath.h against libm, over their
 * whole ranges: error in units in the last place (ulp) of the exact result, the worst case
 * printed. exp over [-708, 709] and log over every binade of the positive normal doubles,
 * each sampled evenly in bit patterns; σ and tanh rounded to float over every 64th float. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../runtime/vmath.h"
#include "check.h"

/* |got − want| in ulps of want (double). */
static double ulps(double got, double want) {
  if (got == want) return 0.0;
  double ulp = nextafter(fabs(want), INFINITY) - fabs(want);
  return fabs(got - want) / ulp;
}

/* The same for floats: the distance in representable floats. */
static double float_ulps(float got, float want) {
  if (got == want) return 0.0;
  if (isnan(got) || isnan(want)) return INFINITY;
  int32_t a, b;
  memcpy(&a, &got, 4);
  memcpy(&b, &want, 4);
  if (a < 0) a = INT32_MIN - a; /* order the bit patterns like the values */
  if (b < 0) b = INT32_MIN - b;
  return fabs((double)a - (double)b);
}

static double from_bits(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

int main(void) {
  const int64_t samples = 1 << 21;

  double worst = 0.0, at = 0.0;
  for (int64_t i = 0; i <= samples; i++) {
    double x = -708.0 + 1417.0 * (double)i / (double)samples;
    double e = ulps(vm_exp(x), exp(x));
    if (e > worst) worst = e, at = x;
  }
  printf("exp   over [-708, 709]: max error %.2f ulp (at %.17g)\n", worst, at);
  CHECK(worst <= 2.0);
  CHECK(vm_exp(0.0) == 1.0 && vm_exp(-1000.0) > 0.0 && isfinite(vm_exp(1000.0)) && isnan(vm_exp(NAN)));

  /* log: every positive normal double's bit pattern range, evenly */
  const uint64_t lo = 0x0010000000000000u, hi = 0x7fefffffffffffffu;
  worst = 0.0;
  for (int64_t i = 0; i <= samples; i++) {
    double x = from_bits(lo + (hi - lo) / (uint64_t)samples * (uint64_t)i);
    double e = ulps(vm_log(x), log(x));
    if (e > worst) worst = e, at = x;
  }
  /* and densely around 1, where log x is small */
  for (int64_t i = -samples / 2; i <= samples / 2; i++) {
    double x = 1.0 + 0.5 * (double)i / (double)samples;
    double e = ulps(vm_log(x), log(x));
    if (e > worst) worst = e, at = x;
  }
  printf("log   over the positive normal doubles: max error %.2f ulp (at %.17g)\n", worst, at);
  CHECK(worst <= 2.0);
  CHECK(vm_log(1.0) == 0.0);

  worst = 0.0;
  for (int64_t i = 0; i <= samples; i++) {
    double t = ldexp(1.0, -60) * pow(2.0, 60.0 * (double)i / (double)samples); /* 2^-60 .. 1 */
    double e = ulps(vm_log1p(t), log1p(t));
    if (e > worst) worst = e, at = t;
  }
  printf("log1p over [2^-60, 1]: max error %.2f ulp (at %.17g)\n", worst, at);
  CHECK(worst <= 2.0);

  /* σ and tanh rounded to float, every 64th float (all signs and exponents) */
  double ws = 0.0, wt = 0.0, as = 0.0, atn = 0.0;
  for (uint64_t u = 0; u <= 0xffffffffu; u += 64) {
    uint32_t b = (uint32_t)u;
    float x;
    memcpy(&x, &b, 4);
    if (isnan(x)) continue;
    float s = (float)vm_sigmoid(x), s_ref = (float)(1.0 / (1.0 + exp(-(double)x)));
    float t = (float)vm_tanh(x), t_ref = (float)tanh((double)x);
    double es = float_ulps(s, s_ref), et = float_ulps(t, t_ref);
    if (es > ws) ws = es, as = x;
    if (et > wt) wt = et, atn = x;
  }
  printf("sigmoid as float, every 64th float: max error %.0f ulp (at %.9g)\n", ws, as);
  printf("tanh    as float, every 64th float: max error %.0f ulp (at %.9g)\n", wt, atn);
  CHECK(ws <= 1.0);
  CHECK(wt <= 1.0);
  CHECK(isnan(vm_sigmoid(NAN)) && isnan(vm_tanh(NAN)));
  CHECK(vm_sigmoid(INFINITY) == 1.0 && vm_sigmoid(-INFINITY) >= 0.0 && vm_sigmoid(-INFINITY) < 1e-300);
  CHECK(vm_tanh(INFINITY) == 1.0 && vm_tanh(-INFINITY) == -1.0 && vm_tanh(-0.0) == 0.0);
  return check_summary();
}
