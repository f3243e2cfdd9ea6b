/* Indexing by position lists and masks on tensors (runtime/tensor_index.c): Torch7's indexFill,
 * indexCopy, indexAdd, maskedFill, maskedSelect, maskedCopy, gather and scatter.
 *
 * Dimensions and positions are 0-based here (the binding turns Lua's 1-based ones into these),
 * except inside index tensors of gather and scatter, which hold Lua's 1-based positions as
 * integral floats. A mask is a float tensor of 0/1 values with as many elements as t, read in its
 * own row-major order (its shape need not be t's). Every function checks all its input (sizes,
 * positions, mask values, counts) before it writes anything, so a failed call leaves t as it was.
 * A source, mask or index that shares memory with the tensor written is copied first, so the
 * result is the one of a separate copy. */
#ifndef BLUA_TENSOR_INDEX_H
#define BLUA_TENSOR_INDEX_H

#include "blua/tensor.h"

/* The slices idx[0..n) of t along dimension d set to v; repeats are harmless. */
int blua_tensor_index_fill(blua_tensor *t, int d, const int64_t *idx, int64_t n, float v, blua_err *err);
/* Slice idx[k] of t along d gets slice k of src (src: t's shape with n along d); for a repeated
 * position the last k wins. */
int blua_tensor_index_copy(blua_tensor *t, int d, const int64_t *idx, int64_t n, const blua_tensor *src,
                           blua_err *err);
/* The same, adding slice k of src to slice idx[k] of t: repeated positions accumulate, in order. */
int blua_tensor_index_add(blua_tensor *t, int d, const int64_t *idx, int64_t n, const blua_tensor *src,
                          blua_err *err);

/* How many entries of mask are 1, or -1 with an error when an entry is neither 0 nor 1. */
int64_t blua_tensor_mask_count(const blua_tensor *mask, blua_err *err);
/* The entries of t where mask is 1 set to v. */
int blua_tensor_masked_fill(blua_tensor *t, const blua_tensor *mask, float v, blua_err *err);
/* A new 1-D tensor of t's entries where mask is 1, in t's row-major order. */
blua_tensor *blua_tensor_masked_select(const blua_tensor *t, const blua_tensor *mask, blua_err *err);
/* The entries of t where mask is 1, in row-major order, take src's first entries in its row-major
 * order (src has at least as many entries as the mask has ones; any shape). */
int blua_tensor_masked_copy(blua_tensor *t, const blua_tensor *mask, const blua_tensor *src, blua_err *err);

/* A new tensor shaped as index (t's dimension count, t's sizes except along d) with
 * out[..., i_d, ...] = t[..., index[..., i_d, ...] - 1, ...]: along d, the positions come from
 * index (1-based, integral, in 1..t->size[d]). */
blua_tensor *blua_tensor_gather(const blua_tensor *t, int d, const blua_tensor *index, blua_err *err);
/* The inverse: t[..., index[p] - 1, ...] = src[p] for every position p of index (src has index's
 * sizes, or more along d; only index's part is read). Positions repeated along one line of d:
 * the last in that line wins. */
int blua_tensor_scatter(blua_tensor *t, int d, const blua_tensor *index, const blua_tensor *src, blua_err *err);
/* The same with the one value v. */
int blua_tensor_scatter_fill(blua_tensor *t, int d, const blua_tensor *index, float v, blua_err *err);

#endif
