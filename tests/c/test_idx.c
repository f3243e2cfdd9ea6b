/* Unit tests of the IDX reader: every type code, raw and gzip, multi-member gzip, scaling, and
 * a corpus of hostile files (each must fail with a message naming the file, never crash),
 * plus one-hot labels. Files are generated in a fresh temporary directory. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "blua/blua.h"
#include "blua/idx.h"
#include "check.h"

static char dir[] = "/tmp/blua-idx-XXXXXX";
static char paths[64][256];
static int npaths;

static const char *path_of(const char *name) {
  char *p = paths[npaths++ % 64];
  snprintf(p, 256, "%s/%s", dir, name);
  return p;
}

static const char *write_raw(const char *name, const unsigned char *bytes, size_t n) {
  const char *p = path_of(name);
  FILE *f = fopen(p, "wb");
  if (n) fwrite(bytes, 1, n, f);
  fclose(f);
  return p;
}

/* One gzip member of bytes[0..n) into out; returns its length. */
static size_t gzip_member(const unsigned char *bytes, size_t n, unsigned char *out, size_t cap) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = (unsigned char *)bytes;
  zs.avail_in = (uInt)n;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  deflate(&zs, Z_FINISH);
  size_t len = zs.total_out;
  deflateEnd(&zs);
  return len;
}

static const char *write_gz(const char *name, const unsigned char *bytes, size_t n) {
  size_t cap = n + 1024;
  unsigned char *out = malloc(cap);
  size_t len = gzip_member(bytes, n, out, cap);
  const char *p = write_raw(name, out, len);
  free(out);
  return p;
}

