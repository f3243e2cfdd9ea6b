/* Checkpoint envelope and payload building blocks (see blua/serialize.h, docs/format.md). */
#define _POSIX_C_SOURCE 200809L

#include "blua/serialize.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

/* Tensors at least this large are written from their storage instead of being copied. */
#define EXT_MIN_BYTES ((size_t)1 << 16)
#define READ_BUF ((size_t)1 << 16)

static void put_le(unsigned char *out, uint64_t v, int n) {
  for (int i = 0; i < n; i++) out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* ---- growing buffer ---- */

void blua_buf_init(blua_buf *b) { memset(b, 0, sizeof *b); }

void blua_buf_free(blua_buf *b) {
  for (size_t i = 0; i < b->next; i++) blua_tensor_release(b->ext[i].hold);
  free(b->ext);
  free(b->data);
  blua_buf_init(b);
}

int blua_buf_reserve(blua_buf *b, size_t extra) {
  if (b->failed) return BLUA_ERROR;
  if (extra <= b->cap - b->len) return BLUA_OK;
  if (extra > SIZE_MAX / 2 - b->len) {
    b->failed = 1;
    return BLUA_ERROR;
  }
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < need) cap *= 2;
  unsigned char *d = realloc(b->data, cap);
  if (!d) {
    b->failed = 1;
    return BLUA_ERROR;
  }
  b->data = d;
  b->cap = cap;
  return BLUA_OK;
}

void blua_buf_put(blua_buf *b, const void *p, size_t n) {
  if (n == 0 || blua_buf_reserve(b, n) != BLUA_OK) return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->total += n;
}

void blua_buf_u8(blua_buf *b, unsigned v) {
  unsigned char c = (unsigned char)v;
  blua_buf_put(b, &c, 1);
}

void blua_buf_u32(blua_buf *b, uint32_t v) {
  unsigned char o[4];
  put_le(o, v, 4);
  blua_buf_put(b, o, 4);
}

void blua_buf_u64(blua_buf *b, uint64_t v) {
  unsigned char o[8];
  put_le(o, v, 8);
  blua_buf_put(b, o, 8);
}

void blua_buf_i64(blua_buf *b, int64_t v) { blua_buf_u64(b, (uint64_t)v); }

void blua_buf_f64(blua_buf *b, double v) {
  uint64_t u;
  memcpy(&u, &v, 8); /* the bit pattern, so NaN payloads and -0 survive */
  blua_buf_u64(b, u);
}

void blua_buf_patch_u64(blua_buf *b, size_t at, uint64_t v) {
  if (!b->failed && at + 8 <= b->len) put_le(b->data + at, v, 8);
}

/* Writes n floats (a strided run) as little-endian f32. */
static void put_floats(unsigned char *out, const float *src, int64_t n, int64_t stride) {
  if (HOST_LE && stride == 1) {
    memcpy(out, src, (size_t)n * 4);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, src + i * stride, 4);
    put_le(out + 4 * i, u, 4);
  }
}

/* Splices a large contiguous tensor's storage into the payload, keeping a reference. */
static void add_ext(blua_buf *b, blua_tensor *t, size_t bytes) {
  if (b->failed) return;
  blua_err err;
  blua_tensor *c = blua_tensor_contiguous(t, &err);
  if (!c) {
    b->failed = 1;
    return;
  }
  if (b->next == b->ecap) {
    size_t ncap = b->ecap ? b->ecap * 2 : 16;
    blua_buf_ext *e = realloc(b->ext, ncap * sizeof *e);
    if (!e) {
      blua_tensor_release(c);
      b->failed = 1;
      return;
    }
    b->ext = e;
    b->ecap = ncap;
  }
  b->ext[b->next++] = (blua_buf_ext){b->len, (const unsigned char *)blua_tensor_data(c), bytes, c};
  b->total += bytes;
}

