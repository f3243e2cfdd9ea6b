/* Energies of the proximal activations (docs/design.md, "Activations as proximal maps"): Σ Ψ, Σ Φ*, the Bregman penalty of
 * the lifted Bregman model and the quadratic penalty of the classical lifted model.
 * Same conventions as blua/prox.h; every sum runs over all entries (softmax: over rows) and is
 * accumulated in double. Results are written to *result. */
#ifndef BLUA_PENALTY_H
#define BLUA_PENALTY_H

#include "blua/prox.h"

/* Σ Ψ(u); +INFINITY when some entry (softmax: some row) lies off dom Ψ. Softmax rows count as
 * on the simplex when all entries are >= 0 and |Σ u − 1| <= BLUA_SIMPLEX_TOL. */
#define BLUA_SIMPLEX_TOL 1e-4
int blua_act_psi(const blua_act *act, const blua_tensor *u, double *result, blua_err *err);

/* Σ Φ*(z), Φ* = ½‖·‖² − M_Ψ, in forms without cancellation: softplus for sigmoid, log cosh
 * for tanh, logsumexp per row for softmax. */
int blua_act_conj(const blua_act *act, const blua_tensor *z, double *result, blua_err *err);

/* Σ B_Ψ(y, z) = Σ [Φ(y) + Φ*(z) − ⟨y, z⟩] >= Σ ½(y − σ(z))², zero at y = σ(z); +INFINITY when
 * y is off dom Ψ. Evaluated as a sum of non-negative terms (e.g. a Bernoulli KL divergence for
 * sigmoid and tanh, ½(y − c)² + (y − c)(c − z) for clip). For softmax and one-hot rows y it is
 * the softmax cross-entropy Σ_rows [logsumexp(z) − z_label]. */
int blua_act_bregman(const blua_act *act, const blua_tensor *y, const blua_tensor *z, double *result,
                     blua_err *err);

/* out = ∇_z B_Ψ(y, z) = σ(z) − y (softmax per row). out may alias y or z. */
int blua_act_bregman_grad(const blua_act *act, blua_tensor *out, const blua_tensor *y, const blua_tensor *z,
                          blua_err *err);

/* (γ/2) ‖y − z‖². */
int blua_quadratic_penalty(const blua_tensor *y, const blua_tensor *z, double gamma, double *result,
                           blua_err *err);

#endif
