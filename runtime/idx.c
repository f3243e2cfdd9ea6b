/* IDX reader (raw and gzip) and one-hot labels. See blua/idx.h for the contract. */
#define _POSIX_C_SOURCE 200809L

#include "blua/idx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* A byte source over one file: either the file's bytes or what its gzip members inflate to.
 * inflate is driven by hand (not gzread) because gzread silently ignores trailing garbage. */
typedef struct src {
  FILE *f;
  const char *path;
  int gz;
  int zinit;
  int member_done;     /* the current gzip member reached its end (CRC checked by zlib) */
  int extra_member;    /* reading a member after the first: a bad header there is garbage */
  z_stream zs;
  unsigned char in[1 << 16];
} src;

#define BAD(err, s, ...) bad_file((err), (s)->path, __VA_ARGS__)

static int bad_file(blua_err *err, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int bad_file(blua_err *err, const char *path, const char *fmt, ...) {
  char what[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return blua_fail(err, "bad IDX file: '%s': %s", path, what);
}

/* Fills zs.next_in from the file; returns the number of bytes now available (0 at end of
 * file) or -1 on a read error. */
static long refill(src *s, blua_err *err) {
  if (s->zs.avail_in > 0) return (long)s->zs.avail_in;
  size_t n = fread(s->in, 1, sizeof s->in, s->f);
  if (n == 0 && ferror(s->f)) {
    BAD(err, s, "read error: %s", strerror(errno));
    return -1;
  }
  s->zs.next_in = s->in;
  s->zs.avail_in = (uInt)n;
  return (long)n;
}

/* Reads up to want bytes into buf; *got < want only at the true end of the data. */
static int src_read(src *s, unsigned char *buf, size_t want, size_t *got, blua_err *err) {
  *got = 0;
  if (!s->gz) {
    while (*got < want) {
      size_t n = fread(buf + *got, 1, want - *got, s->f);
      if (n == 0) {
        if (ferror(s->f)) return BAD(err, s, "read error: %s", strerror(errno));
        break;
      }
      *got += n;
    }
    return BLUA_OK;
  }
  while (*got < want) {
    long avail = refill(s, err);
    if (avail < 0) return BLUA_ERROR;
    if (s->member_done) {
      if (avail == 0) break; /* clean end: the last member ended exactly at end of file */
      /* More bytes after a finished member: only another gzip member may follow. */
      if (s->zs.next_in[0] != 0x1f || (avail >= 2 && s->zs.next_in[1] != 0x8b))
        return BAD(err, s, "trailing garbage after the gzip data");
      if (inflateReset(&s->zs) != Z_OK) return BAD(err, s, "gzip reset failed");
      s->member_done = 0;
      s->extra_member = 1;
    }
    if (avail == 0) return BAD(err, s, "gzip data is truncated (the stream ends early)");
    size_t room = want - *got;
    if (room > UINT_MAX) room = UINT_MAX;
    s->zs.next_out = buf + *got;
    s->zs.avail_out = (uInt)room;
    int ret = inflate(&s->zs, Z_NO_FLUSH);
    *got += room - s->zs.avail_out;
    if (ret == Z_STREAM_END) {
      s->member_done = 1;
    } else if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR) {
      if (s->extra_member && s->zs.total_out == 0)
        return BAD(err, s, "trailing garbage after the gzip data (%s)", s->zs.msg ? s->zs.msg : "not gzip");
      return BAD(err, s, "corrupt gzip data (%s)", s->zs.msg ? s->zs.msg : "data error");
    } else if (ret == Z_MEM_ERROR) {
      return BAD(err, s, "out of memory while inflating");
    } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
      return BAD(err, s, "gzip error %d", ret);
    }
  }
  return BLUA_OK;
}

static uint32_t be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

const char *blua_idx_type_name(int type) {
  switch (type) {
    case BLUA_IDX_UBYTE: return "ubyte";
    case BLUA_IDX_SBYTE: return "sbyte";
    case BLUA_IDX_SHORT: return "short";
    case BLUA_IDX_INT: return "int";
    case BLUA_IDX_FLOAT: return "float";
    case BLUA_IDX_DOUBLE: return "double";
    default: return NULL;
  }
}

