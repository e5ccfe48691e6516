/*
 * bulletin_internal.h - text helpers of the bulletin board shared with the
 * HTTP API inside orbit-connect.
 */
#ifndef ORBIT_BULLETIN_INTERNAL_H
#define ORBIT_BULLETIN_INTERNAL_H

#include <stddef.h>

/* The allocation seam of the bulletin board: every allocation it makes goes
 * through these (memory is released with free()). The definitions are weak and
 * call the C library, so a test can link strong ones that fail the Nth call. */
void *bulletin_malloc(size_t size);
void *bulletin_calloc(size_t n, size_t size);

/* A malloc'd copy of s that is valid UTF-8 (an invalid byte becomes '?'),
 * at most max bytes, cut on a character boundary; NULL when out of
 * memory. */
char *bulletin_utf8_copy(const char *s, size_t max);

#endif
