/* See blua/team.h. One team per process: the slot word holds the task batch's generation (high
 * 32 bits) and the next unclaimed task (low 32 bits), so a claim is one compare-and-swap that
 * also proves the batch is still the current one. */
#define _POSIX_C_SOURCE 200809L
#include "blua/team.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <omp.h>

#include "blua/threads.h"

/* How long a waiting thread spins for the next batch of tasks before it sleeps. Between two
 * batches of a training epoch the caller runs the optimiser and gathers the next rows, tens of
 * microseconds for small networks. */
enum { SPIN_NS = 200 * 1000 };
/* After this many batches in a row that no other thread took part in, the waiting threads stop
 * spinning, and start again after PROBE_AFTER batches to see whether the cores came back. */
enum { LATE_LIMIT = 4, PROBE_AFTER = 256 };

typedef void (*task_fn)(void *ctx, int i);

static struct {
  atomic_int open;                 /* a team is up */
  _Atomic uint64_t slot;           /* generation << 32 | next task */
  atomic_int done;                 /* tasks of the current generation finished */
  _Atomic(task_fn) task;           /* the current batch, written before its generation */
  _Atomic(void *) ctx;
  atomic_int n;
  atomic_int quit;
  atomic_int spin;                 /* whether waiting threads spin before sleeping */
  atomic_int sleepers;
  pthread_mutex_t mu;
  pthread_cond_t wake;
  /* kept by the opening thread only */
  int late_run, probe_in, size;
  blua_team_stats stats;
} team = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static _Thread_local int is_opener; /* this thread opened the team and is not inside a task */

/* A batch posted by blua_team_post and not joined yet (kept by the opening thread only). */
static struct {
  int n;
  uint32_t gen;
  void (*cleanup)(void *ctx);
  void *ctx;
} posted;

static inline uint32_t gen_of(uint64_t s) { return (uint32_t)(s >> 32); }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Claims and runs tasks of generation g until none is left; returns how many it ran. */
static int run_tasks(uint32_t g) {
  task_fn task = atomic_load(&team.task);
  void *ctx = atomic_load(&team.ctx);
  int n = atomic_load(&team.n), ran = 0;
  uint64_t s = atomic_load(&team.slot);
  while (gen_of(s) == g && (uint32_t)s < (uint32_t)n) {
    /* success proves generation g is still current, so task, ctx and n are still its own
     * (start_batch closes g's slot before it writes the next batch's) */
    if (atomic_compare_exchange_weak(&team.slot, &s, s + 1)) {
      task(ctx, (int)(uint32_t)s);
      ran++;
      atomic_fetch_add(&team.done, 1);
      s = atomic_load(&team.slot);
    }
  }
  return ran;
}

/* A waiting thread: spins a little after each batch, then sleeps until the next one. */
static void worker(void) {
  uint32_t seen = gen_of(atomic_load(&team.slot));
  for (;;) {
    if (atomic_load(&team.spin)) {
      long long until = now_ns() + SPIN_NS;
      for (int k = 0; gen_of(atomic_load(&team.slot)) == seen && !atomic_load(&team.quit); k++) {
        cpu_relax();
        if ((k & 63) == 63 && now_ns() > until) break;
      }
    }
    if (gen_of(atomic_load(&team.slot)) == seen && !atomic_load(&team.quit)) {
      pthread_mutex_lock(&team.mu);
      atomic_fetch_add(&team.sleepers, 1);
      while (gen_of(atomic_load(&team.slot)) == seen && !atomic_load(&team.quit))
        pthread_cond_wait(&team.wake, &team.mu);
      atomic_fetch_sub(&team.sleepers, 1);
      pthread_mutex_unlock(&team.mu);
    }
    if (atomic_load(&team.quit)) return;
    seen = gen_of(atomic_load(&team.slot));
    run_tasks(seen);
  }
}

static void wake_all(void) {
  if (atomic_load(&team.sleepers) == 0) return;
  pthread_mutex_lock(&team.mu);
  pthread_cond_broadcast(&team.wake);
  pthread_mutex_unlock(&team.mu);
}

int blua_team_open(int (*body)(void *ctx), void *ctx) {
  /* (never more threads than processors: waiting threads spin, and a spinning thread without
   * a core of its own takes one from a thread that works) */
  int threads = blua_get_num_threads(), procs = omp_get_num_procs();
  if (threads > procs) threads = procs;
  if (threads < 2 || omp_in_parallel() || is_opener) return body(ctx);
  int expected = 0;
  if (!atomic_compare_exchange_strong(&team.open, &expected, 1)) return body(ctx);
  atomic_store(&team.quit, 0);
  atomic_store(&team.spin, 1);
  team.late_run = 0;
  team.probe_in = 0;
  team.stats = (blua_team_stats){0};
  team.size = threads;
  int result = 0;
#pragma omp parallel num_threads(threads)
  {
    if (omp_get_thread_num() == 0) {
      is_opener = 1;
      result = body(ctx);
      blua_team_join(); /* (a batch the body posted and left: its memory is freed only once done) */
      is_opener = 0;
      atomic_store(&team.quit, 1);
      pthread_mutex_lock(&team.mu);
      pthread_cond_broadcast(&team.wake);
      pthread_mutex_unlock(&team.mu);
    } else {
      worker();
    }
  }
  atomic_store(&team.open, 0);
  return result;
}

