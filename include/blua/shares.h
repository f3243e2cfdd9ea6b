/* Row shares of a mini-batch: the fixed layout that makes every batch's gradient the sum, in
 * share order, of its shares' gradients (docs/design.md, "Threads and speed"). The layout
 * depends on the shapes only, so the result never depends on the thread count or on how the
 * shares are scheduled. */
#ifndef BLUA_SHARES_H
#define BLUA_SHARES_H

#include <stdint.h>

#include "blua/lifted.h"

/* Share s of `parts` of a batch of `rows` rows: rows [*first, *first + *count), sizes
 * differing by at most one, the earlier shares taking the extra rows. */
void blua_share_bounds(int64_t rows, int parts, int p, int64_t *first, int64_t *count);

/* Whether the shares of a batch of `rows` rows through these L dense layers should run side by
 * side on the OpenMP threads (each with one-thread products) rather than one after another
 * (each product on every BLAS thread): side by side while a share's largest product is small
 * enough for blua_mm to run it on one thread anyway. */
int blua_shares_side_by_side(int L, const blua_lifted_layer *layers, int64_t rows, int parts);

#endif
