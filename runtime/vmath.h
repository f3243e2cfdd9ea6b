/* Private to the activation kernels and the elementwise maps: e^x, log x, σ and tanh in
 * double, written without branches or table look-ups so that loops calling them vectorise
 * (libm's exp and log are calls the compiler cannot vectorise without -ffast-math). Each is
 * accurate to about one unit in the last place of a double (tests/c/test_vmath.c measures it
 * against libm), so a float result computed from them is the correctly rounded float nearly
 * always.
 *
 * exp: x = k ln2 + r with |r| <= ln2/2 (ln2 split in two so k ln2 is exact), e^r by its Taylor
 * polynomial of degree 13 (truncation below 1e-17 relative), times 2^k built in the exponent
 * bits. Arguments are clamped to [-708, 709], where e^x is a normal double.
 * expm1: the same reduction, e^r − 1 = r + r² (1/2 + r/6 + ...) to degree 13 so that it keeps
 * its relative accuracy near 0, then 2^k (e^r − 1) + (2^k − 1); for x <= 709.
 * log: x = 2^e m with m in [√½, √2), log m = 2 atanh f with f = (m − 1)/(m + 1), |f| <= 0.172,
 * by the odd series of atanh up to f^23. For positive normal doubles (every float but 0 is
 * one once widened); callers choose the value at 0 themselves. */
#ifndef BLUA_VMATH_H
#define BLUA_VMATH_H

#include <stdint.h>
#include <string.h>

#define VM_INLINE static inline __attribute__((always_inline))

VM_INLINE double vm_from_bits(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

VM_INLINE uint64_t vm_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

/* ln 2 = VM_LN2_HI + VM_LN2_LO; VM_LN2_HI has 32 trailing zero bits, so k VM_LN2_HI is exact. */
#define VM_LN2_HI 6.93147180369123816490e-01
#define VM_LN2_LO 1.90821492927058770002e-10
#define VM_SHIFTER 0x1.8p52 /* adding it rounds to an integer, kept in the low mantissa bits */

/* The shared start of e^x and e^x − 1: x = k ln2 + r, 2^k into *scale, r into *r, and the Taylor
 * polynomial's coefficients from 1/13! down to 1/2 summed by Horner's rule in r. */
VM_INLINE double vm_exp_start(double x, double *scale, double *r) {
  x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x); /* NaN stays NaN */
  double t = x * 1.4426950408889634074 + VM_SHIFTER;
  double k = t - VM_SHIFTER;
  double rr = (x - k * VM_LN2_HI) - k * VM_LN2_LO;
  double p = 1.0 / 6227020800.0;                     /* 1/13! */
  p = p * rr + 1.0 / 479001600.0;
  p = p * rr + 1.0 / 39916800.0;
  p = p * rr + 1.0 / 3628800.0;
  p = p * rr + 1.0 / 362880.0;
  p = p * rr + 1.0 / 40320.0;
  p = p * rr + 1.0 / 5040.0;
  p = p * rr + 1.0 / 720.0;
  p = p * rr + 1.0 / 120.0;
  p = p * rr + 1.0 / 24.0;
  p = p * rr + 1.0 / 6.0;
  p = p * rr + 0.5;
  *scale = vm_from_bits((vm_bits(t) - vm_bits(VM_SHIFTER) + 1023u) << 52); /* 2^k */
  *r = rr;
  return p;
}

VM_INLINE double vm_exp(double x) {
  double s, r, p = vm_exp_start(x, &s, &r);
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * s;
}

VM_INLINE double vm_expm1(double x) {
  double s, r, p = vm_exp_start(x, &s, &r);
  p = r + r * r * p; /* e^r − 1 */
  return s * p + (s - 1.0); /* s − 1 exact for |k| <= 53; below, e^x − 1 rounds to −1 anyway */
}

