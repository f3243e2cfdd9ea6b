/* Row shares of a mini-batch: the fixed layout that makes every batch's gradient the sum, in
 * share order, of its shares' gradients (docs/design.md, "Threads and speed"). The layout
 * depends on the shapes only, so the result never depends on the thread count or on how the
 * shares are scheduled. */
#ifndef BLUA_SHARES_H
#define BLUA_SHARES_H

#include <stdint.h>

/* Share s of `parts` of a batch of `rows` rows: rows [*first, *first + *count), sizes
 * differing by at most one, the earlier shares taking the extra rows. */
void blua_share_bounds(int64_t rows, int parts, int p, int64_t *first, int64_t *count);

/* Whether the shares of a batch run side by side on the OpenMP threads: whenever there are
 * two shares and two threads. Each share's products then run on one BLAS thread. One after
 * another (one thread), they do too; so the bits are the same either way. Measured on the
 * 784-1024-1024-10 network, the shares side by side were also faster than the shares one after
 * another with two-thread products (RESULTS.md, "Speed"). */
int blua_shares_side_by_side(int parts);

#endif