static size_t type_size(int type) {
  switch (type) {
    case BLUA_IDX_UBYTE: case BLUA_IDX_SBYTE: return 1;
    case BLUA_IDX_SHORT: return 2;
    case BLUA_IDX_INT: case BLUA_IDX_FLOAT: return 4;
    default: return 8;
  }
}

/* Converts n big-endian values of the given type to value * scale + shift as floats. Bytes
 * go through a 256-entry table (each value rounded once, as the per-element formula would);
 * the loops are split by type so each one is simple enough to vectorise, and go parallel
 * when a chunk is large. */
static void convert(float *out, const unsigned char *p, int64_t n, int type, double scale, double shift) {
  int plain = scale == 1.0 && shift == 0.0;
  int par = n > (1 << 16);
  (void)par;
  if (type == BLUA_IDX_UBYTE || type == BLUA_IDX_SBYTE) {
    float lut[256];
    for (int v = 0; v < 256; v++) {
      double x = type == BLUA_IDX_UBYTE ? v : (int8_t)(uint8_t)v;
      lut[v] = plain ? (float)x : (float)(x * scale + shift);
    }
#pragma omp parallel for if (par)
    for (int64_t i = 0; i < n; i++) out[i] = lut[p[i]];
    return;
  }
  switch (type) {
    case BLUA_IDX_SHORT:
#pragma omp parallel for if (par)
      for (int64_t i = 0; i < n; i++) {
        double v = (int16_t)(uint16_t)((p[2 * i] << 8) | p[2 * i + 1]);
        out[i] = plain ? (float)v : (float)(v * scale + shift);
      }
      return;
    case BLUA_IDX_INT:
#pragma omp parallel for if (par)
      for (int64_t i = 0; i < n; i++) {
        double v = (int32_t)be32(p + 4 * i);
        out[i] = plain ? (float)v : (float)(v * scale + shift);
      }
      return;
    case BLUA_IDX_FLOAT:
#pragma omp parallel for if (par)
      for (int64_t i = 0; i < n; i++) {
        uint32_t u = be32(p + 4 * i);
        float f;
        memcpy(&f, &u, 4);
        out[i] = plain ? f : (float)((double)f * scale + shift); /* plain keeps NaN payloads */
      }
      return;
    default:
#pragma omp parallel for if (par)
      for (int64_t i = 0; i < n; i++) {
        uint64_t u = ((uint64_t)be32(p + 8 * i) << 32) | be32(p + 8 * i + 4);
        double v;
        memcpy(&v, &u, 8);
        out[i] = plain ? (float)v : (float)(v * scale + shift);
      }
      return;
  }
}

/* Elements converted per chunk: the raw bytes of one chunk are the only other buffer. */
#define CHUNK_ELEMENTS ((int64_t)1 << 20)

/* Opens path for reading without blocking (a FIFO with no writer would block open itself)
 * and accepts only regular files. */
static FILE *open_regular(const char *path, struct stat *st, blua_err *err) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    blua_fail(err, "cannot open IDX file: '%s': %s", path, strerror(errno));
    return NULL;
  }
  if (fstat(fd, st) != 0) {
    blua_fail(err, "cannot open IDX file: '%s': %s", path, strerror(errno));
    close(fd);
    return NULL;
  }
  if (!S_ISREG(st->st_mode)) {
    blua_fail(err, "cannot open IDX file: '%s': %s", path,
              S_ISDIR(st->st_mode) ? "is a directory" : "not a regular file (a FIFO, device or socket)");
    close(fd);
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    blua_fail(err, "cannot open IDX file: '%s': %s", path, strerror(errno));
    close(fd);
  }
  return f;
}

