/* IDX files (the MNIST container format), raw or gzip-compressed, read into float32 tensors,
 * plus small data-set helpers (one-hot labels).
 *
 * IDX layout: two zero bytes, a type code byte, a rank byte, then `rank` big-endian uint32
 * dimensions, then the values in row-major order, big-endian. The reader accepts every type
 * code of the format and ranks 1..BLUA_IDX_MAX_RANK; the result has rows = first dimension and
 * cols = product of the others (rank 1 gives N x 1). Every header field is checked before any
 * allocation, and the data must be exactly as long as the header says (no short data, no
 * trailing bytes); a gzip file is judged by what it decompresses to, and its result only grows
 * as real data arrives (never past the declared size), so a tiny file claiming huge dimensions
 * never causes a huge allocation. Values are converted in chunks straight into the result:
 * the whole data is never held twice. */
#ifndef BLUA_IDX_H
#define BLUA_IDX_H

#include <stdint.h>

#include "blua/error.h"
#include "blua/tensor.h"

#define BLUA_IDX_MAX_RANK 32

/* IDX type codes. */
enum {
  BLUA_IDX_UBYTE = 0x08,
  BLUA_IDX_SBYTE = 0x09,
  BLUA_IDX_SHORT = 0x0B,
  BLUA_IDX_INT = 0x0C,
  BLUA_IDX_FLOAT = 0x0D,
  BLUA_IDX_DOUBLE = 0x0E
};

typedef struct blua_idx_info {
  int type;                          /* one of the codes above */
  int rank;
  int64_t dims[BLUA_IDX_MAX_RANK];
  int compressed;                    /* 1 when the file was gzip */
} blua_idx_info;

/* Name of a type code ("ubyte", ...), or NULL for a code that is not IDX. */
const char *blua_idx_type_name(int type);

/* Reads the IDX file at path (raw or gzip, told apart by content) into a new rows x cols
 * tensor of value * scale + shift (computed in double, rounded once to float). info may be
 * NULL. Errors read "bad IDX file: 'path': problem" or "cannot open IDX file: 'path': reason". */
blua_tensor *blua_idx_load_scaled(const char *path, double scale, double shift,
                                  blua_idx_info *info, blua_err *err);
/* The same with a limit on the element count the header may declare (max_elements; a value
 * outside 1..BLUA_MAX_ELEMENTS means BLUA_MAX_ELEMENTS): a larger file is an error before any
 * allocation. Only regular files are read (a FIFO or device is refused without blocking). */
blua_tensor *blua_idx_load_opts(const char *path, double scale, double shift, int64_t max_elements,
                                blua_idx_info *info, blua_err *err);
/* The same with scale 1 and shift 0: the file's own values. */
blua_tensor *blua_idx_load(const char *path, blua_idx_info *info, blua_err *err);

/* out (n x classes, any layout) = one-hot rows of the labels in y (n x 1 or n, values
 * 1..classes, integers). Fails naming the first bad label, leaving out partly written. */
int blua_onehot(blua_tensor *out, const blua_tensor *y, int64_t classes, blua_err *err);

#endif
