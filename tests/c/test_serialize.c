/* Unit tests of the checkpoint envelope: round trips through blua_buf and blua_cursor (inline
 * and spliced tensor data, strided views), and every kind of damage rejected with a message
 * naming the file: empty, short header, wrong magic, newer version, header and payload bit
 * flips, truncation, trailing bytes, reads past the payload, impossible tensor shapes. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blua/blua.h"
#include "blua/serialize.h"
#include "check.h"

static char dir[] = "/tmp/blua-ckpt-XXXXXX";
static char path[300];

static long file_size(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static unsigned char *slurp(const char *p, long *n) {
  *n = file_size(p);
  unsigned char *b = malloc((size_t)*n + 1);
  FILE *f = fopen(p, "rb");
  if (fread(b, 1, (size_t)*n, f) != (size_t)*n) *n = -1;
  fclose(f);
  return b;
}

static void spit(const char *p, const unsigned char *b, long n) {
  FILE *f = fopen(p, "wb");
  if (n > 0) fwrite(b, 1, (size_t)n, f);
  fclose(f);
}

/* Opening (and decoding a u64) must fail with a message holding the path and want. */
static void expect_bad(const char *want) {
  blua_cursor c;
  blua_err err;
  err.msg[0] = 0;
  int st = blua_checkpoint_open(path, &c, &err);
  if (st == BLUA_OK) {
    uint64_t v;
    st = blua_cur_u64(&c, &v, "a test value", &err);
    if (st == BLUA_OK) st = blua_checkpoint_finish(&c, &err);
    blua_checkpoint_close(&c);
  }
  int ok = st == BLUA_ERROR && strstr(err.msg, path) && strstr(err.msg, want);
  if (!ok) fprintf(stderr, "  wanted '%s', got '%s'\n", want, err.msg);
  if (getenv("BLUA_TEST_VERBOSE")) printf("  %s\n", err.msg);
  CHECK(ok);
}

static void test_round_trip(void) {
  blua_err err;
  blua_tensor *big = blua_tensor_new2d(300, 100, &err); /* 120000 bytes: spliced, not copied */
  for (int64_t i = 0; i < 30000; i++) blua_tensor_data(big)[i] = (float)i * 0.5f;
  blua_tensor *small = blua_tensor_new2d(3, 2, &err);
  for (int i = 0; i < 6; i++) blua_tensor_data(small)[i] = (float)i + 1;
  blua_tensor *tr = blua_tensor_transpose(small, &err); /* 2x3 strided view */
  blua_tensor *bigtr = blua_tensor_transpose(big, &err);

  blua_buf b;
  blua_buf_init(&b);
  blua_buf_u64(&b, 0);
  blua_buf_f64(&b, -0.0);
  blua_buf_tensor(&b, big);
  blua_buf_tensor(&b, tr);
  blua_buf_tensor(&b, bigtr);
  blua_buf_i64(&b, -5);
  blua_buf_patch_u64(&b, 0, 0x0102030405060708ull);
  CHECK(!b.failed);
  CHECK(b.next == 2); /* both big tensors went by reference */
  blua_tensor_release(big); /* the buffer holds its own reference */
  CHECK(blua_checkpoint_write(path, &b, &err) == BLUA_OK);
  CHECK(file_size(path) == (long)(BLUA_CKPT_HEADER + b.total));
  blua_buf_free(&b);

  blua_cursor c;
  CHECK(blua_checkpoint_open(path, &c, &err) == BLUA_OK);
  uint64_t u;
  double d;
  unsigned tag;
  int64_t i64;
  CHECK(blua_cur_u64(&c, &u, "u", &err) == BLUA_OK && u == 0x0102030405060708ull);
  CHECK(blua_cur_f64(&c, &d, "d", &err) == BLUA_OK && d == 0.0 && signbit(d));
  CHECK(blua_cur_u8(&c, &tag, "tag", &err) == BLUA_OK && tag == BLUA_TAG_TENSOR);
  blua_tensor *t = blua_cur_tensor(&c, &err);
  CHECK(t && blua_tensor_rows(t) == 300 && blua_tensor_cols(t) == 100 && blua_tensor_data(t)[29999] == 14999.5f);
  blua_tensor_release(t);
  CHECK(blua_cur_u8(&c, &tag, "tag", &err) == BLUA_OK && tag == BLUA_TAG_TENSOR);
  t = blua_cur_tensor(&c, &err);
  CHECK(t && blua_tensor_rows(t) == 2 && blua_tensor_cols(t) == 3 && blua_tensor_is_contiguous(t));
  CHECK(t && *blua_tensor_at(t, 0, 0) == 1 && *blua_tensor_at(t, 0, 1) == 3 && *blua_tensor_at(t, 1, 2) == 6);
  blua_tensor_release(t);
  CHECK(blua_cur_u8(&c, &tag, "tag", &err) == BLUA_OK && tag == BLUA_TAG_TENSOR);
  t = blua_cur_tensor(&c, &err);
  CHECK(t && blua_tensor_rows(t) == 100 && blua_tensor_cols(t) == 300 && *blua_tensor_at(t, 7, 11) == (11 * 100 + 7) * 0.5f);
  blua_tensor_release(t);
  CHECK(blua_cur_i64(&c, &i64, "i", &err) == BLUA_OK && i64 == -5);
  CHECK(blua_checkpoint_finish(&c, &err) == BLUA_OK);
  /* Reading past the payload fails instead of reading the file's end. */
  CHECK(blua_cur_u8(&c, &tag, "one more value", &err) == BLUA_ERROR && strstr(err.msg, "ends inside one more value"));
  blua_checkpoint_close(&c);
  blua_checkpoint_close(&c);
  blua_tensor_release(bigtr);
  blua_tensor_release(tr);
  blua_tensor_release(small);

  /* Saving replaced the file atomically: no temporary file is left behind. */
  char cmd[400];
  snprintf(cmd, sizeof cmd, "test -z \"$(ls '%s' | grep tmp)\"", dir);
  CHECK(system(cmd) == 0);
}