VM_INLINE double vm_log(double x) {
  uint64_t u = vm_bits(x);
  uint64_t biased = u >> 52;
  double m = vm_from_bits((u & 0x000fffffffffffffu) | 0x3ff0000000000000u); /* in [1, 2) */
  int big = m > 1.4142135623730950488;
  m = big ? 0.5 * m : m;
  /* the exponent as a double without an integer conversion (which SSE2 lacks for 64 bits) */
  double e = vm_from_bits(0x4330000000000000u | biased) - 0x1.0p52 - 1023.0 + (big ? 1.0 : 0.0);
  double f = (m - 1.0) / (m + 1.0), s = f * f;
  double p = 1.0 / 23.0;
  p = p * s + 1.0 / 21.0;
  p = p * s + 1.0 / 19.0;
  p = p * s + 1.0 / 17.0;
  p = p * s + 1.0 / 15.0;
  p = p * s + 1.0 / 13.0;
  p = p * s + 1.0 / 11.0;
  p = p * s + 1.0 / 9.0;
  p = p * s + 1.0 / 7.0;
  p = p * s + 1.0 / 5.0;
  p = p * s + 1.0 / 3.0;
  double logm = 2.0 * f + 2.0 * f * s * p;
  return e * VM_LN2_HI + (logm + e * VM_LN2_LO);
}

/* log(1 + t) for t > −1, keeping the digits of t that 1 + t rounds away. */
VM_INLINE double vm_log1p(double t) {
  double u = 1.0 + t;
  return vm_log(u) - ((u - 1.0) - t) / u;
}

VM_INLINE double vm_sigmoid(double z) { return 1.0 / (1.0 + vm_exp(-z)); }

/* tanh |z| = −m/(2 + m) with m = e^{−2|z|} − 1: relative accuracy near 0 too, and ±1 at ±∞. */
VM_INLINE double vm_tanh(double z) {
  double m = vm_expm1(-2.0 * __builtin_fabs(z));
  return __builtin_copysign(-m / (2.0 + m), z);
}

/* ---- float in, double inside ----
 * The elementwise maps t:exp(), t:log(), t:log1p(), t:tanh() and t:sigmoid() (tensor_map.c):
 * the double functions above on the widened float, rounded once to float. Their error of a few
 * units in a double's last place moves the float only where the exact value lies that close to
 * the midpoint between two floats, which a handful of the 2^32 floats do
 * (tests/c/test_map_accuracy.c walks them against libm's double functions). The special values
 * are chosen by selects, and a NaN comes back as x + x (quietened, sign and payload kept), so
 * every vector width gives the same bits. */

VM_INLINE float vm_expf(float x) { return x != x ? x + x : (float)vm_exp(x); } /* ±∞ by the clamp */

/* vm_log and vm_log1p of an argument outside their domain give some number (bit arithmetic,
 * nothing traps) that the selects after them replace; a select on the argument instead made
 * these loops 1.6 times slower. */
VM_INLINE float vm_logf(float x) {
  const float inf = __builtin_inff();
  float r = (float)vm_log(x); /* every positive float is a positive normal double */
  r = x == 0.0f ? -inf : r;
  r = x == inf ? x : r;
  r = x < 0.0f ? __builtin_nanf("") : r;
  return x != x ? x + x : r;
}

VM_INLINE float vm_log1pf(float x) {
  const float inf = __builtin_inff();
  float r = (float)vm_log1p(x);
  r = x == 0.0f ? x : r; /* −0 stays −0 */
  r = x == -1.0f ? -inf : r;
  r = x == inf ? x : r;
  r = x < -1.0f ? __builtin_nanf("") : r;
  return x != x ? x + x : r;
}

VM_INLINE float vm_tanhf(float x) { return x != x ? x + x : (float)vm_tanh(x); }

VM_INLINE float vm_sigmoidf(float x) { return x != x ? x + x : (float)vm_sigmoid(x); }

/* ---- single precision ----
 * The same functions in float, for the activation kernels: twice the lanes of the double ones
 * and half the polynomial degree, so 3-4 times cheaper per entry; accurate to a unit or two in
 * the last place of a float (tests/c/test_vmath.c measures them against libm on a dense sweep
 * of every float range, denormals, infinities and NaN included). None of them assumes FMA: the
 * function clones for AVX-512, AVX2 and the baseline give the same bits.
 *
 * exp: as above with 2^k applied in two halves, so that results down to the denormals (x down
 * to about -103.97) are rounded once; degree-7 Taylor polynomial (truncation 5e-9 relative).
 * expm1: the same reduction, e^r - 1 by its own series (degree 8) so that it keeps its relative
 * accuracy near 0; for x <= 88.
 * log: as above, series of atanh up to f^9; denormals scaled by 2^23 first; log 0 = -inf,
 * log inf = inf, NaN for x < 0 or NaN. */

