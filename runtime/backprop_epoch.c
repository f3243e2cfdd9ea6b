/* See blua/backprop.h: batches of a back-propagation epoch of a dense network with Adam, one
 * after another in C, doing what the Lua training loop does for them (lua/blua/train/loop.lua)
 * without going back to Lua between batches. */
#include <math.h>

#include "blua/backprop.h"
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

int blua_backprop_epoch_run(blua_backprop_epoch *e, int64_t from, int64_t to, double *loss_sum, int64_t *stopped,
                            double *bad_loss, blua_err *err) {
  *stopped = -1;
  if (from < 0 || to > e->batches || from > to)
    return blua_fail(err, "bad batch range %lld..%lld of %lld", (long long)from, (long long)to, (long long)e->batches);
  if (from < to && e->gathered != from && gather_batch(e, from, err)) return BLUA_ERROR;
  for (int64_t b = from; b < to; b++) {
    const blua_backprop_workspace *w = &e->ws[is_last_short(e, b)];
    int64_t rows = is_last_short(e, b) ? e->last_rows : e->batch;
    int parts = e->parts < rows ? e->parts : (int)rows;
    double scale = 1.0 / (double)rows, loss = 0.0;
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
