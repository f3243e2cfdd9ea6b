/* Fused parameter updates for the optimisers of lua/blua/optim.lua: one pass over the
 * entries instead of a chain of tensor operations. x, g and the state tensors share a shape. */
#ifndef BLUA_OPTIM_H
#define BLUA_OPTIM_H

#include "blua/tensor.h"

/* Adam (Kingma & Ba) with bias correction for step t >= 1:
 *   m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  x ← x − lr m̂ / (√v̂ + ε) − lr·wd·x. */
int blua_adam_step(blua_tensor *x, const blua_tensor *g, blua_tensor *m, blua_tensor *v, double lr, double beta1,
                   double beta2, double eps, double weight_decay, long t, blua_err *err);

/* The same step on n tensors at once (x[i], g[i], m[i], v[i] share a shape): the entries of
 * all of them go to the threads as one run, so a network's step is one hand-off. */
int blua_adam_steps(int n, blua_tensor *const *x, const blua_tensor *const *g, blua_tensor *const *m,
                    blua_tensor *const *v, double lr, double beta1, double beta2, double eps, double weight_decay,
                    long t, blua_err *err);

/* The same step on the gradients g[i] + g2[i], added as blua_tensors_accumulate adds them (the
 * bits of adding first and stepping after), without writing the sum: for a batch of two row
 * shares whose second share's gradients are in g2 (blua_backprop_batch_unsummed). A tensor
 * that is a view gets the sum written into g[i] first. */
int blua_adam_steps_sum(int n, blua_tensor *const *x, const blua_tensor *const *g, const blua_tensor *const *g2,
                        blua_tensor *const *m, blua_tensor *const *v, double lr, double beta1, double beta2, double eps,
                        double weight_decay, long t, blua_err *err);

/* SGD with momentum μ (Nesterov when nesterov != 0) and weight decay:
 *   d = g + wd x;  buf ← μ buf + d;  x ← x − lr (nesterov ? d + μ buf : buf). */
int blua_sgd_step(blua_tensor *x, const blua_tensor *g, blua_tensor *buf, double lr, double momentum,
                  int nesterov, double weight_decay, blua_err *err);

#endif