static void test_damage(void) {
  blua_err err;
  blua_buf b;
  blua_buf_init(&b);
  for (uint64_t i = 0; i < 40; i++) blua_buf_u64(&b, i);
  CHECK(blua_checkpoint_write(path, &b, &err) == BLUA_OK);
  blua_buf_free(&b);
  long n;
  unsigned char *good = slurp(path, &n);
  CHECK(n == BLUA_CKPT_HEADER + 320);
  unsigned char *bad = malloc((size_t)n + 16);

  spit(path, good, 0);
  expect_bad("empty");
  spit(path, good, 20);
  expect_bad("header is truncated");
  memcpy(bad, good, (size_t)n);
  bad[1] = 'X';
  spit(path, bad, n);
  expect_bad("not a blua checkpoint");
  spit(path, (const unsigned char *)"hello", 5);
  expect_bad("not a blua checkpoint");
  memcpy(bad, good, (size_t)n);
  bad[8] = 3; /* a newer version */
  spit(path, bad, n);
  expect_bad("version 3 is not supported");
  memcpy(bad, good, (size_t)n);
  bad[17] ^= 1; /* the payload length */
  spit(path, bad, n);
  expect_bad("header checksum mismatch");
  spit(path, good, n - 1);
  expect_bad("truncated");
  memcpy(bad, good, (size_t)n);
  bad[n] = 0;
  spit(path, bad, n + 1);
  expect_bad("trailing bytes");
  /* Every single bit flip in the payload is caught by the checksum. */
  int caught = 0, tried = 0;
  for (long i = BLUA_CKPT_HEADER; i < n; i += 7) {
    memcpy(bad, good, (size_t)n);
    bad[i] ^= (unsigned char)(1u << (i % 8));
    spit(path, bad, n);
    blua_cursor c;
    tried++;
    if (blua_checkpoint_open(path, &c, &err) == BLUA_ERROR && strstr(err.msg, "payload checksum mismatch")) caught++;
    blua_checkpoint_close(&c);
  }
  CHECK(caught == tried);
  spit(path, good, n);
  blua_cursor c;
  CHECK(blua_checkpoint_open(path, &c, &err) == BLUA_OK);
  CHECK(blua_checkpoint_finish(&c, &err) == BLUA_ERROR && strstr(err.msg, "320 payload bytes follow"));
  blua_checkpoint_close(&c);
  free(good);
  free(bad);

  /* A tensor header claiming more data than the payload holds fails before allocating. */
  blua_buf_init(&b);
  blua_buf_u8(&b, 2);
  blua_buf_i64(&b, (int64_t)1 << 30);
  blua_buf_i64(&b, 1 << 3);
  blua_buf_u64(&b, 0);
  CHECK(blua_checkpoint_write(path, &b, &err) == BLUA_OK);
  blua_buf_free(&b);
  CHECK(blua_checkpoint_open(path, &c, &err) == BLUA_OK);
  CHECK(blua_cur_tensor(&c, &err) == NULL && strstr(err.msg, "ends inside tensor data"));
  blua_checkpoint_close(&c);
  int64_t shapes[4][3] = {{3, 2, 2}, {2, -1, 4}, {1, 4, 2}, {2, (int64_t)1 << 40, (int64_t)1 << 40}};
  const char *want[4] = {"dimension 3", "impossible shape", "impossible shape", "element limit"};
  for (int k = 0; k < 4; k++) {
    blua_buf_init(&b);
    blua_buf_u8(&b, (unsigned)shapes[k][0]);
    blua_buf_i64(&b, shapes[k][1]);
    blua_buf_i64(&b, shapes[k][2]);
    blua_checkpoint_write(path, &b, &err);
    blua_buf_free(&b);
    CHECK(blua_checkpoint_open(path, &c, &err) == BLUA_OK);
    CHECK(blua_cur_tensor(&c, &err) == NULL && strstr(err.msg, want[k]));
    blua_checkpoint_close(&c);
  }

  /* Unwritable target: a clear error, no crash. */
  blua_buf_init(&b);
  CHECK(blua_checkpoint_write("/nonexistent-dir/x.ckpt", &b, &err) == BLUA_ERROR &&
        strstr(err.msg, "/nonexistent-dir/x.ckpt"));
  blua_buf_free(&b);
  CHECK(blua_checkpoint_open("/nonexistent-dir/x.ckpt", &c, &err) == BLUA_ERROR && strstr(err.msg, "cannot open"));
  CHECK(blua_checkpoint_open(dir, &c, &err) == BLUA_ERROR && strstr(err.msg, "not a regular file"));
}

int main(void) {
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(path, sizeof path, "%s/test.ckpt", dir);
  test_round_trip();
  test_damage();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return check_summary();
}