VM_INLINE float vmf_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

VM_INLINE uint32_t vmf_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* ln 2 = VMF_LN2_HI + VMF_LN2_LO; VMF_LN2_HI has 9 trailing zero bits, so k VMF_LN2_HI is exact
 * for |k| < 256. */
#define VMF_LN2_HI 0x1.62e4p-1f
#define VMF_LN2_LO 0x1.7f7d1cp-20f
#define VMF_SHIFTER 0x1.8p23f

/* x = k ln2 + r, |r| <= ln2/2; returns r and k (as the float k and the integer *ki). */
VM_INLINE float vmf_reduce(float x, float *k, int32_t *ki) {
  float t = x * 1.44269504088896341f + VMF_SHIFTER;
  *k = t - VMF_SHIFTER;
  *ki = (int32_t)(vmf_bits(t) - vmf_bits(VMF_SHIFTER));
  return (x - *k * VMF_LN2_HI) - *k * VMF_LN2_LO;
}

VM_INLINE float vmf_pow2(int32_t k) { return vmf_from_bits((uint32_t)(k + 127) << 23); } /* -126 <= k <= 127 */

VM_INLINE float vmf_exp(float x) {
  x = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x); /* NaN stays NaN */
  float k;
  int32_t ki;
  float r = vmf_reduce(x, &k, &ki);
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t k1 = ki / 2; /* -150 <= k <= 128: two exact scalings, the second one rounds */
  return p * vmf_pow2(k1) * vmf_pow2(ki - k1);
}

/* e^x − 1, and e^x itself in *e (accurate also where e^x − 1 rounds to −1), for x <= 88;
 * below −87, e^x is taken at −87. */
VM_INLINE float vmf_expm1_exp(float x, float *e) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float k;
  int32_t ki;
  float r = vmf_reduce(x, &k, &ki);
  float p = 1.0f / 40320.0f;
  p = p * r + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = r + r * r * p; /* e^r - 1 */
  float s = vmf_pow2(ki);
  *e = s * p + s;
  return s * p + (s - 1.0f);
}

VM_INLINE float vmf_expm1(float x) {
  float e;
  return vmf_expm1_exp(x, &e);
}

VM_INLINE float vmf_log(float x) {
  int sub = x < 0x1p-126f;
  uint32_t u = vmf_bits(sub ? x * 0x1p23f : x);
  float m = vmf_from_bits((u & 0x007fffffu) | 0x3f800000u); /* in [1, 2) */
  int big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  float e = (float)((int32_t)(u >> 23) - 127 - (sub ? 23 : 0) + (big ? 1 : 0));
  float f = (m - 1.0f) / (m + 1.0f), s = f * f;
  float p = 1.0f / 9.0f;
  p = p * s + 1.0f / 7.0f;
  p = p * s + 1.0f / 5.0f;
  p = p * s + 1.0f / 3.0f;
  float logm = 2.0f * f + 2.0f * f * s * p;
  float r = e * VMF_LN2_HI + (logm + e * VMF_LN2_LO);
  r = x == 0.0f ? -__builtin_inff() : r;
  r = x == __builtin_inff() ? x : r;
  r = x < 0.0f ? __builtin_nanf("") : r;
  return x != x ? x : r;
}

/* log(1 + t) for t >= 0, keeping the digits of t that 1 + t rounds away. */
VM_INLINE float vmf_log1p(float t) {
  float u = 1.0f + t, l = vmf_log(u) - ((u - 1.0f) - t) / u;
  return t == __builtin_inff() ? t : l;
}

/* σ(z) from e^{-|z|}, so that nothing overflows and σ keeps its denormals far left. */
VM_INLINE float vmf_sigmoid(float z) {
  float e = vmf_exp(-__builtin_fabsf(z));
  return (z >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* tanh |z| = -m/(2 + m) with m = e^{-2|z|} - 1: relative accuracy near 0 too. */
VM_INLINE float vmf_tanh(float z) {
  float m = vmf_expm1(-2.0f * __builtin_fabsf(z));
  return __builtin_copysignf(-m / (2.0f + m), z);
}

#endif
