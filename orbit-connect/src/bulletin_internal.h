/*
 * bulletin_internal.h - text helpers of the bulletin board shared with the
 * HTTP API inside orbit-connect.
 */
#ifndef ORBIT_BULLETIN_INTERNAL_H
#define ORBIT_BULLETIN_INTERNAL_H

#include <stddef.h>

/* A malloc'd copy of s that is valid UTF-8 (an invalid byte becomes '?'),
 * at most max bytes, cut on a character boundary; NULL when out of
 * memory. */
char *bulletin_utf8_copy(const char *s, size_t max);

#endif
