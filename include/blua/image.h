/* PNG images as float planes in [0, 1], through libpng. Lua-free: the binding makes tensors. */
#ifndef BLUA_IMAGE_H
#define BLUA_IMAGE_H

#include <stdint.h>

#include "blua/error.h"

/* A decoded image: `channels` planes (1 grey, 3 red-green-blue) of height x width floats,
 * plane after plane, each row-major; values in [0, 1]. */
typedef struct blua_image {
  int64_t height, width;
  int channels;
  float *data; /* channels * height * width floats, malloc'd; blua_image_free releases it */
} blua_image;

/* Reads a PNG file. want: 0 keeps the file's own colour kind (grey or colour), 1 forces grey
 * (luminance), 3 forces colour. Transparent pixels are laid over white, the page a picture is
 * drawn on. Returns BLUA_OK, or an error naming the file (missing, not a PNG, damaged, or
 * larger than max_pixels pixels). */
int blua_image_load(const char *path, int want, int64_t max_pixels, blua_image *img, blua_err *err);

/* Writes channels (1 or 3) planes of height x width floats as an 8-bit PNG; values are
 * clamped to [0, 1] and NaN is written as 0. */
int blua_image_save(const char *path, const float *planes, int64_t height, int64_t width, int channels,
                    blua_err *err);

void blua_image_free(blua_image *img);

#endif
