/* See blua/lifted_batch.h. Tensor reference counts are not atomic, so every view a share needs
 * (its rows of each operand, the transposes, its own gradient tensors) is made before the
 * parallel loop and released after it; inside, the kernels touch only the share's own views
 * and the weights' transposes made here. The steps mirror lua/blua/train/lifted.lua (Batch)
 * one for one, so both compute the same bits. */
#include "blua/lifted_batch.h"

#include <stdlib.h>

#include "blua/shares.h"
#include "blua/team.h"

enum { MAXL = 64 };

/* The views of one share; arrays indexed as in lifted.lua: xs[0] the inputs, xs[1..L-1] the
 * hidden variables, xs[L] the targets; z, g, xt (xs[l-1]ᵀ) for layers 1..L. */
typedef struct {
  blua_tensor *xs[MAXL + 1], *z[MAXL + 1], *g[MAXL + 1], *xt[MAXL + 1], *grads[2 * MAXL];
  int current[MAXL + 1]; /* z[l] = A_l(xs[l-1]) + b_l holds */
  double loss, *energy;
  int status;
  blua_err err;
} share;

static void share_release(share *s, int L) {
  for (int l = 0; l <= L; l++) {
    blua_tensor_release(s->xs[l]);
    blua_tensor_release(s->z[l]);
    blua_tensor_release(s->g[l]);
    blua_tensor_release(s->xt[l]);
  }
  for (int i = 0; i < 2 * L; i++) blua_tensor_release(s->grads[i]);
}

static int share_make(share *s, int L, const blua_tensor *x, const blua_tensor *y, blua_tensor *const *X,
                      blua_tensor *const *Z, blua_tensor *const *G, blua_tensor *const *grads,
                      blua_tensor *const *own, int64_t first, int64_t count, blua_err *err) {
  if (!(s->xs[0] = blua_tensor_narrow((blua_tensor *)x, 0, first, count, err))) return BLUA_ERROR;
  if (!(s->xs[L] = blua_tensor_narrow((blua_tensor *)y, 0, first, count, err))) return BLUA_ERROR;
  for (int l = 1; l <= L; l++) {
    if (l < L && !(s->xs[l] = blua_tensor_narrow(X[l - 1], 0, first, count, err))) return BLUA_ERROR;
    if (!(s->z[l] = blua_tensor_narrow(Z[l - 1], 0, first, count, err))) return BLUA_ERROR;
    if (!(s->g[l] = blua_tensor_narrow(G[l - 1], 0, first, count, err))) return BLUA_ERROR;
    if (!(s->xt[l] = blua_tensor_transpose(s->xs[l - 1], err))) return BLUA_ERROR;
  }
  for (int i = 0; i < 2 * L; i++) { /* (own: the share's spare gradient tensors, or NULL for the batch's) */
    s->grads[i] = own ? own[i] : grads[i];
    blua_tensor_retain(s->grads[i]);
  }
  return BLUA_OK;
}

/* z[l], recomputed when X has moved since. */
static int pre_activation(share *s, const blua_lifted_layer *layers, int l, blua_err *err) {
  if (s->current[l]) return BLUA_OK;
  if (blua_lifted_affine(s->z[l], s->xs[l - 1], &layers[l - 1], err)) return BLUA_ERROR;
  s->current[l] = 1;
  return BLUA_OK;
}

/* One inner step of one share; wt[l] is W_lᵀ. */
static int share_run(share *s, int L, const blua_lifted_layer *layers, blua_tensor *const *wt,
                     const blua_lifted_batch_opts *o, blua_err *err) {
  for (int l = 1; l <= L; l++) s->current[l] = 0;
  if (o->forward) {
    for (int l = 1; l < L; l++)
      if (pre_activation(s, layers, l, err) || blua_act_forward(layers[l - 1].act, s->xs[l], s->z[l], err))
        return BLUA_ERROR;
    if (pre_activation(s, layers, L, err)) return BLUA_ERROR;
    if (blua_lifted_energy(o->kind, layers[L - 1].act, 1, o->gamma, s->xs[L], s->z[L], &s->loss, err))
      return BLUA_ERROR;
  }
  for (int i = 0; i < o->nsteps; i++) {
    int l = o->steps[i], out = l + 1 == L;
    if (pre_activation(s, layers, l, err) || pre_activation(s, layers, l + 1, err)) return BLUA_ERROR;
    if (blua_lifted_xstep_wt(o->kind, layers[l - 1].act, &layers[l], out, out ? o->beta : 1.0, s->z[l], s->z[l + 1],
                             s->xs[l], s->xs[l + 1], o->mu[i], o->gamma, s->g[l], wt[l + 1], err))
      return BLUA_ERROR;
    s->current[l + 1] = 0; /* z[l+1] now holds the residual, and xs[l] has moved */
  }
  if (o->energies)
    for (int l = 1; l < L; l++)
      if (pre_activation(s, layers, l, err) ||
          blua_lifted_energy(o->kind, layers[l - 1].act, 0, o->gamma, s->xs[l], s->z[l], &s->energy[l - 1], err))
        return BLUA_ERROR;
  for (int l = 1; l <= L; l++) {
    double scale = l == L ? o->scale * o->beta : o->scale;
    if (pre_activation(s, layers, l, err) ||
        blua_lifted_wgrad_xt(o->kind, layers[l - 1].act, l == L, o->gamma, s->xt[l], s->xs[l], s->z[l], scale,
                             s->grads[2 * (l - 1)], s->grads[2 * (l - 1) + 1], err))
      return BLUA_ERROR;
    s->current[l] = 0;
  }
  return BLUA_OK;
}

