/* libFuzzer harness of the IDX reader. The first input byte picks the mode: even, the rest of
 * the input is the file as it is (raw IDX or any gzip bytes); odd, the rest is compressed
 * with gzip first, so the fuzzer can explore IDX headers and data behind a valid gzip layer. The
 * element cap keeps every accepted file small. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "blua/idx.h"

static char path[64];

static void write_file(const unsigned char *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (n && fwrite(p, 1, n, f) != n) abort();
  fclose(f);
}

static void write_gzip(const unsigned char *p, size_t n) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  size_t cap = deflateBound(&zs, (uLong)n) + 64;
  unsigned char *out = malloc(cap);
  if (!out) abort();
  zs.next_in = (unsigned char *)p;
  zs.avail_in = (uInt)n;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) abort();
  write_file(out, cap - zs.avail_out);
  deflateEnd(&zs);
  free(out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!path[0]) snprintf(path, sizeof path, "/tmp/blua-fuzz-idx-%d", (int)getpid());
  if (size == 0) return 0;
  if (data[0] & 1)
    write_gzip(data + 1, size - 1);
  else
    write_file(data + 1, size - 1);
  blua_idx_info info;
  blua_err err;
  double scale = (data[0] & 2) ? 1.0 / 255 : 1.0;
  blua_tensor *t = blua_idx_load_opts(path, scale, 0.0, (int64_t)1 << 22, &info, &err);
  if (t) {
    /* An accepted file must describe its tensor exactly. */
    int64_t count = 1;
    for (int i = 0; i < info.rank; i++) count *= info.dims[i];
    if (blua_tensor_nelement(t) != count || blua_tensor_rows(t) != info.dims[0]) abort();
    volatile double s = blua_tensor_sum(t);
    (void)s;
    blua_tensor_release(t);
  } else if (strlen(err.msg) == 0) {
    abort(); /* a failure always says why */
  }
  return 0;
}
