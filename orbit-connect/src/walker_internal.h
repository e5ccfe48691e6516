/*
 * walker_internal.h - the walker's allocation seam.
 */
#ifndef ORBIT_WALKER_INTERNAL_H
#define ORBIT_WALKER_INTERNAL_H

#include <stddef.h>

/* The allocation seam of the walker: every allocation it makes goes through
 * these (memory is released with free()). The definitions are weak and call
 * the C library, so a test can link strong ones that fail the Nth call. */
void *walker_calloc(size_t n, size_t size);
void *walker_realloc(void *p, size_t size);

#endif