static int check_opts(int L, const blua_lifted_layer *layers, const blua_tensor *x, const blua_tensor *y,
                      const blua_lifted_batch_opts *o, blua_err *err) {
  char sx[48], sy[48];
  if (L < 2 || L > MAXL) return blua_fail(err, "bad network: %d layers (2 to %d supported)", L, MAXL);
  if (x->dim != 2 || y->dim != 2 || blua_tensor_rows(x) != blua_tensor_rows(y))
    return blua_fail(err, "size mismatch: inputs %s, targets %s", blua_tensor_shape(x, sx, sizeof sx),
                     blua_tensor_shape(y, sy, sizeof sy));
  for (int l = 0; l < L; l++)
    if (!layers[l].act || !layers[l].W || !layers[l].b || layers[l].W->dim != 2)
      return blua_fail(err, "bad layer %d: a 2-D weight, a bias and an activation expected", l + 1);
  if (o->nsteps < 0 || (o->nsteps > 0 && (!o->steps || !o->mu)))
    return blua_fail(err, "bad X-steps: %d steps", o->nsteps);
  for (int i = 0; i < o->nsteps; i++)
    if (o->steps[i] < 1 || o->steps[i] >= L)
      return blua_fail(err, "bad X-step %d: layer %d is not a hidden layer (1..%d)", i + 1, o->steps[i], L - 1);
  return BLUA_OK;
}

typedef struct {
  share *shares;
  int L;
  const blua_lifted_layer *layers;
  blua_tensor *const *wt;
  const blua_lifted_batch_opts *o;
} run_ctx;

static void run_task(void *ctx, int p) {
  run_ctx *c = ctx;
  c->shares[p].status = share_run(&c->shares[p], c->L, c->layers, c->wt, c->o, &c->shares[p].err);
}

int blua_lifted_batch(int L, const blua_lifted_layer *layers, const blua_tensor *x, const blua_tensor *y,
                      blua_tensor *const *X, blua_tensor *const *Z, blua_tensor *const *G, int parts,
                      const blua_lifted_batch_opts *o, blua_tensor *const *grads, blua_tensor *const *spare,
                      double *loss, double *energy, blua_err *err) {
  if (check_opts(L, layers, x, y, o, err)) return BLUA_ERROR;
  int64_t rows = blua_tensor_rows(x);
  if (parts < 1) parts = 1;
  if (parts > rows) parts = rows > 0 ? (int)rows : 1;
  if (parts > 1 && !spare) return blua_fail(err, "no spare gradients for %d shares", parts);
  for (int l = 0; l < L; l++) {
    const blua_tensor *t[3] = {Z[l], G[l], l < L - 1 ? X[l] : Z[l]};
    for (int k = 0; k < 3; k++)
      if (t[k]->dim != 2 || blua_tensor_rows(t[k]) != rows || blua_tensor_cols(t[k]) != blua_tensor_cols(layers[l].W)) {
        char st[48], sw[48];
        return blua_fail(err, "size mismatch: scratch %s of layer %d for %lld rows and weights %s", blua_tensor_shape(t[k], st, sizeof st),
                         l + 1, (long long)rows, blua_tensor_shape(layers[l].W, sw, sizeof sw));
      }
  }
  share *shares = calloc((size_t)parts, sizeof *shares);
  blua_tensor *wt[MAXL + 1] = {0};
  int result = BLUA_OK;
  if (!shares) return blua_fail(err, "out of memory: a lifted batch in %d shares", parts);
  for (int l = 2; l <= L && result == BLUA_OK; l++)
    if (!(wt[l] = blua_tensor_transpose((blua_tensor *)layers[l - 1].W, err))) result = BLUA_ERROR;
  int64_t largest = 0;
  for (int p = 0; p < parts && result == BLUA_OK; p++) {
    int64_t first, count;
    blua_share_bounds(rows, parts, p, &first, &count);
    if (count > largest) largest = count;
    /* share 0 writes the gradients in place; the others into their own, added afterwards */
    blua_tensor *const *own = p == 0 ? NULL : spare + (size_t)(p - 1) * (size_t)(2 * L);
    result = share_make(&shares[p], L, x, y, X, Z, G, grads, own, first, count, err);
    shares[p].energy = energy ? energy + (size_t)p * (size_t)(L - 1) : NULL;
  }
  if (result == BLUA_OK && o->energies && !energy) result = blua_fail(err, "no room for the energies");
  if (result == BLUA_OK) {
    /* (the X-step makes views of chunks of shares over 4096 rows: those run one after another) */
    int side_by_side = largest <= BLUA_XSTEP_CHUNK_ROWS && blua_shares_side_by_side(parts);
    run_ctx ctx = {shares, L, layers, wt, o};
    if (largest <= BLUA_XSTEP_CHUNK_ROWS) blua_team_for(parts, side_by_side, run_task, &ctx);
    else
      for (int p = 0; p < parts; p++) run_task(&ctx, p);
    for (int p = 0; p < parts && result == BLUA_OK; p++) {
      if (shares[p].status) {
        *err = shares[p].err;
        result = BLUA_ERROR;
        break;
      }
      if (loss) loss[p] = o->forward ? shares[p].loss : 0.0;
      for (int i = 0; i < 2 * L && result == BLUA_OK && p > 0; i++)
        result = blua_tensor_add(grads[i], grads[i], 1.0f, shares[p].grads[i], err);
    }
  }
  for (int p = 0; p < parts; p++) share_release(&shares[p], L);
  for (int l = 0; l <= L; l++) blua_tensor_release(wt[l]);
  free(shares);
  return result;
}
