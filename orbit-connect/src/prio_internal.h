/*
 * prio_internal.h - the prioritizers' allocation seam.
 */
#ifndef ORBIT_PRIO_INTERNAL_H
#define ORBIT_PRIO_INTERNAL_H

#include <stddef.h>

/* The allocation seam of the prioritizers: every allocation it makes goes
 * through these (memory is released with free()). The definitions are weak and
 * call the C library, so a test can link strong ones that fail the Nth call. */
void *prio_malloc(size_t size);
void *prio_calloc(size_t n, size_t size);

#endif
