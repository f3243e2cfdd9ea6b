/* The batch kernels of the lifted trainers (docs/design.md, "Training formulations" and "The X-step"), for the Bregman and the
 * classical (quadratic penalty) formulations. Rows are samples; for layer l,
 *   Z_l = X_{l-1} W_l + 1 b_l^T,  W_l is n_{l-1} x n_l,  b_l is 1 x n_l.
 * GEMMs go through BLAS outside any parallel region; the residuals and the prox run in
 * OpenMP loops over samples (blua/prox.h). */
#ifndef BLUA_LIFTED_H
#define BLUA_LIFTED_H

#include "blua/prox.h"

typedef enum blua_penalty_kind {
  BLUA_PENALTY_BREGMAN,   /* B_Ψ(x_l, Z_l), eq. (2)-(3) of the paper */
  BLUA_PENALTY_QUADRATIC  /* (γ/2)‖x_l − Z_l‖², x_l ∈ C_l, eq. (1) */
} blua_penalty_kind;

/* One affine layer and the activation that follows it. */
typedef struct blua_lifted_layer {
  const blua_act *act;
  const blua_tensor *W;
  const blua_tensor *b;
} blua_lifted_layer;

/* z = x_prev W + 1 b^T (z must be rows x n_out). */
int blua_lifted_affine(blua_tensor *z, const blua_tensor *x_prev, const blua_lifted_layer *layer, blua_err *err);

/* r = the gradient, with respect to z = x W + b, of the term that couples x to the next
 * variable x_next (the next hidden variable, or the targets when is_output):
 *   Bregman or output:   r = σ(z) − x_next
 *   quadratic, hidden:   r = γ (z − x_next)
 * z is overwritten by r. */
int blua_lifted_residual(blua_penalty_kind kind, const blua_act *act, int is_output, double gamma,
                         blua_tensor *z, const blua_tensor *x_next, blua_err *err);

/* One X-step for hidden layer l on all samples of a batch, in place on x:
 *   Bregman:   x ← prox_{μΦ_l}( x + μ (z − g) )
 *   quadratic: x ← Π_{C_l}( x − μ (γ (x − z) + g) )
 * with g = r W_{l+1}^T and r the residual of the next layer (blua_lifted_residual).
 * z = X_{l-1} W_l + 1 b_l^T and zn = x W_{l+1} + 1 b_{l+1}^T come precomputed (blua_lifted_affine),
 * so a sweep reuses the pre-activations of the forward pass; zn is overwritten by the residual.
 * x_next is X_{l+1}, or the targets (one-hot rows) when next_is_output; next_weight scales the
 * next layer's term (the weight of the loss, for the last hidden layer). g: rows x n_l scratch. */
int blua_lifted_xstep(blua_penalty_kind kind, const blua_act *act, const blua_lifted_layer *next,
                      int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn,
                      blua_tensor *x, const blua_tensor *x_next, double mu, double gamma, blua_tensor *g,
                      blua_err *err);

/* Rows per chunk of an X-step: the operands of a chunk of a 64-wide layer stay in the shared cache. */
#define BLUA_XSTEP_CHUNK_ROWS 4096

/* blua_lifted_xstep with wt = W_{l+1}^T made by the caller. It makes views of its operands
 * only for more than 4096 rows (chunks that stay in cache); with at most that many it touches
 * no reference count of a tensor it shares, so it may run inside a parallel region. */
int blua_lifted_xstep_wt(blua_penalty_kind kind, const blua_act *act, const blua_lifted_layer *next,
                         int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn, blua_tensor *x,
                         const blua_tensor *x_next, double mu, double gamma, blua_tensor *g, const blua_tensor *wt,
                         blua_err *err);

/* The same X-steps with an L1 term α‖x‖₁ on the layer's variables (docs/design.md, "L1 penalties
 * on auxiliary variables"): the prox becomes blua_act_xstep_bregman_l1 or
 * blua_act_xstep_lifted_l1 (blua/prox_l1.h); α = 0 is the plain X-step. */
int blua_lifted_xstep_l1(blua_penalty_kind kind, const blua_act *act, double alpha, const blua_lifted_layer *next,
                         int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn, blua_tensor *x,
                         const blua_tensor *x_next, double mu, double gamma, blua_tensor *g, blua_err *err);
int blua_lifted_xstep_l1_wt(blua_penalty_kind kind, const blua_act *act, double alpha, const blua_lifted_layer *next,
                            int next_is_output, double next_weight, const blua_tensor *z, blua_tensor *zn,
                            blua_tensor *x, const blua_tensor *x_next, double mu, double gamma, blua_tensor *g,
                            const blua_tensor *wt, blua_err *err);

/* Gradients of a layer's term with respect to W and b, scaled by `scale` (e.g. 1/batch):
 *   gW = scale X_{l-1}^T r,  gb = scale 1^T r,  r = blua_lifted_residual of this layer,
 * from the precomputed pre-activation z = X_{l-1} W_l + 1 b_l^T, which is overwritten by r.
 * No derivative of any activation is used. */
int blua_lifted_wgrad(blua_penalty_kind kind, const blua_act *act, int is_output, double gamma,
                      const blua_tensor *x_prev, const blua_tensor *x, blua_tensor *z, double scale,
                      blua_tensor *gW, blua_tensor *gb, blua_err *err);

/* blua_lifted_wgrad with xt = X_{l-1}^T made by the caller (no views made: may run inside a
 * parallel region). */
int blua_lifted_wgrad_xt(blua_penalty_kind kind, const blua_act *act, int is_output, double gamma,
                         const blua_tensor *xt, const blua_tensor *x, blua_tensor *z, double scale, blua_tensor *gW,
                         blua_tensor *gb, blua_err *err);

/* The layer's term of the energy at the precomputed pre-activation z: Σ B_Ψ(x, z) (Bregman
 * or output: softmax gives the cross-entropy) or (γ/2)‖x − z‖² (quadratic hidden). */
int blua_lifted_energy(blua_penalty_kind kind, const blua_act *act, int is_output, double gamma,
                       const blua_tensor *x, const blua_tensor *z, double *energy, blua_err *err);

/* ‖W‖₂ by `iters` steps of power iteration on WᵀW. start (NULL, or a tensor of cols(W)
 * entries) is the starting vector when it is non-zero and receives the final unit vector, so
 * a caller tracking a slowly changing W needs only a few steps per call; without it the
 * start is fixed and the result deterministic. NaN when W holds NaN or Inf. */
double blua_spectral_norm(const blua_tensor *W, int iters, blua_tensor *start);

#endif