void blua_buf_tensor(blua_buf *b, blua_tensor *t) {
  if (t->dim <= 2) {
    /* 1-D and 2-D tensors keep the layout of version 1: dim, rows, cols. */
    blua_buf_u8(b, BLUA_TAG_TENSOR);
    blua_buf_u8(b, (unsigned)t->dim);
    blua_buf_i64(b, blua_tensor_rows(t));
    blua_buf_i64(b, blua_tensor_cols(t));
  } else {
    blua_buf_u8(b, BLUA_TAG_TENSOR_ND);
    blua_buf_u8(b, (unsigned)t->dim);
    for (int d = 0; d < t->dim; d++) blua_buf_i64(b, t->size[d]);
  }
  size_t bytes = (size_t)blua_tensor_nelement(t) * 4;
  if (HOST_LE && bytes >= EXT_MIN_BYTES) {
    add_ext(b, t, bytes);
    return;
  }
  if (bytes == 0 || blua_buf_reserve(b, bytes) != BLUA_OK) return;
  unsigned char *out = b->data + b->len;
  /* Runs along the last dimension, in row-major order, whatever the view's strides. */
  int64_t runs = blua_tensor_runs(t), len = t->size[t->dim - 1], step = t->stride[t->dim - 1];
  for (int64_t r = 0; r < runs; r++)
    put_floats(out + (size_t)(r * len) * 4, blua_tensor_data(t) + blua_tensor_run_offset(t, r), len, step);
  b->len += bytes;
  b->total += bytes;
}

/* ---- file envelope: writing ---- */

static uint32_t crc_more(uint32_t crc, const unsigned char *p, size_t n) {
  return (uint32_t)crc32_z(crc, p, n);
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
    ssize_t w = write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Calls fn on each piece of the payload in order; stops at the first non-zero return. */
static int each_piece(const blua_buf *b, int (*fn)(void *, const unsigned char *, size_t), void *ud) {
  size_t pos = 0;
  for (size_t i = 0; i < b->next; i++) {
    if (fn(ud, b->data + pos, b->ext[i].at - pos) != 0) return -1;
    if (fn(ud, b->ext[i].p, b->ext[i].len) != 0) return -1;
    pos = b->ext[i].at;
  }
  return fn(ud, b->data + pos, b->len - pos);
}

static int crc_piece(void *ud, const unsigned char *p, size_t n) {
  if (n) *(uint32_t *)ud = crc_more(*(uint32_t *)ud, p, n);
  return 0;
}

static int write_piece(void *ud, const unsigned char *p, size_t n) { return n ? write_all(*(int *)ud, p, n) : 0; }

int blua_checkpoint_write(const char *path, const blua_buf *payload, blua_err *err) {
  if (payload->failed) return blua_fail(err, "out of memory: saving '%s'", path);
  uint32_t crc = 0;
  each_piece(payload, crc_piece, &crc);
  unsigned char h[BLUA_CKPT_HEADER];
  memcpy(h, BLUA_CKPT_MAGIC, 8);
  put_le(h + 8, BLUA_CKPT_VERSION, 4);
  put_le(h + 12, 0, 4);
  put_le(h + 16, payload->total, 8);
  put_le(h + 24, crc, 4);
  put_le(h + 28, crc_more(0, h, 28), 4);

  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16), *dir = malloc(plen + 2);
  if (!tmp || !dir) {
    free(tmp);
    free(dir);
    return blua_fail(err, "out of memory: saving '%s'", path);
  }
  /* The temporary file sits beside the target so that rename stays within one file system. */
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp-XXXXXX", 12);
  const char *slash = strrchr(path, '/');
  if (!slash) {
    strcpy(dir, ".");
  } else if (slash == path) {
    strcpy(dir, "/");
  } else {
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
  }

  int status = BLUA_ERROR;
  /* An existing regular file keeps its mode, and one that nobody may write is not replaced
   * (the rename would bypass its permissions, since it only needs the directory). */
  struct stat old;
  int have_old = lstat(path, &old) == 0 && S_ISREG(old.st_mode);
  if (have_old && ((old.st_mode & 0222) == 0 || access(path, W_OK) != 0)) {
    blua_fail(err, "cannot save: '%s': the file is read-only (mode %03o)", path, (unsigned)(old.st_mode & 0777));
    goto out;
  }
  int fd = mkstemp(tmp);
  if (fd < 0) {
    blua_fail(err, "cannot save: '%s': cannot create a temporary file beside it: %s", path, strerror(errno));
    goto out;
  }
  /* mkstemp makes the file 0600: give it the old file's mode, or the mode a plain fopen would. */
  mode_t mask = umask(0);
  umask(mask);
  if (fchmod(fd, have_old ? old.st_mode & 07777 : 0666 & ~mask) != 0 || write_all(fd, h, sizeof h) != 0 ||
      each_piece(payload, write_piece, &fd) != 0 || fsync(fd) != 0) {
    blua_fail(err, "cannot save: '%s': %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    goto out;
  }
  if (close(fd) != 0) {
    blua_fail(err, "cannot save: '%s': %s", path, strerror(errno));
    unlink(tmp);
    goto out;
  }
  if (rename(tmp, path) != 0) {
    blua_fail(err, "cannot save: '%s': rename failed: %s", path, strerror(errno));
    unlink(tmp);
    goto out;
  }
  /* Make the rename itself durable. */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    if (fsync(dfd) != 0 && errno != EINVAL) {
      blua_fail(err, "cannot save: '%s': fsync of the directory failed: %s", path, strerror(errno));
      close(dfd);
      goto out;
    }
    close(dfd);
  }
  status = BLUA_OK;
out:
  free(tmp);
  free(dir);
  return status;
}