blua_tensor *blua_idx_load_opts(const char *path, double scale, double shift, int64_t max_elements,
                                blua_idx_info *info, blua_err *err) {
  src *s = calloc(1, sizeof *s);
  unsigned char *chunk = NULL;
  blua_tensor *t = NULL, *flat = NULL;
  if (!s) {
    blua_fail(err, "out of memory: reading IDX file '%s'", path);
    return NULL;
  }
  if (max_elements < 0 || max_elements > BLUA_MAX_ELEMENTS) max_elements = BLUA_MAX_ELEMENTS;
  s->path = path;
  struct stat st;
  s->f = open_regular(path, &st, err);
  if (!s->f) goto done;

  /* Tell gzip from raw by content: an IDX file starts with two zero bytes, gzip with 1f 8b. */
  unsigned char head[4 + 4 * BLUA_IDX_MAX_RANK];
  size_t got = fread(head, 1, 2, s->f);
  if (got == 0 && ferror(s->f)) {
    BAD(err, s, "read error: %s", strerror(errno));
    goto done;
  }
  if (got == 2 && head[0] == 0x1f && head[1] == 0x8b) {
    s->gz = 1;
    if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) {
      BAD(err, s, "cannot start inflating");
      goto done;
    }
    s->zinit = 1;
    s->in[0] = 0x1f;
    s->in[1] = 0x8b;
    s->zs.next_in = s->in;
    s->zs.avail_in = 2;
    if (src_read(s, head, 4, &got, err) != BLUA_OK) goto done;
  } else if (got == 2) {
    size_t more;
    if (src_read(s, head + 2, 2, &more, err) != BLUA_OK) goto done;
    got += more;
  }
  if (got == 0) {
    BAD(err, s, "the file is empty");
    goto done;
  }
  if (got < 4) {
    BAD(err, s, "the header is truncated (%zu of 4 bytes)", got);
    goto done;
  }
  if (head[0] != 0 || head[1] != 0) {
    BAD(err, s, "magic 0x%08x is not an IDX magic (its first two bytes must be zero)", (unsigned)be32(head));
    goto done;
  }
  int type = head[2], rank = head[3];
  if (!blua_idx_type_name(type)) {
    BAD(err, s, "unknown type code 0x%02x (known: 08 ubyte, 09 sbyte, 0B short, 0C int, 0D float, 0E double)", (unsigned)type);
    goto done;
  }
  if (rank < 1 || rank > BLUA_IDX_MAX_RANK) {
    BAD(err, s, "rank %d is out of range 1..%d", rank, BLUA_IDX_MAX_RANK);
    goto done;
  }
  size_t hlen = 4 * (size_t)rank;
  if (src_read(s, head + 4, hlen, &got, err) != BLUA_OK) goto done;
  if (got < hlen) {
    BAD(err, s, "the header is truncated (%zu of %zu bytes of dimensions)", got, hlen);
    goto done;
  }
  int64_t dims[BLUA_IDX_MAX_RANK];
  int64_t count = 1;
  for (int i = 0; i < rank; i++) {
    dims[i] = be32(head + 4 + 4 * i);
    if (dims[i] == 0) {
      BAD(err, s, "dimension %d is 0", i + 1);
      goto done;
    }
    if (count > BLUA_MAX_ELEMENTS / dims[i]) {
      BAD(err, s, "the dimensions hold more than %lld elements (dimension %d is %lld)",
          (long long)BLUA_MAX_ELEMENTS, i + 1, (long long)dims[i]);
      goto done;
    }
    count *= dims[i];
  }
  if (count > max_elements) {
    BAD(err, s, "%lld elements exceed the caller's limit of %lld (max_elements)", (long long)count,
        (long long)max_elements);
    goto done;
  }
  size_t esize = type_size(type);
  uint64_t need = (uint64_t)count * esize;
  uint64_t header_bytes = 4 + hlen;
  if (!s->gz) {
    /* Raw file: its size must be exactly header + data, checked before allocating. */
    uint64_t have = (uint64_t)st.st_size;
    if (have < header_bytes + need) {
      BAD(err, s, "the file is truncated: %llu bytes, the header needs %llu",
          (unsigned long long)have, (unsigned long long)(header_bytes + need));
      goto done;
    }
    if (have > header_bytes + need) {
      BAD(err, s, "trailing garbage: %llu bytes, the header needs only %llu",
          (unsigned long long)have, (unsigned long long)(header_bytes + need));
      goto done;
    }
  }
  /* The values are converted chunk by chunk straight into the result, so the raw bytes are
   * never held whole. A raw file's size is known, so the result is allocated once; a gzip
   * stream's is not, so its result grows only as data really arrives (never beyond what the
   * header declares), and a tiny file claiming huge dimensions allocates little. */
  int64_t per_chunk = count < CHUNK_ELEMENTS ? count : CHUNK_ELEMENTS;
  chunk = malloc((size_t)per_chunk * esize);
  int64_t cap = s->gz ? per_chunk : count;
  flat = chunk ? blua_tensor_empty(1, cap, 1, err) : NULL;
  if (!chunk || !flat) {
    blua_fail(err, "out of memory: reading IDX file '%s' (%lld elements)", path, (long long)cap);
    goto done;
  }
  int64_t filled = 0;
  while (filled < count) {
    int64_t want = count - filled < per_chunk ? count - filled : per_chunk;
    if (src_read(s, chunk, (size_t)want * esize, &got, err) != BLUA_OK) goto done;
    if (got < (size_t)want * esize) {
      BAD(err, s, "the data is truncated: %llu of %llu bytes", (unsigned long long)(filled * (int64_t)esize + (int64_t)got),
          (unsigned long long)need);
      goto done;
    }
    if (filled + want > cap) {
      int64_t ncap = cap * 2 < count ? cap * 2 : count;
      if (ncap < filled + want) ncap = filled + want;
      blua_err gerr;
      if (blua_tensor_resize1d(flat, ncap, &gerr) != BLUA_OK) {
        blua_fail(err, "out of memory: reading IDX file '%s' (%lld elements)", path, (long long)ncap);
        goto done;
      }
      cap = ncap;
    }
    convert(blua_tensor_data(flat) + filled, chunk, want, type, scale, shift);
    filled += want;
  }
  /* Nothing may follow the data (for gzip this also makes zlib check the CRC trailer). */
  unsigned char extra[64];
  if (src_read(s, extra, sizeof extra, &got, err) != BLUA_OK) goto done;
  if (got > 0) {
    BAD(err, s, "trailing garbage: data continues past the %llu bytes the header declares",
        (unsigned long long)need);
    goto done;
  }

  t = blua_tensor_view(flat, 2, dims[0], count / dims[0], err);
  if (!t) goto done;
  if (info) {
    info->type = type;
    info->rank = rank;
    for (int i = 0; i < rank; i++) info->dims[i] = dims[i];
    info->compressed = s->gz;
  }

