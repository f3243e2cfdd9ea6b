/* Back-propagation of one mini-batch for a stack of affine layers with built-in activations,
 * with the samples split into blocks that run side by side on the OpenMP threads. */
#ifndef BLUA_BACKPROP_H
#define BLUA_BACKPROP_H

#include "blua/lifted.h"
#include "blua/op.h"

/* Gradients of scale × the loss summed over the rows of x (targets y, one row per sample):
 * grads[2l], grads[2l + 1] receive those of W and b of layer l (0-based, L layers), *loss the
 * summed loss (the output activation's Bregman penalty: cross-entropy for softmax). Scratch
 * per layer l: Z[l], D[l] (rows x n_l) and, for hidden layers, X[l]. G is no longer used (each
 * derivative is multiplied into D in place) and may be NULL; it stays for existing callers.
 *
 * The rows are split into `parts` fixed blocks; each block runs the whole forward and backward
 * pass on its rows with single-threaded products (a product of 64-wide layers is too small
 * for BLAS to split; inside a parallel region the OpenMP build of OpenBLAS runs each product
 * on the calling thread), the blocks go to the threads, and the blocks' weight gradients are
 * added in block order (block 0 writes into grads, block p > 0 into spare[(p - 1) 2L + i], tensors
 * shaped like grads that the caller keeps across batches; NULL when parts is 1). The result
 * depends on `parts`, never on the thread count. */
int blua_backprop_batch(int L, const blua_lifted_layer *layers, const blua_tensor *x, const blua_tensor *y,
                        blua_tensor *const *Z, blua_tensor *const *X, blua_tensor *const *D, blua_tensor *const *G,
                        double scale, int parts, blua_tensor *const *grads, blua_tensor *const *spare, double *loss,
                        blua_err *err);

/* The same with L1 terms α_l ‖σ_l(z_l)‖₁ on the hidden activations added to the loss (per
 * sample, like the loss; docs/design.md, "L1 penalties on auxiliary variables"): l1 is NULL or
 * holds L - 1 weights (l1[l] for hidden layer l + 1, 0: none). Their subgradient α sign(x)
 * joins each delta before the activation's derivative (blua_l1_subgradient_add). */
int blua_backprop_batch_l1(int L, const blua_lifted_layer *layers, const double *l1, const blua_tensor *x,
                           const blua_tensor *y, blua_tensor *const *Z, blua_tensor *const *X, blua_tensor *const *D,
                           blua_tensor *const *G, double scale, int parts, blua_tensor *const *grads,
                           blua_tensor *const *spare, double *loss, blua_err *err);

/* blua_backprop_batch_l1 for a caller that adds the shares' gradients itself as it steps: with
 * exactly two shares (after parts is capped at the rows), share 1's gradients are left in
 * spare[0 .. 2L) instead of being added into grads, and *unsummed is set to 1 (then
 * blua_adam_steps_sum with g2 = spare gives the bits of the summed step); otherwise it adds
 * them as blua_backprop_batch_l1 does and *unsummed is 0. */
int blua_backprop_batch_unsummed(int L, const blua_lifted_layer *layers, const double *l1, const blua_tensor *x,
                                 const blua_tensor *y, blua_tensor *const *Z, blua_tensor *const *X,
                                 blua_tensor *const *D, double scale, int parts, blua_tensor *const *grads,
                                 blua_tensor *const *spare, double *loss, int *unsummed, blua_err *err);

/* The same for a network of operators (blua/op.h): layer l is the operator ops[l] followed by
 * acts[l]; its parameters are params[off_l], ..., params[off_l + n_l - 1] with n_l =
 * blua_op_nparams(ops[l]) and off_l the sum of the earlier layers' counts, and its gradients
 * go to grads at the same places. Z, X, D, G as above (rows x the layer's output size). Part
 * p > 0 runs on ops[p L + l], operators of the same shapes with workspaces of their own
 * (blua_op_clone), so ops holds parts x L operators. As above, the result depends on `parts`,
 * never on the thread count. */
int blua_backprop_ops(int L, blua_op *const *ops, blua_tensor *const *params, const blua_act *const *acts,
                      const blua_tensor *x, const blua_tensor *y, blua_tensor *const *Z, blua_tensor *const *X,
                      blua_tensor *const *D, blua_tensor *const *G, double scale, int parts,
                      blua_tensor *const *grads, double *loss, blua_err *err);

/* blua_backprop_ops with L1 terms on the hidden activations, l1 as for blua_backprop_batch_l1. */
int blua_backprop_ops_l1(int L, blua_op *const *ops, blua_tensor *const *params, const blua_act *const *acts,
                         const double *l1, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *Z,
                         blua_tensor *const *X, blua_tensor *const *D, blua_tensor *const *G, double scale, int parts,
                         blua_tensor *const *grads, double *loss, blua_err *err);

/* The scratch space of one batch size for blua_backprop_epoch_run: the buffers the batch's
 * rows and targets are gathered into, and Z, X, D as for blua_backprop_batch. */
typedef struct {
  blua_tensor *xb, *yb;
  blua_tensor *const *Z, *const *X, *const *D;
} blua_backprop_workspace;

/* An epoch of back-propagation with Adam for blua_backprop_epoch_run: batch b (0-based) is rows
 * perm[b batch ...] of x and y (the last batch has last_rows rows), split into `parts` row
 * shares as blua_backprop_batch does (into grads, with spare), followed by Adam over params with
 * gradients grads (the same tensors, nparams of them), moments m, v, rate lr[b] and step count
 * t0 + b + 1; l1 is NULL or the L1 weights of blua_backprop_batch_l1. ws[0] serves full
 * batches, ws[1] a shorter last one. `gathered` is the batch whose rows were gathered (or
 * posted to the team) last, -1 at first; the runs keep it. */
typedef struct {
  int L;
  const blua_lifted_layer *layers;
  const blua_tensor *x, *y;
  const int64_t *perm;
  int64_t batches, batch, last_rows;
  int parts;
  blua_backprop_workspace ws[2];
  blua_tensor *const *grads, *const *spare;
  int nparams;
  blua_tensor *const *params, *const *m, *const *v;
  const double *lr;
  double beta1, beta2, eps, weight_decay;
  long t0;
  const double *l1;
  int64_t gathered;
} blua_backprop_epoch;

/* Batches from..to-1 of e, the same arithmetic as the training loop's batch steps and Adam
 * calls; the next batch's rows are gathered on the thread team while a batch finishes. Adds
 * each batch's mean loss to *loss_sum. *stopped is -1, or the batch at which it stopped: with
 * BLUA_OK when that batch's loss was NaN or +Inf (in *bad_loss, not added), with BLUA_ERROR on
 * an error (in err). Posted work is finished before it returns early. */
int blua_backprop_epoch_run(blua_backprop_epoch *e, int64_t from, int64_t to, double *loss_sum, int64_t *stopped,
                            double *bad_loss, blua_err *err);

#endif
