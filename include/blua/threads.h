/* One process-wide thread count shared by OpenMP loops and OpenBLAS. */
#ifndef BLUA_THREADS_H
#define BLUA_THREADS_H

void blua_set_num_threads(int n);
int blua_get_num_threads(void);
/* OpenBLAS build description (config string and core name). */
const char *blua_blas_config(void);
const char *blua_blas_core(void);

/* CPU seconds one thread of a team of two spends waiting at a barrier while the other sleeps
 * 50 ms (best of three): near zero when waiting threads sleep (passive), milliseconds when they
 * spin. -1 when OpenMP gives no second thread. */
double blua_wait_probe(void);

/* Seconds on a monotonic clock, for timing. */
double blua_wall_time(void);

#endif
