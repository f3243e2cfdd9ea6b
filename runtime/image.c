/* PNG reading and writing through libpng's simplified API (png_image), which handles every
 * colour type, bit depth, palette and gamma for us. Pixels become floats in [0, 1]. */
#define _POSIX_C_SOURCE 200809L
#include "blua/image.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void blua_image_free(blua_image *img) {
  if (img == NULL) return;
  free(img->data);
  img->data = NULL;
}

/* Opens path for reading only when it is a regular file; never blocks on a FIFO or device. */
static FILE *open_regular(const char *path, blua_err *err) {
  int fd = open(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0) {
    blua_fail(err, "cannot open image: '%s': %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    blua_fail(err, "cannot open image: '%s': not a regular file", path);
    close(fd);
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (f == NULL) {
    blua_fail(err, "cannot open image: '%s': %s", path, strerror(errno));
    close(fd);
  }
  return f;
}

int blua_image_load(const char *path, int want, int64_t max_pixels, blua_image *img, blua_err *err) {
  memset(img, 0, sizeof *img);
  if (want != 0 && want != 1 && want != 3) return blua_fail(err, "bad mode: want 0, 1 or 3 channels, got %d", want);
  FILE *f = open_regular(path, err);
  if (f == NULL) return BLUA_ERROR;
  png_image png;
  memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_stdio(&png, f)) {
    blua_fail(err, "bad image: '%s': %s", path, png.message);
    fclose(f);
    return BLUA_ERROR;
  }
  int channels = want ? want : ((png.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1);
  int64_t h = png.height, w = png.width;
  if (h < 1 || w < 1 || h * w > max_pixels) {
    blua_fail(err, "bad image: '%s': %lldx%lld pixels (at most %lld allowed)", path, (long long)h, (long long)w,
              (long long)max_pixels);
    png_image_free(&png);
    fclose(f);
    return BLUA_ERROR;
  }
  png.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY; /* 8 bits, no alpha */
  size_t stride = (size_t)w * (size_t)channels;
  unsigned char *buf = malloc(stride * (size_t)h);
  float *planes = malloc(sizeof(float) * (size_t)channels * (size_t)h * (size_t)w);
  if (buf == NULL || planes == NULL) {
    free(buf);
    free(planes);
    png_image_free(&png);
    fclose(f);
    return blua_fail(err, "out of memory: image '%s' of %lldx%lld pixels", path, (long long)h, (long long)w);
  }
  png_color white = {255, 255, 255};
  int ok = png_image_finish_read(&png, &white, buf, (png_int_32)stride, NULL);
  fclose(f);
  if (!ok) {
    blua_fail(err, "bad image: '%s': %s", path, png.message);
    png_image_free(&png);
    free(buf);
    free(planes);
    return BLUA_ERROR;
  }
  /* interleaved bytes → one plane per channel */
  for (int c = 0; c < channels; c++)
    for (int64_t i = 0; i < h * w; i++) planes[(int64_t)c * h * w + i] = buf[i * channels + c] / 255.0f;
  free(buf);
  img->height = h;
  img->width = w;
  img->channels = channels;
  img->data = planes;
  return BLUA_OK;
}

int blua_image_save(const char *path, const float *planes, int64_t height, int64_t width, int channels,
                    blua_err *err) {
  if (channels != 1 && channels != 3) return blua_fail(err, "bad image: 1 or 3 channels expected, got %d", channels);
  if (height < 1 || width < 1 || height > 0x7fffffff / 4 || width > 0x7fffffff / 4 || height * width > ((int64_t)1 << 30))
    return blua_fail(err, "bad image: cannot write %lldx%lld pixels", (long long)height, (long long)width);
  size_t n = (size_t)height * (size_t)width;
  unsigned char *buf = malloc(n * (size_t)channels);
  if (buf == NULL) return blua_fail(err, "out of memory: image of %lldx%lld pixels", (long long)height, (long long)width);
  for (int c = 0; c < channels; c++)
    for (size_t i = 0; i < n; i++) {
      float v = planes[(size_t)c * n + i];
      v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* NaN fails v > 0: written as 0 */
      buf[i * (size_t)channels + (size_t)c] = (unsigned char)lrintf(v * 255.0f);
    }
  png_image png;
  memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = (png_uint_32)width;
  png.height = (png_uint_32)height;
  png.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  int ok = png_image_write_to_file(&png, path, 0, buf, (png_int_32)(width * channels), NULL);
  free(buf);
  if (!ok) {
    blua_fail(err, "cannot save image: '%s': %s", path, png.message);
    png_image_free(&png);
    return BLUA_ERROR;
  }
  return BLUA_OK;
}