done:
  blua_tensor_release(flat);
  free(chunk);
  if (s->zinit) inflateEnd(&s->zs);
  if (s->f) fclose(s->f);
  free(s);
  return t;
}

blua_tensor *blua_idx_load_scaled(const char *path, double scale, double shift, blua_idx_info *info,
                                  blua_err *err) {
  return blua_idx_load_opts(path, scale, shift, BLUA_MAX_ELEMENTS, info, err);
}

blua_tensor *blua_idx_load(const char *path, blua_idx_info *info, blua_err *err) {
  return blua_idx_load_scaled(path, 1.0, 0.0, info, err);
}

int blua_onehot(blua_tensor *out, const blua_tensor *y, int64_t classes, blua_err *err) {
  int64_t n = blua_tensor_rows(y);
  if (blua_tensor_cols(y) != 1)
    return blua_fail(err, "bad labels: expected one column of labels, got %lld columns",
                     (long long)blua_tensor_cols(y));
  if (classes < 1) return blua_fail(err, "bad classes: %lld (must be at least 1)", (long long)classes);
  if (blua_tensor_rows(out) != n || blua_tensor_cols(out) != classes)
    return blua_fail(err, "size mismatch: one-hot of %lld labels into %lldx%lld (want %lldx%lld)",
                     (long long)n, (long long)blua_tensor_rows(out), (long long)blua_tensor_cols(out),
                     (long long)n, (long long)classes);
  blua_tensor_fill(out, 0.0f);
  for (int64_t i = 0; i < n; i++) {
    double v = *blua_tensor_at(y, i, 0);
    if (!(v >= 1 && v <= (double)classes && v == floor(v)))
      return blua_fail(err, "bad label: %g at row %lld is not an integer in 1..%lld", v,
                       (long long)(i + 1), (long long)classes);
    *blua_tensor_at(out, i, (int64_t)v - 1) = 1.0f;
  }
  return BLUA_OK;
}