/* ---- file envelope: reading ---- */

int blua_cur_fail(blua_cursor *c, blua_err *err, const char *fmt, ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return blua_fail(err, "bad checkpoint: '%s': %s", c->path ? c->path : "?", what);
}

static int read_all(int fd, unsigned char *p, size_t n, size_t *got) {
  *got = 0;
  while (*got < n) {
    size_t chunk = n - *got > ((size_t)1 << 30) ? (size_t)1 << 30 : n - *got;
    ssize_t r = read(fd, p + *got, chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    *got += (size_t)r;
  }
  return 0;
}

void blua_checkpoint_close(blua_cursor *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
}

int blua_checkpoint_open(const char *path, blua_cursor *c, blua_err *err) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->path = path;
  /* O_NONBLOCK: opening a FIFO with no writer would otherwise block; only regular files pass
   * the check below, and for those the flag changes nothing, but it is cleared anyway. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return blua_fail(err, "cannot open checkpoint: '%s': %s", path, strerror(errno));
  c->fd = fd;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    blua_fail(err, "cannot open checkpoint: '%s': %s", path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    blua_cur_fail(c, err, "not a regular file");
    goto fail;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  uint64_t size = (uint64_t)st.st_size;
  if (size == 0) {
    blua_cur_fail(c, err, "the file is empty");
    goto fail;
  }
  unsigned char h[BLUA_CKPT_HEADER];
  size_t got;
  if (read_all(fd, h, size < sizeof h ? (size_t)size : sizeof h, &got) != 0) {
    blua_cur_fail(c, err, "read error: %s", strerror(errno));
    goto fail;
  }
  if (memcmp(h, BLUA_CKPT_MAGIC, got < 8 ? got : 8) != 0) {
    blua_cur_fail(c, err, "not a blua checkpoint (wrong magic)");
    goto fail;
  }
  if (got < sizeof h) {
    blua_cur_fail(c, err, "the header is truncated (%zu of %d bytes)", got, BLUA_CKPT_HEADER);
    goto fail;
  }
  uint32_t version = (uint32_t)get_le(h + 8, 4), flags = (uint32_t)get_le(h + 12, 4);
  uint64_t plen = get_le(h + 16, 8);
  uint32_t crc = (uint32_t)get_le(h + 24, 4), hcrc = (uint32_t)get_le(h + 28, 4);
  int known = version >= BLUA_CKPT_VERSION_MIN && version <= BLUA_CKPT_VERSION;
  if (crc_more(0, h, 28) != hcrc) {
    if (!known)
      blua_cur_fail(c, err, "format version %u is not supported (this blua reads versions %d to %d), or the header is damaged",
                    (unsigned)version, BLUA_CKPT_VERSION_MIN, BLUA_CKPT_VERSION);
    else
      blua_cur_fail(c, err, "header checksum mismatch (the file is damaged)");
    goto fail;
  }
  if (!known) {
    blua_cur_fail(c, err, "format version %u is not supported (this blua reads versions %d to %d)",
                  (unsigned)version, BLUA_CKPT_VERSION_MIN, BLUA_CKPT_VERSION);
    goto fail;
  }
  if (flags != 0) {
    blua_cur_fail(c, err, "unknown flags 0x%x", (unsigned)flags);
    goto fail;
  }
  if (plen != size - sizeof h) {
    blua_cur_fail(c, err, "%s: the header declares %llu payload bytes, the file holds %llu",
                  plen > size - sizeof h ? "the file is truncated" : "trailing bytes",
                  (unsigned long long)plen, (unsigned long long)(size - sizeof h));
    goto fail;
  }
  c->buf = malloc(READ_BUF);
  if (!c->buf) {
    blua_fail(err, "out of memory: loading '%s'", path);
    goto fail;
  }
  /* Checksum pass over the whole payload before anything is decoded. */
  uint32_t sum = 0;
  uint64_t seen = 0;
  while (seen < plen) {
    size_t want = plen - seen < READ_BUF ? (size_t)(plen - seen) : READ_BUF;
    if (read_all(fd, c->buf, want, &got) != 0) {
      blua_cur_fail(c, err, "read error: %s", strerror(errno));
      goto fail;
    }
    if (got < want) {
      blua_cur_fail(c, err, "the file is truncated (it shrank while being read)");
      goto fail;
    }
    sum = crc_more(sum, c->buf, got);
    seen += got;
  }
  if (sum != crc) {
    blua_cur_fail(c, err, "payload checksum mismatch (the file is damaged)");
    goto fail;
  }
  if (lseek(fd, BLUA_CKPT_HEADER, SEEK_SET) != BLUA_CKPT_HEADER) {
    blua_cur_fail(c, err, "seek failed: %s", strerror(errno));
    goto fail;
  }
  c->left = plen;
  c->version = version;
  c->want_crc = crc;
  c->crc = 0;
  c->bpos = c->blen = 0;
  return BLUA_OK;
fail:
  blua_checkpoint_close(c);
  return BLUA_ERROR;
}

