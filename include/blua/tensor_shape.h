/* Shapes and small linear algebra on tensors (runtime/tensor_shape.c): Torch7's addcmul,
 * addcdiv, addmv, addr, bmm, baddbmm, addbmm, range, linspace, logspace, diag, trace, tril, triu, repeatTensor and
 * equal. Every function works on any view (transposed, narrowed, permuted); dimensions and
 * diagonals are 0-based counts here as in the rest of the core. */
#ifndef BLUA_TENSOR_SHAPE_H
#define BLUA_TENSOR_SHAPE_H

#include "blua/tensor.h"

/* t += v·a·b (divide = 0) or t += v·a/b (divide = 1) entry by entry, each entry computed in
 * double and rounded once. a and b must have t's shape; either may share memory with t (an
 * overlap other than t itself is copied first). */
int blua_tensor_addcmul(blua_tensor *t, double v, const blua_tensor *a, const blua_tensor *b, int divide,
                        blua_err *err);

/* y = beta·y + alpha·m·x for a 2-D m (r x c), 1-D x (c) and 1-D y (r), through blua_mm (BLAS).
 * With beta = 0 the old y is not read (NaN in it does not come through). y may share memory
 * with m or x: the product is then made aside and copied. */
int blua_addmv(blua_tensor *y, float beta, float alpha, const blua_tensor *m, const blua_tensor *x, blua_err *err);
/* a = beta·a + alpha·x·yᵀ for 1-D x (r), y (c) and a 2-D a (r x c); sharing as blua_addmv. */
int blua_addr(blua_tensor *a, float beta, float alpha, const blua_tensor *x, const blua_tensor *y, blua_err *err);

/* Batched products through blua_mm, one 2-D product per batch entry, for a (n x p x q) and
 * b (n x q x r). sum = 0 (bmm, baddbmm): c is n x p x r and c[i] = beta·c[i] + alpha·a[i]·b[i].
 * sum = 1 (addbmm): c is p x r and c = beta·c + alpha·Σ_i a[i]·b[i]. With beta = 0 the old c is
 * not read. c may share memory with a or b: the products are then made aside and copied. */
int blua_baddbmm(blua_tensor *c, float beta, float alpha, const blua_tensor *a, const blua_tensor *b, int sum,
                 blua_err *err);

/* Torch7's range: a, a + step, ... up to and including b, floor((b - a)/step) + 1 entries, the
 * k-th computed in double as a + k·step. step must be non-zero with the sign of b - a (a = b
 * gives one entry); more than 2^34 entries, NaN or infinite bounds are errors. */
blua_tensor *blua_tensor_range(double a, double b, double step, blua_err *err);
/* n points from a to b evenly spaced (the last one b), or 10^those points when log10 is set.
 * n >= 2, or n = 1 with a = b (Torch7); a and b finite. */
blua_tensor *blua_tensor_linspace(double a, double b, int64_t n, int log10, blua_err *err);

/* diag of a 1-D t: a square matrix of size n + |k| with t on diagonal k (k > 0 above the main
 * one, k < 0 below). Of a 2-D t: diagonal k as a new 1-D tensor (empty when |k| equals the
 * width or height it steps over; further out is an error). */
blua_tensor *blua_tensor_diag(const blua_tensor *t, int64_t k, blua_err *err);
/* The sum of the main diagonal of a 2-D t, in double. */
int blua_tensor_trace(const blua_tensor *t, double *out, blua_err *err);
/* A new copy of the 2-D t with the entries above diagonal k (upper = 0: tril) or below it
 * (upper = 1: triu) set to 0. */
blua_tensor *blua_tensor_tri(const blua_tensor *t, int64_t k, int upper, blua_err *err);

/* t tiled reps[d] times along each of n dimensions (n >= t->dim; t is seen with n - dim leading
 * sizes 1): a new contiguous tensor of sizes size[d]·reps[d]. */
blua_tensor *blua_tensor_repeat(const blua_tensor *t, int n, const int64_t *reps, blua_err *err);

/* 1 when a and b have the same shape and every pair of entries compares equal (NaN is not
 * equal to NaN), else 0. */
int blua_tensor_equal(const blua_tensor *a, const blua_tensor *b);

#endif
