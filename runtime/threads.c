/* One thread count for OpenMP loops and OpenBLAS: with the OpenMP build of OpenBLAS both
 * use the same pool, so setting them together avoids oversubscription. */
#define _POSIX_C_SOURCE 200809L
#include "blua/threads.h"

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
