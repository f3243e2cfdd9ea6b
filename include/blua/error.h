/* Error reporting of the blua core: every fallible function fills a blua_err and
 * returns a status, it never exits or aborts. */
#ifndef BLUA_ERROR_H
#define BLUA_ERROR_H

#include <stdarg.h>

#define BLUA_OK 0
#define BLUA_ERROR (-1)

typedef struct blua_err {
  char msg[512];
} blua_err;

/* Formats a message into err (when err is not NULL) and returns BLUA_ERROR. */
int blua_fail(blua_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
