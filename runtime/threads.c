/* One thread count for OpenMP loops and OpenBLAS: with the OpenMP build of OpenBLAS both
 * use the same pool, so setting them together avoids oversubscription. */
#define _POSIX_C_SOURCE 200809L
#include "blua/threads.h"

#include <math.h>
#include <sched.h>
#include <time.h>

#include <cblas.h>
#include <omp.h>

void blua_set_num_threads(int n) {
  if (n < 1) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int blua_get_num_threads(void) { return omp_get_max_threads(); }

const char *blua_blas_config(void) { return openblas_get_config(); }

const char *blua_blas_core(void) { return openblas_get_corename(); }

double blua_wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double thread_cpu_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double blua_wait_probe(void) {
  double best = INFINITY;
  for (int rep = 0; rep < 3; rep++) {
    double spent = NAN;
    int arrived = 0;
#pragma omp parallel num_threads(2) shared(arrived, spent)
    if (omp_get_num_threads() == 2) {
      double t0 = thread_cpu_time();
      if (omp_get_thread_num() == 0) {
        /* Sleep only once the other thread is about to wait: on a loaded machine it may
         * start late, and must not find the barrier already open. */
        for (int seen = 0; !seen; sched_yield()) {
#pragma omp atomic read
          seen = arrived;
        }
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
      } else {
#pragma omp atomic write
        arrived = 1;
      }
#pragma omp barrier
      if (omp_get_thread_num() == 1) spent = thread_cpu_time() - t0;
    }
    if (isnan(spent)) return -1.0;
    if (spent < best) best = spent;
  }
  return best;
}
