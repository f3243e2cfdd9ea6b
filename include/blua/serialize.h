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
#define BLUA_CKPT_VERSION 1
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
  BLUA_TAG_TENSOR = 9    /* u8 dim (1 or 2), i64 rows, i64 cols, rows*cols f32 row-major */
};

/* A growing byte buffer. Appends never fail loudly: the first allocation failure sets
 * `failed` and later appends do nothing, so a writer checks once at the end. */
typedef struct blua_buf {
  unsigned char *data;
  size_t len, cap;
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
/* tag, dim, rows, cols, then the values row-major whatever the tensor's layout. */
void blua_buf_tensor(blua_buf *b, const blua_tensor *t);

/* A bounds-checked reader over a payload. Every get fails (BLUA_ERROR with "bad checkpoint:
 * 'path': ...") instead of reading past the end; path only labels the messages. */
typedef struct blua_cursor {
  const unsigned char *p;
  size_t left;
  const char *path;
} blua_cursor;

int blua_cur_u8(blua_cursor *c, unsigned *v, const char *what, blua_err *err);
int blua_cur_u64(blua_cursor *c, uint64_t *v, const char *what, blua_err *err);
int blua_cur_i64(blua_cursor *c, int64_t *v, const char *what, blua_err *err);
int blua_cur_f64(blua_cursor *c, double *v, const char *what, blua_err *err);
/* n bytes in place (*p points into the payload). */
int blua_cur_bytes(blua_cursor *c, size_t n, const unsigned char **p, const char *what, blua_err *err);
/* A tensor after its tag: shape checked against the bytes left before allocating. */
blua_tensor *blua_cur_tensor(blua_cursor *c, blua_err *err);
/* Formats "bad checkpoint: 'path': ..." for decoders. */
int blua_cur_fail(blua_cursor *c, blua_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Writes header + payload to a temporary file beside path, fsyncs it, renames it over path
 * and fsyncs the directory: after a crash at any instant path holds the old or the new
 * checkpoint, never a mix (a stray "path.tmp-XXXXXX" may remain). */
int blua_checkpoint_write(const char *path, const void *payload, size_t len, blua_err *err);
/* Reads path, checks magic, header checksum, version, length against the file size and the
 * payload checksum; on success *payload (malloc'd, caller frees) holds *len bytes. */
int blua_checkpoint_read(const char *path, unsigned char **payload, size_t *len, blua_err *err);

#endif
