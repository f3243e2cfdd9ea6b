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

/* Whether the shares of a batch run side by side on the threads (the epoch's team, or an
 * OpenMP loop outside one): when there are two shares and two threads, and each share has
 * `work` multiply-adds per pass or more (a share of a few microseconds costs more to hand
 * over than it saves). Each share's products run on one BLAS thread either way, so the bits
 * are the same. Measured on the 784-1024-1024-10 network, the shares side by side were also
 * faster than the shares one after another with two-thread products (RESULTS.md, "Speed"). */
int blua_shares_side_by_side(int parts, double work);

/* Multiply-adds of one pass over a share below which its shares run one after another. */
#define BLUA_SHARE_MIN_WORK 2.0e5

#endif
