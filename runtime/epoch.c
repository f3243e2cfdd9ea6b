/* See blua/backprop.h and blua/lifted_batch.h: batches of an epoch of a dense network with Adam,
 * back-propagation or lifted training, one after another in C, doing what the Lua training loop
 * does for them (lua/blua/train/loop.lua) without going back to Lua between batches. */
#include <math.h>

#include "blua/backprop.h"
#include "blua/lifted_batch.h"
#include "blua/optim.h"
#include "blua/team.h"

static int is_last_short(const blua_backprop_epoch *e, int64_t b) {
  return b == e->batches - 1 && e->last_rows != e->batch;
}

/* The rows of batch b into its workspace's buffers: posted to the team when there is one, so
 * that they arrive while the caller finishes the batch before (the next step waits for them). */
static int gather_batch(blua_backprop_epoch *e, int64_t b, blua_err *err) {
  const blua_backprop_workspace *w = &e->ws[is_last_short(e, b)];
  blua_tensor *dst[2] = {w->xb, w->yb};
  const blua_tensor *src[2] = {e->x, e->y};
  if (blua_tensor_gather_rows_post(2, dst, src, e->perm + b * e->batch, is_last_short(e, b) ? e->last_rows : e->batch,
                                   err) == BLUA_ERROR)
    return BLUA_ERROR;
  e->gathered = b;
  return BLUA_OK;
}

/* Checks a run's range and gathers its first batch unless that was posted already. */
static int run_start(blua_backprop_epoch *e, int64_t from, int64_t to, blua_err *err) {
  if (from < 0 || to > e->batches || from > to)
    return blua_fail(err, "bad batch range %lld..%lld of %lld", (long long)from, (long long)to, (long long)e->batches);
  return from < to && e->gathered != from ? gather_batch(e, from, err) : BLUA_OK;
}

/* Batch b's workspace, rows and share count. */
typedef struct {
  const blua_backprop_workspace *w;
  int64_t rows;
  int parts;
} batch_shape;

static batch_shape shape_of(const blua_backprop_epoch *e, int64_t b) {
  int64_t rows = is_last_short(e, b) ? e->last_rows : e->batch;
  return (batch_shape){&e->ws[is_last_short(e, b)], rows, e->parts < rows ? e->parts : (int)rows};
}

int blua_backprop_epoch_run(blua_backprop_epoch *e, int64_t from, int64_t to, double *loss_sum, int64_t *stopped,
                            double *bad_loss, blua_err *err) {
  *stopped = -1;
  if (run_start(e, from, to, err)) return BLUA_ERROR;
  for (int64_t b = from; b < to; b++) {
    batch_shape sh = shape_of(e, b);
    const blua_backprop_workspace *w = sh.w;
    int parts = sh.parts;
    double scale = 1.0 / (double)sh.rows, loss = 0.0;
    /* (two shares: Adam adds the second share's gradients as it steps, instead of a pass that
     * adds them first; the same bits) */
    int unsummed = 0;
    const blua_tensor *const *g = (const blua_tensor *const *)e->grads;
    if (blua_backprop_batch_unsummed(e->L, e->layers, e->l1, w->xb, w->yb, w->Z, w->X, w->D, scale, parts, e->grads,
                                     parts > 1 ? e->spare : NULL, &loss, &unsummed, err) ||
        (unsummed ? blua_adam_steps_sum(e->nparams, e->params, g, (const blua_tensor *const *)e->spare, e->m, e->v,
                                        e->lr[b], e->beta1, e->beta2, e->eps, e->weight_decay, e->t0 + b + 1, err)
                  : blua_adam_steps(e->nparams, e->params, g, e->m, e->v, e->lr[b], e->beta1, e->beta2, e->eps,
                                    e->weight_decay, e->t0 + b + 1, err))) {
      blua_team_join();
      *stopped = b;
      return BLUA_ERROR;
    }
    /* (the next batch's rows, also past the range: the caller's next call starts with them) */
    if (b + 1 < e->batches && gather_batch(e, b + 1, err)) {
      blua_team_join();
      *stopped = b;
      return BLUA_ERROR;
    }
    loss *= scale;
    if (isnan(loss) || loss == INFINITY) { /* (what the Lua loop calls a diverged run) */
      blua_team_join();
      *stopped = b;
      *bad_loss = loss;
      return BLUA_OK;
    }
    *loss_sum += loss;
  }
  return BLUA_OK;
}

/* The X-step sizes of one inner step into e->mu (e->steps the layers): xsteps sweeps, each first
 * taking every sweep entry's norm with 8 warm power-iteration steps, in sweep order, as the Lua
 * loop's lifted.sweep_step_sizes does. Returns 0, or the layer (1-based) whose weights have no
 * finite norm. */
