/* A thread team that stays up while a training epoch runs, so that handing a batch's row
 * shares to the other threads costs a few microseconds instead of an OpenMP wake-up (tens of
 * microseconds on a virtual machine whose idle cores halt, several per batch).
 *
 * blua_team_open runs a function on the calling thread inside one OpenMP parallel region; the
 * other threads of the region wait for tasks. Inside that function, blua_team_for hands out
 * tasks 0..n-1: every thread, the caller included, claims the next unclaimed task until none is
 * left, and the caller returns when all of them are done. The caller never waits for a thread
 * that has not claimed anything, so a thread that another process has pushed off its core costs
 * at most the tasks it already holds: under contention the team degrades to one thread.
 *
 * A waiting thread spins for a short while after each batch of tasks (the next batch usually
 * follows within microseconds), then sleeps. When the waiting threads keep arriving too late to
 * claim anything (another process holds their cores), they stop spinning and sleep at once, and
 * try spinning again now and then.
 *
 * Tasks run on OpenMP threads inside the region, so OpenBLAS and the kernels' own OpenMP loops
 * run on one thread in them, exactly as in the shares' `omp parallel for` (blua/shares.h). Tasks
 * must not call Lua and must not make or release tensors another task can see. */
#ifndef BLUA_TEAM_H
#define BLUA_TEAM_H

#include <stdint.h>

/* Runs body(ctx) on the calling thread with a team of blua_get_num_threads() threads (at most
 * one per processor) waiting for tasks, and returns its result. With one thread, inside a parallel region, or with a team
 * already open, it just calls body(ctx). */
int blua_team_open(int (*body)(void *ctx), void *ctx);

/* Whether the calling thread is the one that opened a team of two or more threads (and not
 * inside one of its tasks). */
int blua_team_active(void);

/* Runs task(ctx, i) for i = 0..n-1 when side_by_side is set: on the open team when
 * blua_team_active(), else in an OpenMP loop when there is no enclosing parallel region;
 * otherwise one after another on the calling thread. Which thread runs which task is not fixed, so a task's
 * result must depend on i alone. */
void blua_team_for(int n, int side_by_side, void (*task)(void *ctx, int i), void *ctx);

/* Posts tasks 0..n-1 to the open team's waiting threads and returns at once (1), so that they
 * run while the caller goes on; blua_team_join, or the next blua_team_for or blua_team_range,
 * runs what is still unclaimed on the caller, waits for the rest and then calls cleanup(ctx)
 * (when not NULL), and the team joins a batch its body leaves posted before it closes. Without
 * an active team it does nothing and returns 0: the caller runs the tasks itself. */
int blua_team_post(int n, void (*task)(void *ctx, int i), void *ctx, void (*cleanup)(void *ctx));
void blua_team_join(void);

/* fn(ctx, lo, hi) over [0, n) cut into one range per thread, for elementwise work, whose
 * result does not depend on where the ranges are cut: as tasks of the open team (each range at
 * least `grain` long); outside a team, in an OpenMP region when `omp_outside` is set and there
 * is no enclosing one; otherwise one call fn(ctx, 0, n) on the calling thread. */
void blua_team_range(int64_t n, int64_t grain, int omp_outside, void (*fn)(void *ctx, int64_t lo, int64_t hi),
                     void *ctx);

/* Counters of the open team, for the benchmarks: tasks run by the opening thread and by the
 * others, and how many task batches found no other thread spinning. */
typedef struct {
  long long batches, tasks_caller, tasks_others, late_batches;
} blua_team_stats;
void blua_team_get_stats(blua_team_stats *out);

#endif
