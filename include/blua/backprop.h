/* Back-propagation of one mini-batch for a stack of affine layers with built-in activations,
 * with the samples split into blocks that run side by side on the OpenMP threads. */
#ifndef BLUA_BACKPROP_H
#define BLUA_BACKPROP_H

#include "blua/lifted.h"

/* Gradients of scale × the loss summed over the rows of x (targets y, one row per sample):
 * grads[2l], grads[2l + 1] receive those of W and b of layer l (0-based, L layers), *loss the
 * summed loss (the output activation's Bregman penalty: cross-entropy for softmax). Scratch
 * per layer l: Z[l], D[l], G[l] (rows x n_l) and, for hidden layers, X[l].
 *
 * The rows are split into `parts` fixed blocks; each block runs the whole forward and backward
 * pass on its rows with single-threaded products (a product of 64-wide layers is too small
 * for BLAS to split; inside a parallel region the OpenMP build of OpenBLAS runs each product
 * on the calling thread), the blocks go to the threads, and the blocks' weight gradients are
 * added in block order. The result depends on `parts`, never on the thread count. */
int blua_backprop_batch(int L, const blua_lifted_layer *layers, const blua_tensor *x, const blua_tensor *y,
                        blua_tensor *const *Z, blua_tensor *const *X, blua_tensor *const *D, blua_tensor *const *G,
                        double scale, int parts, blua_tensor *const *grads, double *loss, blua_err *err);

#endif