static int lifted_step_sizes(blua_lifted_epoch *le) {
  const blua_backprop_epoch *e = &le->base;
  int i = 0;
  for (int s = 0; s < le->xsteps; s++)
    for (int j = 0; j < le->nsweep; j++, i++) {
      int l = le->sweep[j]; /* (hidden layer l, 1-based: its next block is layers[l]) */
      double norm = blua_spectral_norm(e->layers[l].W, 8, le->power[j]), s2 = norm * norm;
      if (isnan(s2)) return l + 1;
      double d = le->own[j] + le->coupling[j] * s2;
      if (d < 1e-12) d = 1e-12; /* (as Lua's math.max: a NaN stays) */
      le->steps[i] = l;
      le->mu[i] = le->mult[j] / d;
    }
  return 0;
}

int blua_lifted_epoch_run(blua_lifted_epoch *le, int64_t from, int64_t to, double *loss_sum, double *energy_sums,
                          blua_lifted_epoch_stop *stop, blua_err *err) {
  blua_backprop_epoch *e = &le->base;
  *stop = (blua_lifted_epoch_stop){-1, 0, 0, 0.0};
  if (run_start(e, from, to, err)) return BLUA_ERROR;
  int H = e->L - 1;
  for (int64_t b = from; b < to; b++) {
    batch_shape sh = shape_of(e, b);
    const blua_backprop_workspace *w = sh.w;
    int parts = sh.parts;
    double scale = 1.0 / (double)sh.rows, loss = 0.0;
    int have_energies = 0;
    for (int k = 0; k < le->inner; k++) {
      int bad_layer = lifted_step_sizes(le);
      if (bad_layer) {
        blua_team_join();
        *stop = (blua_lifted_epoch_stop){b, BLUA_EPOCH_NO_NORM, bad_layer, NAN};
        return BLUA_OK;
      }
      blua_lifted_batch_opts o = le->opts;
      o.scale = scale;
      o.forward = k == 0;
      o.energies = k == le->inner - 1 && le->energies;
      o.nsteps = le->xsteps * le->nsweep;
      o.steps = le->steps;
      o.mu = le->mu;
      int unsummed = 0; /* (as back-prop's: Adam adds the second share's gradients) */
      o.unsummed = &unsummed;
      const blua_tensor *const *g = (const blua_tensor *const *)e->grads;
      long t = e->t0 + le->adam_steps + 1;
      if (blua_lifted_batch(e->L, e->layers, w->xb, w->yb, w->X, w->Z, w->D, parts, &o, e->grads,
                            parts > 1 ? e->spare : NULL, le->loss_parts, le->energy_parts, err) ||
          (unsummed ? blua_adam_steps_sum(e->nparams, e->params, g, (const blua_tensor *const *)e->spare, e->m, e->v,
                                          e->lr[b], e->beta1, e->beta2, e->eps, e->weight_decay, t, err)
                    : blua_adam_steps(e->nparams, e->params, g, e->m, e->v, e->lr[b], e->beta1, e->beta2, e->eps,
                                      e->weight_decay, t, err))) {
        blua_team_join();
        stop->batch = b;
        return BLUA_ERROR;
      }
      le->adam_steps++;
      if (k == 0)
        for (int p = 0; p < parts; p++) loss += le->loss_parts[p] * scale;
      if (o.energies) {
        have_energies = 1;
        for (int l = 0; l < H; l++) {
          double sum = 0.0;
          for (int p = 0; p < parts; p++) sum += le->energy_parts[p * H + l] * scale;
          le->energy_batch[l] = sum;
        }
      }
    }
    if (b + 1 < e->batches && gather_batch(e, b + 1, err)) {
      blua_team_join();
      stop->batch = b;
      return BLUA_ERROR;
    }
    if (isnan(loss) || loss == INFINITY) {
      blua_team_join();
      *stop = (blua_lifted_epoch_stop){b, BLUA_EPOCH_BAD_LOSS, 0, loss};
      return BLUA_OK;
    }
    for (int l = 0; have_energies && l < H; l++)
      if (isnan(le->energy_batch[l]) || le->energy_batch[l] == INFINITY) {
        blua_team_join();
        *stop = (blua_lifted_epoch_stop){b, BLUA_EPOCH_BAD_ENERGY, l + 1, le->energy_batch[l]};
        return BLUA_OK;
      }
    *loss_sum += loss;
    for (int l = 0; have_energies && l < H; l++) energy_sums[l] += le->energy_batch[l];
  }
  return BLUA_OK;
}
