/* The vectorisable exp, expm1, log, log1p, σ and tanh of runtime/vmath.h against libm, over
 * their whole ranges: error in units in the last place (ulp) of the exact result, the worst
 * case printed. Double versions: exp and expm1 over [-708, 709] (expm1 also densely near 0) and
 * log over every binade of the positive normal doubles, each sampled evenly in bit patterns; σ
 * and tanh rounded to float over every 64th float. Float versions: against libm in double rounded to float, over every 127th float
 * bit pattern (all signs, binades, denormals, infinities and NaNs), every float where exp
 * reaches the denormals or overflows, and every 7th denormal for log. */
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

/* The float functions and their references (libm in double, rounded to float). */
enum { F_EXP, F_EXPM1, F_LOG, F_LOG1P, F_SIGMOID, F_TANH, F_COUNT };
static const char *const f_names[F_COUNT] = {"expf", "expm1f", "logf", "log1pf", "sigmoidf", "tanhf"};
static const double f_limits[F_COUNT] = {1, 2, 2, 2, 2, 2};

static float f_ours(int f, float x) {
  switch (f) {
    case F_EXP: return vmf_exp(x);
    case F_EXPM1: return vmf_expm1(x);
    case F_LOG: return vmf_log(x);
    case F_LOG1P: return vmf_log1p(x);
    case F_SIGMOID: return vmf_sigmoid(x);
    default: return vmf_tanh(x);
  }
}

static float f_ref(int f, float x) {
  double d = x;
  switch (f) {
    case F_EXP: return (float)exp(d);
    case F_EXPM1: return (float)expm1(d);
    case F_LOG: return (float)log(d);
    case F_LOG1P: return (float)log1p(d);
    case F_SIGMOID: return (float)(1.0 / (1.0 + exp(-d)));
    default: return (float)tanh(d);
  }
}

/* Where each function is defined here: expm1 for x <= 88, log1p for x >= 0 (its callers'
 * ranges); NaN in, NaN out everywhere. */
static int f_domain(int f, float x) {
  if (f == F_EXPM1) return !(x > 88.0f);
  if (f == F_LOG1P) return !(x < 0.0f);
  return 1;
}

static double worst[F_COUNT], worst_at[F_COUNT];

static void f_check(float x) {
  for (int f = 0; f < F_COUNT; f++) {
    if (!f_domain(f, x)) continue;
    float got = f_ours(f, x), want = f_ref(f, x);
    double e = isnan(want) ? (isnan(got) ? 0.0 : INFINITY) : float_ulps(got, want);
    if (e > worst[f]) worst[f] = e, worst_at[f] = x;
  }
}

static void test_float_versions(void) {
  for (uint64_t u = 0; u <= 0xffffffffu; u += 127) f_check(float_of_bits((uint32_t)u));
  const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x007fffffu, 0x00800000u, 0x7f7fffffu,
                               0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x3f800000u, 0xbf800000u};
  for (int i = 0; i < (int)(sizeof specials / sizeof *specials); i++) f_check(float_of_bits(specials[i]));
  /* every float where e^x is denormal or near overflow, and every 7th positive denormal */
  for (float x = -104.0f; x <= -87.0f; x = nextafterf(x, INFINITY)) f_check(x);
  for (float x = 88.0f; x <= 89.0f; x = nextafterf(x, INFINITY)) f_check(x);
  for (uint32_t u = 1; u < 0x00800000u; u += 7) f_check(float_of_bits(u));
  for (int f = 0; f < F_COUNT; f++) {
    printf("%-8s (float) max error %.0f ulp (at %.9g)\n", f_names[f], worst[f], worst_at[f]);
    CHECK(worst[f] <= f_limits[f]);
  }
  CHECK(vmf_exp(-INFINITY) == 0.0f && vmf_exp(INFINITY) == INFINITY && isnan(vmf_exp(NAN)));
  CHECK(vmf_log(0.0f) == -INFINITY && vmf_log(INFINITY) == INFINITY && isnan(vmf_log(-1.0f)) && vmf_log(1.0f) == 0.0f);
  CHECK(vmf_sigmoid(INFINITY) == 1.0f && vmf_sigmoid(-INFINITY) == 0.0f && vmf_sigmoid(0.0f) == 0.5f);
  CHECK(vmf_tanh(INFINITY) == 1.0f && vmf_tanh(-INFINITY) == -1.0f && vmf_tanh(-0.0f) == 0.0f && signbit(vmf_tanh(-0.0f)));
  CHECK(vmf_expm1(-INFINITY) == -1.0f && vmf_expm1(0.0f) == 0.0f);
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

  /* expm1 over the same range, and densely near 0 where it keeps its relative accuracy */
  worst = 0.0;
  for (int64_t i = 0; i <= samples; i++) {
    double x = -708.0 + 1417.0 * (double)i / (double)samples;
    double e = ulps(vm_expm1(x), expm1(x));
    if (e > worst) worst = e, at = x;
  }
  for (int64_t i = 0; i <= samples; i++) {
    double x = (i % 2 ? -1.0 : 1.0) * ldexp(1.0, -60) * pow(2.0, 60.0 * (double)i / (double)samples); /* ±2^-60 .. 1 */
    double e = ulps(vm_expm1(x), expm1(x));
    if (e > worst) worst = e, at = x;
  }
  printf("expm1 over [-708, 709] and ±[2^-60, 1]: max error %.2f ulp (at %.17g)\n", worst, at);
  CHECK(worst <= 2.0);
  CHECK(vm_expm1(0.0) == 0.0 && vm_expm1(-INFINITY) == -1.0 && isnan(vm_expm1(NAN)) && vm_expm1(1e-300) == 1e-300);

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
  test_float_versions();
  return check_summary();
}
