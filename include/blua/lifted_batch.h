/* One inner step of lifted training (Bregman or classical) of a mini-batch in one call, for a
 * stack of dense layers or of operators (blua/op.h) with built-in activations: per row share
 * (blua/shares.h) the forward pass, the X-sweeps, the hidden energies and the W-gradients, the
 * shares side by side as tasks of the thread team (blua/team.h). It computes exactly what lua/blua/train/lifted.lua computes with the same
 * kernels share after share (docs/design.md, "Threads and speed"). */
#ifndef BLUA_LIFTED_BATCH_H
#define BLUA_LIFTED_BATCH_H

#include "blua/backprop.h"
#include "blua/lifted.h"
#include "blua/op.h"

typedef struct blua_lifted_batch_opts {
  blua_penalty_kind kind;
  double gamma;     /* γ of the quadratic penalties */
  double beta;      /* the weight of the loss (the output layer's term) */
  double scale;     /* gradients and energies are of scale × the sums over rows (1 / global batch) */
  int forward;      /* 1: start with the forward pass (the first inner step); 0: keep X */
  int nsteps;       /* X-steps in order: hidden layer steps[i] (1..L-1) with step size mu[i] */
  const int *steps;
  const double *mu;
  int energies;     /* 1: the hidden energies after the X-steps */
  const double *l1; /* NULL, or L - 1 weights: α‖X_l‖₁ on hidden layer l is l1[l - 1] (0: none) */
  int *unsummed;    /* NULL, or: with exactly two shares share 2's gradients stay in spare (not added
                       into grads) and *unsummed is 1, else 0; for blua_adam_steps_sum */
} blua_lifted_batch_opts;

/* L layers (layers[l]: W_{l+1}, b_{l+1} and the activation after them, 0-based); x, y: the batch's
 * inputs and targets; X[0..L-2]: the hidden auxiliary variables (kept across calls with
 * forward = 0), Z[0..L-1] and G[0..L-1]: scratch, every one rows x n_l. The rows are cut into
 * `parts` shares. grads[2l], grads[2l + 1] receive the gradients of W and b of layer l (the
 * shares' sums in share order; share p > 0 writes its own into spare[(p - 1) 2L + i], tensors
 * shaped like grads that the caller keeps across batches, NULL when parts is 1); loss[p] the output term Σ B(y, z_L) of share p when forward
 * (before any X-step), energy[p (L - 1) + l] the hidden term of layer l of share p (unscaled,
 * with its L1 term) when opts->energies. A layer with an L1 weight takes the X-step of
 * blua_lifted_xstep_l1; its W-gradient does not change (the term does not depend on W). */
int blua_lifted_batch(int L, const blua_lifted_layer *layers, const blua_tensor *x, const blua_tensor *y,
                      blua_tensor *const *X, blua_tensor *const *Z, blua_tensor *const *G, int parts,
                      const blua_lifted_batch_opts *opts, blua_tensor *const *grads, blua_tensor *const *spare,
                      double *loss, double *energy, blua_err *err);

/* Most shares of a batch of operators (each share runs on operators of its own). */
#define BLUA_LIFTED_MAX_OP_SHARES 64

/* blua_lifted_batch for a network of operators: ops[p L + l] is layer l's operator for share p
 * (parts x L of them, each share's its own: clones of share 0's, blua_op_clone), params every
 * layer's parameters in layer order (blua_op_nparams(ops[l]) each), acts[l] the activation after
 * layer l; grads shaped like params, spare (parts - 1) more such lists, share after share.
 * Z[l], G[l] have the output width of layer l, X[l] too (hidden layers). A dense operator runs
 * the dense kernels above, so a dense network gives the bits of blua_lifted_batch; any other
 * operator its forward, adjoint and wgrad, the X-step of the layer before it as residual,
 * adjoint and prox. 1 <= parts <= BLUA_LIFTED_MAX_OP_SHARES. */
int blua_lifted_batch_ops(int L, blua_op *const *ops, blua_tensor *const *params, const blua_act *const *acts,
                          const blua_tensor *x, const blua_tensor *y, blua_tensor *const *X, blua_tensor *const *Z,
                          blua_tensor *const *G, int parts, const blua_lifted_batch_opts *opts,
                          blua_tensor *const *grads, blua_tensor *const *spare, double *loss, double *energy,
                          blua_err *err);

/* An epoch of lifted training with Adam for blua_lifted_epoch_run: base as for back-prop's
 * (blua/backprop.h; its workspaces' D lists are the scratch G of blua_lifted_batch) with, per
 * batch, `inner` steps of blua_lifted_batch (opts: kind, gamma, beta and l1; the rest is set
 * per call), each followed by Adam at the batch's rate. Before each inner step come the X-step
 * sizes of xsteps sweeps over the hidden layers sweep[0 .. nsweep) (1-based): per entry j the
 * norm s of the next layer's W by 8 warm power-iteration steps from power[j], then
 * mu = mult[j] / max(own[j] + coupling[j] s², 1e-12). energies: the hidden energies of the
 * last inner step are summed per layer. Scratch: steps and mu (xsteps nsweep), loss_parts
 * (parts), energy_parts (parts (L - 1)), energy_batch (L - 1). adam_steps counts the Adam steps
 * taken (the step count of the next is t0 + adam_steps + 1). */
typedef struct {
  blua_backprop_epoch base;
  blua_lifted_batch_opts opts;
  int inner, xsteps, nsweep, energies;
  const int *sweep;
  blua_tensor *const *power;
  const double *mult, *own, *coupling;
  int *steps;
  double *mu, *loss_parts, *energy_parts, *energy_batch;
  long adam_steps;
} blua_lifted_epoch;

/* Why a lifted epoch run stopped early without an error: a batch's loss NaN or +Inf, a hidden
 * layer's energy NaN or +Inf, or the next weights of a layer with no finite norm. */
enum { BLUA_EPOCH_BAD_LOSS = 1, BLUA_EPOCH_BAD_ENERGY, BLUA_EPOCH_NO_NORM };
typedef struct {
  int64_t batch; /* -1: it did not stop */
  int why;       /* BLUA_EPOCH_... (0 with an error) */
  int layer;     /* the layer of an energy (1-based hidden layer) or of weights without a norm */
  double value;  /* the loss or energy */
} blua_lifted_epoch_stop;

/* Batches from..to-1 of e, as blua_backprop_epoch_run does for back-prop: each batch's mean
 * loss (of its first inner step) is added to *loss_sum and, with energies, each hidden layer's
 * to energy_sums[l]; a run that stops says where and why in stop. */
int blua_lifted_epoch_run(blua_lifted_epoch *e, int64_t from, int64_t to, double *loss_sum, double *energy_sums,
                          blua_lifted_epoch_stop *stop, blua_err *err);

#endif
