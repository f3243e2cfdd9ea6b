/* The thread team (blua/team.h): every task runs exactly once whoever claims it, ranges cover
 * [0, n) without overlap, a team of one thread or a nested call falls back to a plain loop,
 * tasks that ask for tasks of their own run them themselves, and a posted batch is done and
 * cleaned up once before anything else runs, also when the body leaves it posted. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include <omp.h>

#include "blua/team.h"
#include "blua/threads.h"
#include "check.h"

enum { MAXN = 1000 };
static atomic_int runs[MAXN];
static double sink[MAXN];

static void count_task(void *ctx, int i) {
  (void)ctx;
  double a = 0;
  for (int k = 0; k < 2000 * (i % 7 + 1); k++) a += sqrt((double)k);
  sink[i] = a;
  atomic_fetch_add(&runs[i], 1);
}

static void tick_task(void *ctx, int i) {
  (void)ctx;
  atomic_fetch_add(&runs[i], 1);
}

static int all_once(int n) {
  for (int i = 0; i < n; i++)
    if (atomic_load(&runs[i]) != 1) return 0;
  return 1;
}

static void reset_first(int n) {
  for (int i = 0; i < n; i++) atomic_store(&runs[i], 0);
}

static void reset(void) {
  for (int i = 0; i < MAXN; i++) atomic_store(&runs[i], 0);
}

static atomic_int covered[100000];

static void range_fn(void *ctx, int64_t lo, int64_t hi) {
  (void)ctx;
  for (int64_t k = lo; k < hi; k++) atomic_fetch_add(&covered[k], 1);
}

static void nested_task(void *ctx, int i) {
  (void)ctx;
  /* inside a task no team is active: the inner batch runs here, one task after another */
  (void)i;
  CHECK(!blua_team_active());
  blua_team_for(3, 1, count_task, NULL);
}

static int body(void *ctx) {
  int *rounds = ctx;
  CHECK(blua_team_active());
  CHECK(omp_in_parallel());
  /* many small batches in a row, as a training epoch hands them out */
  int ok = 1;
  for (int r = 0; r < *rounds; r++) {
    int n = 1 + r % 9;
    reset();
    blua_team_for(n, 1, count_task, NULL);
    ok = ok && all_once(n);
  }
  CHECK(ok);
  /* batches of tasks that take no time, of changing sizes: a thread that reads a finished
   * batch's slot late must not claim an index of the next batch (each index ran twice, or one
   * was still running when the batch was taken for done) */
  ok = 1;
  for (int r = 0; r < 20 * *rounds && ok; r++) {
    int n = 1 + (r * 7) % 13;
    reset_first(13);
    blua_team_for(n, 1, tick_task, NULL);
    ok = all_once(n) && atomic_load(&runs[n]) == 0;
  }
  CHECK(ok);
  /* a batch larger than the team */
  reset();
  blua_team_for(MAXN, 1, count_task, NULL);
  CHECK(all_once(MAXN));
  /* ranges: every index once, for lengths around the grain */
  int64_t lengths[] = {0, 1, 99, 100, 101, 199, 200, 201, 99999};
  for (size_t t = 0; t < sizeof lengths / sizeof *lengths; t++) {
    memset(covered, 0, sizeof covered);
    blua_team_range(lengths[t], 100, 0, range_fn, NULL);
    int good = 1;
    for (int64_t k = 0; k < 100000; k++) good = good && atomic_load(&covered[k]) == (k < lengths[t]);
    CHECK(good);
  }
  /* tasks that ask for tasks */
  reset();
  blua_team_for(2, 1, nested_task, NULL);
  CHECK(atomic_load(&runs[0]) == 2 && atomic_load(&runs[1]) == 2 && atomic_load(&runs[2]) == 2);
  return 7;
}

static atomic_int cleanups;
static void count_cleanup(void *ctx) {
  /* every task of the batch is done when its cleanup runs */
  CHECK(all_once(*(int *)ctx));
  atomic_fetch_add(&cleanups, 1);
}

static int body_post(void *ctx) {
  (void)ctx;
  static int n = 40;
  int ok = 1;
  for (int r = 0; r < 200; r++) {
    reset();
    atomic_store(&cleanups, 0);
    CHECK(blua_team_post(n, count_task, &n, count_cleanup) == 1);
    switch (r % 3) { /* joined explicitly, by the next batch, or by the next range */
      case 0: blua_team_join(); break;
      case 1: blua_team_for(1, 1, count_task, &n); break;
      default: blua_team_range(10, 1, 0, range_fn, NULL); break;
    }
    ok = ok && atomic_load(&cleanups) == 1 && atomic_load(&runs[n - 1]) == 1;
    blua_team_join(); /* (nothing posted: nothing happens) */
    ok = ok && atomic_load(&cleanups) == 1;
  }
  CHECK(ok);
  /* left posted: the team finishes it before it closes */
  reset();
  atomic_store(&cleanups, 0);
  CHECK(blua_team_post(n, count_task, &n, count_cleanup) == 1);
  return 5;
}

/* a team opened inside a team is the same team: the inner body just runs */
static int inner_open(void *ctx) {
  (void)ctx;
  return 11;
}

static int body_nested_open(void *ctx) {
  (void)ctx;
  return blua_team_open(inner_open, NULL) + 1;
}

int main(void) {
  int rounds = 3000;
  /* outside a team: the OpenMP loop or a plain one, still every task once */
  CHECK(!blua_team_active());
  reset();
  blua_team_for(50, 1, count_task, NULL);
  CHECK(all_once(50));
  reset();
  blua_team_for(50, 0, count_task, NULL);
  CHECK(all_once(50));

  blua_set_num_threads(2);
  CHECK(blua_team_open(body, &rounds) == 7);
  CHECK(!blua_team_active());
  blua_team_stats s;
  blua_team_get_stats(&s);
  CHECK(s.batches > 0);
  CHECK(s.tasks_caller + s.tasks_others > 0);
  CHECK(blua_team_open(body_nested_open, NULL) == 12);
  CHECK(blua_team_open(body_post, NULL) == 5);
  CHECK(atomic_load(&cleanups) == 1 && all_once(40));
  /* outside a team nothing is posted: the caller runs the tasks */
  CHECK(blua_team_post(3, count_task, NULL, count_cleanup) == 0);
  blua_team_join();

  /* more threads than processors: the team has one per processor, and still runs every task */
  blua_set_num_threads(64);
  rounds = 300;
  CHECK(blua_team_open(body, &rounds) == 7);
  blua_team_get_stats(&s);
  CHECK(s.batches > 0);

  /* one thread: no team, the body runs as it is and the batches one task after another */
  blua_set_num_threads(1);
  CHECK(blua_team_open(body_nested_open, NULL) == 12);
  reset();
  blua_team_for(20, 1, count_task, NULL);
  CHECK(all_once(20));
  return check_summary();
}