int blua_checkpoint_finish(blua_cursor *c, blua_err *err) {
  if (c->left != 0)
    return blua_cur_fail(c, err, "%llu payload bytes follow the saved value", (unsigned long long)c->left);
  if (c->crc != c->want_crc) return blua_cur_fail(c, err, "the file changed while being read");
  return BLUA_OK;
}

int blua_cur_read(blua_cursor *c, void *dst, size_t n, const char *what, blua_err *err) {
  if (n > c->left)
    return blua_cur_fail(c, err, "the payload ends inside %s (needs %zu bytes, %llu left)", what, n,
                         (unsigned long long)c->left);
  unsigned char *out = dst;
  size_t done = 0;
  while (done < n) {
    if (c->bpos == c->blen) {
      size_t got;
      if (n - done >= READ_BUF) {
        /* Large reads (tensor data) go straight to their destination. */
        if (read_all(c->fd, out + done, n - done, &got) != 0)
          return blua_cur_fail(c, err, "read error: %s", strerror(errno));
        if (got < n - done) return blua_cur_fail(c, err, "the file is truncated (it shrank while being read)");
        done = n;
        break;
      }
      size_t want = c->left - done < READ_BUF ? (size_t)(c->left - done) : READ_BUF;
      if (read_all(c->fd, c->buf, want, &got) != 0)
        return blua_cur_fail(c, err, "read error: %s", strerror(errno));
      if (got < want) return blua_cur_fail(c, err, "the file is truncated (it shrank while being read)");
      c->bpos = 0;
      c->blen = got;
    }
    size_t take = c->blen - c->bpos < n - done ? c->blen - c->bpos : n - done;
    memcpy(out + done, c->buf + c->bpos, take);
    c->bpos += take;
    done += take;
  }
  c->crc = crc_more(c->crc, out, n);
  c->left -= n;
  return BLUA_OK;
}

int blua_cur_u8(blua_cursor *c, unsigned *v, const char *what, blua_err *err) {
  unsigned char p;
  if (blua_cur_read(c, &p, 1, what, err) != BLUA_OK) return BLUA_ERROR;
  *v = p;
  return BLUA_OK;
}

int blua_cur_u64(blua_cursor *c, uint64_t *v, const char *what, blua_err *err) {
  unsigned char p[8];
  if (blua_cur_read(c, p, 8, what, err) != BLUA_OK) return BLUA_ERROR;
  *v = get_le(p, 8);
  return BLUA_OK;
}

int blua_cur_i64(blua_cursor *c, int64_t *v, const char *what, blua_err *err) {
  uint64_t u;
  if (blua_cur_u64(c, &u, what, err) != BLUA_OK) return BLUA_ERROR;
  *v = (int64_t)u;
  return BLUA_OK;
}

