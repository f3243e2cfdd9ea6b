/* Checkpoint files: the file-level envelope (header, checksum, crash-safe replace) and the
 * little-endian building blocks of the payload. docs/format.md documents the format; the value
 * walk over Lua data lives in the binding (runtime/lio.c) on top of these pieces.
 *
 * A checkpoint is a 32-byte header followed by the payload:
 *   0  magic   8 bytes  89 42 4C 55 41 0D 0A 1A  ("\x89BLUA\r\n\x1a")
 *   8  version u32      BLUA_CKPT_VERSION
 *  12  flags   u32      0 (reserved)
 *  16  length  u64      payload bytes
 *  24  crc     u32      CRC-32 of the payload
 *  28  hcrc    u32      CRC-32 of header bytes 0..27
 * All integers little-endian. */
#ifndef BLUA_SERIALIZE_H
#define BLUA_SERIALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "blua/error.h"
#include "blua/tensor.h"

#define BLUA_CKPT_MAGIC "\x89" "BLUA\r\n\x1a"
#define BLUA_CKPT_VERSION 2      /* written */
#define BLUA_CKPT_VERSION_MIN 1  /* oldest version read */
#define BLUA_CKPT_HEADER 32

/* Object tags of the payload (one byte before every value). */
enum {
  BLUA_TAG_NIL = 0,
  BLUA_TAG_FALSE = 1,
  BLUA_TAG_TRUE = 2,
  BLUA_TAG_INT = 3,      /* i64 */
  BLUA_TAG_FLOAT = 4,    /* f64 bit pattern */
  BLUA_TAG_STRING = 5,   /* u64 length, bytes */
  BLUA_TAG_TABLE = 6,    /* u64 pair count, then key, value, key, value ... */
  BLUA_TAG_TYPED = 7,    /* u64 name length, name bytes, then as TABLE */
  BLUA_TAG_REF = 8,      /* u64 id of an earlier table, typed table or tensor */
  BLUA_TAG_TENSOR = 9,   /* u8 dim (1 or 2), i64 rows, i64 cols, rows*cols f32 row-major */
  BLUA_TAG_TENSOR_ND = 10 /* version 2: u8 dim (1..8), dim x i64 sizes, their product f32 */
};

/* A growing byte buffer plus references to large tensor data (so a big tensor is written
 * from its own storage, not copied). Appends never fail loudly: the first allocation failure
 * sets `failed` and later appends do nothing, so a writer checks once at the end. The payload
 * is data[0..len) with each ext[i] spliced in at inline offset ext[i].at. */
typedef struct blua_buf_ext {
  size_t at;                 /* inline offset where this block goes */
  const unsigned char *p;
  size_t len;
  blua_tensor *hold;         /* reference kept on the tensor owning p */
} blua_buf_ext;

typedef struct blua_buf {
  unsigned char *data;
  size_t len, cap;
  blua_buf_ext *ext;
  size_t next, ecap;
  uint64_t total;            /* payload bytes: len plus every ext block */
  int failed;
} blua_buf;

void blua_buf_init(blua_buf *b);
void blua_buf_free(blua_buf *b);
int blua_buf_reserve(blua_buf *b, size_t extra);  /* BLUA_OK or BLUA_ERROR (sets failed) */
void blua_buf_put(blua_buf *b, const void *p, size_t n);
void blua_buf_u8(blua_buf *b, unsigned v);
void blua_buf_u32(blua_buf *b, uint32_t v);
void blua_buf_u64(blua_buf *b, uint64_t v);
void blua_buf_i64(blua_buf *b, int64_t v);
void blua_buf_f64(blua_buf *b, double v);
/* Overwrites 8 bytes at inline offset at (a count known only after its items). */
void blua_buf_patch_u64(blua_buf *b, size_t at, uint64_t v);
/* tag 9, dim, rows, cols (1-D, 2-D) or tag 10, dim, sizes (N-d), then the values row-major
 * whatever the tensor's layout. */
void blua_buf_tensor(blua_buf *b, blua_tensor *t);

/* Reader of a checkpoint's payload, streaming from the file. blua_checkpoint_open checks the
 * header and the payload checksum (one pass over the file) before any value is decoded; the
 * reads below then fail (BLUA_ERROR with "bad checkpoint: 'path': ...") instead of reading
 * past the payload, and tensors are read straight into their storage. */
typedef struct blua_cursor {
  int fd;
  const char *path;          /* borrowed, labels the messages */
  uint64_t left;             /* payload bytes not consumed yet */
  uint32_t crc, want_crc;    /* running CRC of consumed bytes; the header's CRC */
  uint32_t version;          /* the file's format version */
  unsigned char *buf;
  size_t bpos, blen;
} blua_cursor;

int blua_checkpoint_open(const char *path, blua_cursor *c, blua_err *err);
/* After decoding: no payload bytes may be left, and the bytes decoded must still match the
 * checksum (the file did not change between the check and the decode). */
int blua_checkpoint_finish(blua_cursor *c, blua_err *err);
/* Releases the file and buffer; safe to call twice (open leaves fd = -1 on failure). */
void blua_checkpoint_close(blua_cursor *c);

int blua_cur_read(blua_cursor *c, void *dst, size_t n, const char *what, blua_err *err);
int blua_cur_u8(blua_cursor *c, unsigned *v, const char *what, blua_err *err);
int blua_cur_u64(blua_cursor *c, uint64_t *v, const char *what, blua_err *err);
int blua_cur_i64(blua_cursor *c, int64_t *v, const char *what, blua_err *err);
int blua_cur_f64(blua_cursor *c, double *v, const char *what, blua_err *err);
/* A tensor after its tag (BLUA_TAG_TENSOR; BLUA_TAG_TENSOR_ND for the _nd reader, which
 * fails in a version 1 file): shape checked against the bytes left before allocating. */
blua_tensor *blua_cur_tensor(blua_cursor *c, blua_err *err);
blua_tensor *blua_cur_tensor_nd(blua_cursor *c, blua_err *err);
/* Formats "bad checkpoint: 'path': ..." for decoders. */
int blua_cur_fail(blua_cursor *c, blua_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Writes header + payload to a temporary file beside path, fsyncs it, renames it over path
 * and fsyncs the directory: after a crash at any instant path holds the old or the new
 * checkpoint, never a mix (a stray "path.tmp-XXXXXX" may remain). */
int blua_checkpoint_write(const char *path, const blua_buf *payload, blua_err *err);

#endif