/* An IDX header for type and dims. Returns its length. */
static size_t header(unsigned char *h, int type, int rank, const uint32_t *dims) {
  h[0] = 0;
  h[1] = 0;
  h[2] = (unsigned char)type;
  h[3] = (unsigned char)rank;
  for (int i = 0; i < rank; i++) {
    h[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
    h[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
    h[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
    h[7 + 4 * i] = (unsigned char)dims[i];
  }
  return 4 + 4 * (size_t)rank;
}

/* Expects loading path to fail with a message containing both the path and want. */
static void expect_bad(const char *path, const char *want) {
  blua_err err;
  err.msg[0] = 0;
  blua_tensor *t = blua_idx_load(path, NULL, &err);
  CHECK(t == NULL);
  int ok = strstr(err.msg, path) != NULL && strstr(err.msg, want) != NULL;
  if (!ok) fprintf(stderr, "  for %s: wanted '%s', got '%s'\n", path, want, err.msg);
  if (getenv("BLUA_TEST_VERBOSE")) printf("  %s\n", err.msg);
  CHECK(ok);
  blua_tensor_release(t);
}

static void test_ubyte_raw_and_gz(void) {
  /* 3 images of 2x4 bytes: value = 10*i + j */
  unsigned char b[4 + 12 + 24];
  uint32_t dims[3] = {3, 2, 4};
  size_t h = header(b, 0x08, 3, dims);
  for (int i = 0; i < 24; i++) b[h + i] = (unsigned char)(i * 10 + 3);
  b[h + 23] = 255;
  const char *files[2] = {write_raw("u8", b, h + 24), write_gz("u8.gz", b, h + 24)};
  for (int k = 0; k < 2; k++) {
    blua_err err;
    blua_idx_info info;
    blua_tensor *t = blua_idx_load(files[k], &info, &err);
    CHECK(t != NULL);
    if (!t) {
      fprintf(stderr, "  %s\n", err.msg);
      continue;
    }
    CHECK(t->dim == 2 && blua_tensor_rows(t) == 3 && blua_tensor_cols(t) == 8);
    CHECK(*blua_tensor_at(t, 0, 0) == 3.0f && *blua_tensor_at(t, 1, 2) == 103.0f);
    CHECK(*blua_tensor_at(t, 2, 7) == 255.0f);
    CHECK(info.type == 0x08 && info.rank == 3 && info.dims[0] == 3 && info.dims[1] == 2 && info.dims[2] == 4);
    CHECK(info.compressed == k);
    blua_tensor_release(t);
  }
  /* Scaled: pixels to [0, 1]. */
  blua_err err;
  blua_tensor *s = blua_idx_load_scaled(files[1], 1.0 / 255, 0.0, NULL, &err);
  CHECK(s && *blua_tensor_at(s, 2, 7) == 1.0f && fabsf(*blua_tensor_at(s, 0, 0) - 3.0f / 255) < 1e-7f);
  blua_tensor_release(s);
  /* Shifted: labels 0..9 to 1..10. */
  s = blua_idx_load_scaled(files[0], 1.0, 1.0, NULL, &err);
  CHECK(s && *blua_tensor_at(s, 0, 0) == 4.0f);
  blua_tensor_release(s);
}

static void test_every_type(void) {
  unsigned char b[256];
  uint32_t dims[1] = {3};
  blua_err err;
  blua_tensor *t;

  size_t h = header(b, 0x09, 1, dims); /* sbyte */
  b[h] = 0x80; b[h + 1] = 0xFF; b[h + 2] = 0x7F;
  t = blua_idx_load(write_raw("i8", b, h + 3), NULL, &err);
  CHECK(t && t->dim == 2 && blua_tensor_rows(t) == 3 && blua_tensor_cols(t) == 1); /* rank 1 is N x 1 */
  CHECK(t && blua_tensor_data(t)[0] == -128.0f && blua_tensor_data(t)[1] == -1.0f && blua_tensor_data(t)[2] == 127.0f);
  blua_tensor_release(t);

  h = header(b, 0x0B, 1, dims); /* short, big-endian */
  unsigned char s16[6] = {0x80, 0x00, 0x01, 0x02, 0xFF, 0xFE};
  memcpy(b + h, s16, 6);
  t = blua_idx_load(write_gz("i16.gz", b, h + 6), NULL, &err);
  CHECK(t && blua_tensor_data(t)[0] == -32768.0f && blua_tensor_data(t)[1] == 258.0f && blua_tensor_data(t)[2] == -2.0f);
  blua_tensor_release(t);

  h = header(b, 0x0C, 1, dims); /* int */
  unsigned char s32[12] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01, 0x00, 0x00, 0x7F, 0xFF, 0xFF, 0xFF};
  memcpy(b + h, s32, 12);
  t = blua_idx_load(write_raw("i32", b, h + 12), NULL, &err);
  CHECK(t && blua_tensor_data(t)[0] == -1.0f && blua_tensor_data(t)[1] == 65536.0f &&
        blua_tensor_data(t)[2] == 2147483648.0f);
  blua_tensor_release(t);

  h = header(b, 0x0D, 1, dims); /* float: 1.5, -inf, a NaN with a payload */
  unsigned char f32[12] = {0x3F, 0xC0, 0, 0, 0xFF, 0x80, 0, 0, 0x7F, 0xC0, 0x12, 0x34};
  memcpy(b + h, f32, 12);
  t = blua_idx_load(write_raw("f32", b, h + 12), NULL, &err);
  CHECK(t && blua_tensor_data(t)[0] == 1.5f && isinf(blua_tensor_data(t)[1]) && blua_tensor_data(t)[1] < 0);
  if (t) {
    uint32_t u;
    memcpy(&u, blua_tensor_data(t) + 2, 4);
    CHECK(u == 0x7FC01234u);
  }
  blua_tensor_release(t);

  h = header(b, 0x0E, 1, dims); /* double: -2.25, 1e300 (inf as float), 0.1 */
  double dv[3] = {-2.25, 1e300, 0.1};
  for (int i = 0; i < 3; i++) {
    uint64_t u;
    memcpy(&u, &dv[i], 8);
    for (int k = 0; k < 8; k++) b[h + 8 * i + k] = (unsigned char)(u >> (56 - 8 * k));
  }
  t = blua_idx_load(write_gz("f64.gz", b, h + 24), NULL, &err);
  CHECK(t && blua_tensor_data(t)[0] == -2.25f && isinf(blua_tensor_data(t)[1]) && blua_tensor_data(t)[2] == 0.1f);
  blua_tensor_release(t);

  /* rank 4: rows = first dimension, cols = the rest */
  uint32_t d4[4] = {2, 1, 3, 2};
  h = header(b, 0x08, 4, d4);
  memset(b + h, 7, 12);
  t = blua_idx_load(write_raw("r4", b, h + 12), NULL, &err);
  CHECK(t && blua_tensor_rows(t) == 2 && blua_tensor_cols(t) == 6 && blua_tensor_sum(t) == 84.0);
  blua_tensor_release(t);
}

static void test_multi_member_gzip(void) {
  unsigned char b[64], out[512];
  uint32_t dims[2] = {2, 3};
  size_t h = header(b, 0x08, 2, dims);
  for (int i = 0; i < 6; i++) b[h + i] = (unsigned char)(i + 1);
  /* The header in one member, the data in another: valid gzip, as `cat a.gz b.gz` makes. */
  size_t n1 = gzip_member(b, h, out, sizeof out);
  size_t n2 = gzip_member(b + h, 6, out + n1, sizeof out - n1);
  blua_err err;
  blua_tensor *t = blua_idx_load(write_raw("multi.gz", out, n1 + n2), NULL, &err);
  CHECK(t && blua_tensor_sum(t) == 21.0);
  blua_tensor_release(t);
}

static void test_hostile_corpus(void) {
  unsigned char b[512], gz[1024];
  size_t h;
  uint32_t d3[3] = {2, 2, 2};

  expect_bad(write_raw("empty", b, 0), "empty");
  b[0] = 0; b[1] = 0; b[2] = 8;
  expect_bad(write_raw("short-header", b, 3), "header is truncated");
  unsigned char magic[8] = {0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1};
  expect_bad(write_raw("magic", magic, 8), "magic 0x12345678 is not an IDX magic");
  h = header(b, 0x0A, 3, d3);
  expect_bad(write_raw("type", b, h + 8), "unknown type code 0x0a");
  h = header(b, 0x08, 0, d3);
  expect_bad(write_raw("rank0", b, h + 8), "rank 0");
  h = header(b, 0x08, 3, d3);
  b[3] = 200;
  expect_bad(write_raw("rank200", b, 300), "rank 200");
  h = header(b, 0x08, 3, d3);
  expect_bad(write_raw("dims-cut", b, 10), "header is truncated");
  uint32_t zero[2] = {4, 0};
  h = header(b, 0x08, 2, zero);
  expect_bad(write_raw("dim0", b, h), "dimension 2 is 0");

  /* More elements than any tensor may hold, and a product that overflows 64 bits. */
  uint32_t huge[3] = {65536, 65536, 65536};
  h = header(b, 0x08, 3, huge);
  expect_bad(write_raw("huge", b, h + 16), "more than");
  uint32_t ovf[5] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
  h = header(b, 0x0E, 5, ovf);
  expect_bad(write_raw("overflow", b, h + 16), "more than");
  expect_bad(write_gz("overflow.gz", b, h + 16), "more than");

  /* Plausible but large dimensions over a tiny file: refused before any allocation. */
  uint32_t big[2] = {1u << 20, 1u << 12};
  h = header(b, 0x0D, 2, big);
  expect_bad(write_raw("big-claim", b, h + 16), "truncated");
  expect_bad(write_gz("big-claim.gz", b, h + 16), "truncated");

  /* Data too short or too long, raw and gzip. */
  h = header(b, 0x08, 3, d3);
  memset(b + h, 1, 64);
  expect_bad(write_raw("short-data", b, h + 7), "truncated");
  expect_bad(write_gz("short-data.gz", b, h + 7), "truncated");
  expect_bad(write_raw("long-data", b, h + 9), "trailing garbage");
  expect_bad(write_gz("long-data.gz", b, h + 9), "trailing garbage");

  /* Gzip damage: trailing garbage after a good member, a cut stream, flipped bytes. */
  size_t n = gzip_member(b, h + 8, gz, sizeof gz);
  memcpy(gz + n, "garbage!", 8);
  expect_bad(write_raw("garbage.gz", gz, n + 8), "trailing garbage");
  expect_bad(write_raw("cut.gz", gz, n - 6), "truncated");
  expect_bad(write_raw("cut-header.gz", gz, 5), "truncated");
  unsigned char flip[1024];
  memcpy(flip, gz, n);
  flip[n - 6] ^= 0x55; /* inside the CRC-32 trailer */
  expect_bad(write_raw("crc.gz", flip, n), "corrupt gzip");
  memcpy(flip, gz, n);
  for (size_t i = 10; i < n - 8; i++) flip[i] ^= 0xA5; /* the deflate data itself */
  expect_bad(write_raw("corrupt.gz", flip, n), "");

  /* Not a file at all. */
  expect_bad(path_of("does-not-exist"), "No such file");
  expect_bad(dir, "directory");
}

static void test_onehot(void) {
  blua_err err;
  blua_tensor *y = blua_tensor_new2d(3, 1, &err), *o = blua_tensor_new2d(3, 4, &err);
  float v[3] = {1, 4, 2};
  for (int i = 0; i < 3; i++) blua_tensor_data(y)[i] = v[i];
  CHECK(blua_onehot(o, y, 4, &err) == BLUA_OK);
  CHECK(blua_tensor_sum(o) == 3.0 && *blua_tensor_at(o, 0, 0) == 1.0f && *blua_tensor_at(o, 1, 3) == 1.0f &&
        *blua_tensor_at(o, 2, 1) == 1.0f);
  blua_tensor_data(y)[1] = 5;
  CHECK(blua_onehot(o, y, 4, &err) == BLUA_ERROR && strstr(err.msg, "row 2") != NULL);
  blua_tensor_data(y)[1] = 1.5f;
  CHECK(blua_onehot(o, y, 4, &err) == BLUA_ERROR);
  blua_tensor_data(y)[1] = NAN;
  CHECK(blua_onehot(o, y, 4, &err) == BLUA_ERROR);
  CHECK(blua_onehot(o, y, 5, &err) == BLUA_ERROR && strstr(err.msg, "size mismatch") != NULL);
  blua_tensor_release(y);
  blua_tensor_release(o);
}

int main(void) {
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_ubyte_raw_and_gz();
  test_every_type();
  test_multi_member_gzip();
  test_hostile_corpus();
  test_onehot();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return check_summary();
}