int blua_team_active(void) { return is_opener; }

/* After each batch: stop the spinning when the other threads keep missing the batches. */
static void adapt(int others) {
  if (others > 0) {
    team.late_run = 0;
  } else {
    team.stats.late_batches++;
    if (++team.late_run >= LATE_LIMIT && atomic_load(&team.spin)) {
      atomic_store(&team.spin, 0);
      team.probe_in = PROBE_AFTER;
    }
  }
  if (!atomic_load(&team.spin) && --team.probe_in <= 0) {
    atomic_store(&team.spin, 1);
    team.late_run = 0;
  }
}

/* Publishes a batch of n tasks as the next generation and wakes the sleepers; returns the
 * generation. The finished generation's slot is closed first (its next task set past any n):
 * a thread that read that slot late would otherwise claim an index of it against the new
 * batch's task, n and ctx, running a task of the new batch twice and counting it done early. */
static uint32_t start_batch(int n, task_fn task, void *ctx) {
  uint32_t g = gen_of(atomic_load(&team.slot)) + 1;
  atomic_store(&team.slot, (uint64_t)(g - 1) << 32 | UINT32_MAX);
  atomic_store(&team.task, task);
  atomic_store(&team.ctx, ctx);
  atomic_store(&team.n, n);
  atomic_store(&team.done, 0);
  atomic_store(&team.slot, (uint64_t)g << 32);
  wake_all();
  return g;
}

/* The caller's part of batch g: it claims what is left, then waits for the tasks others hold. */
static void finish_batch(uint32_t g, int n) {
  is_opener = 0; /* (a task that asks for tasks of its own runs them itself) */
  int mine = run_tasks(g);
  for (int k = 0; atomic_load(&team.done) < n; k++) {
    cpu_relax();
    if (k > 256) sched_yield();
  }
  is_opener = 1;
  team.stats.batches++;
  team.stats.tasks_caller += mine;
  team.stats.tasks_others += n - mine;
  adapt(n - mine);
}

void blua_team_for(int n, int side_by_side, void (*task)(void *ctx, int i), void *ctx) {
  if (n <= 0) return;
  blua_team_join(); /* (a posted batch finishes before anything else runs) */
  if (!is_opener || n == 1 || !side_by_side) {
    if (!is_opener && side_by_side && n > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1)
      for (int i = 0; i < n; i++) task(ctx, i);
    } else {
      for (int i = 0; i < n; i++) task(ctx, i);
    }
    return;
  }
  uint32_t g = start_batch(n, task, ctx);
  finish_batch(g, n);
}

int blua_team_post(int n, void (*task)(void *ctx, int i), void *ctx, void (*cleanup)(void *ctx)) {
  if (!is_opener || n <= 0) return 0;
  blua_team_join();
  posted.gen = start_batch(n, task, ctx);
  posted.n = n;
  posted.cleanup = cleanup;
  posted.ctx = ctx;
  return 1;
}

void blua_team_join(void) {
  if (!is_opener || posted.n == 0) return;
  int n = posted.n;
  posted.n = 0;
  finish_batch(posted.gen, n);
  if (posted.cleanup) posted.cleanup(posted.ctx);
}

typedef struct {
  void (*fn)(void *ctx, int64_t lo, int64_t hi);
  void *ctx;
  int64_t n;
  int parts;
} range_job;

static void range_task(void *ctx, int i) {
  range_job *r = ctx;
  r->fn(r->ctx, r->n * i / r->parts, r->n * (i + 1) / r->parts);
}

void blua_team_range(int64_t n, int64_t grain, int omp_outside, void (*fn)(void *ctx, int64_t lo, int64_t hi),
                     void *ctx) {
  if (n <= 0) return;
  blua_team_join();
  if (!is_opener) {
    if (omp_outside && !omp_in_parallel()) {
#pragma omp parallel
      {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        fn(ctx, n * t / T, n * (t + 1) / T);
      }
    } else {
      fn(ctx, 0, n);
    }
    return;
  }
  if (grain < 1) grain = 1;
  int parts = team.size;
  if (parts > n / grain) parts = (int)(n / grain);
  if (parts < 2) {
    fn(ctx, 0, n);
    return;
  }
  range_job r = {fn, ctx, n, parts};
  blua_team_for(parts, 1, range_task, &r);
}

void blua_team_get_stats(blua_team_stats *out) { *out = team.stats; }