int blua_cur_f64(blua_cursor *c, double *v, const char *what, blua_err *err) {
  uint64_t u;
  if (blua_cur_u64(c, &u, what, err) != BLUA_OK) return BLUA_ERROR;
  memcpy(v, &u, 8);
  return BLUA_OK;
}

/* Reads the data of a tensor of the given shape (already checked) after its header. */
static blua_tensor *read_data(blua_cursor *c, int dim, const int64_t *size, blua_err *err) {
  char s[160];
  int64_t n;
  blua_err serr;
  if (blua_shape_check(dim, size, &n, &serr) != BLUA_OK) {
    blua_cur_fail(c, err, "tensor of impossible shape (%s)", serr.msg);
    return NULL;
  }
  uint64_t bytes = (uint64_t)n * 4;
  if (bytes > c->left) {
    blua_tensor tmp = {0};
    tmp.dim = dim;
    for (int d = 0; d < dim; d++) tmp.size[d] = size[d];
    blua_cur_fail(c, err, "the payload ends inside tensor data (%s needs %llu bytes, %llu left)",
                  blua_tensor_shape(&tmp, s, sizeof s), (unsigned long long)bytes, (unsigned long long)c->left);
    return NULL;
  }
  blua_tensor *t = blua_tensor_empty_nd(dim, size, NULL);
  if (!t) {
    blua_tensor tmp = {0};
    tmp.dim = dim;
    for (int d = 0; d < dim; d++) tmp.size[d] = size[d];
    blua_fail(err, "out of memory: loading '%s': a %s tensor (%llu bytes)", c->path ? c->path : "?",
              blua_tensor_shape(&tmp, s, sizeof s), (unsigned long long)bytes);
    return NULL;
  }
  float *out = blua_tensor_data(t);
  if (blua_cur_read(c, out, (size_t)bytes, "tensor data", err) != BLUA_OK) {
    blua_tensor_release(t);
    return NULL;
  }
  if (!HOST_LE) {
    for (int64_t i = 0; i < n; i++) {
      unsigned char p[4];
      memcpy(p, out + i, 4);
      uint32_t u = (uint32_t)get_le(p, 4);
      memcpy(out + i, &u, 4);
    }
  }
  return t;
}

blua_tensor *blua_cur_tensor(blua_cursor *c, blua_err *err) {
  unsigned dim;
  int64_t rows, cols;
  if (blua_cur_u8(c, &dim, "a tensor header", err) != BLUA_OK ||
      blua_cur_i64(c, &rows, "a tensor header", err) != BLUA_OK ||
      blua_cur_i64(c, &cols, "a tensor header", err) != BLUA_OK)
    return NULL;
  if (dim != 1 && dim != 2) {
    blua_cur_fail(c, err, "tensor of dimension %u (only 1 and 2 exist)", dim);
    return NULL;
  }
  if (rows < 0 || cols < 0 || (dim == 1 && cols != 1)) {
    blua_cur_fail(c, err, "tensor of impossible shape %lldx%lld", (long long)rows, (long long)cols);
    return NULL;
  }
  if (cols > 0 && rows > BLUA_MAX_ELEMENTS / cols) {
    blua_cur_fail(c, err, "tensor of %lldx%lld exceeds the element limit", (long long)rows, (long long)cols);
    return NULL;
  }
  int64_t size[2] = {rows, cols};
  return read_data(c, (int)dim, size, err);
}

blua_tensor *blua_cur_tensor_nd(blua_cursor *c, blua_err *err) {
  unsigned dim;
  if (c->version < 2) {
    blua_cur_fail(c, err, "tag %d (an N-d tensor) does not exist in format version %u", BLUA_TAG_TENSOR_ND,
                  (unsigned)c->version);
    return NULL;
  }
  if (blua_cur_u8(c, &dim, "a tensor header", err) != BLUA_OK) return NULL;
  if (dim < 1 || dim > BLUA_MAX_DIM) {
    blua_cur_fail(c, err, "tensor of dimension %u (1..%d exist)", dim, BLUA_MAX_DIM);
    return NULL;
  }
  int64_t size[BLUA_MAX_DIM];
  for (unsigned d = 0; d < dim; d++)
    if (blua_cur_i64(c, &size[d], "a tensor header", err) != BLUA_OK) return NULL;
  return read_data(c, (int)dim, size, err);
}
