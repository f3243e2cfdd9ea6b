#include "blua/error.h"

#include <stdio.h>

int blua_fail(blua_err *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return BLUA_ERROR;
}
