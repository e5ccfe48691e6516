/*
 * starmap_alloc.h - the allocation seam of core-starmap.
 *
 * Every allocation the library makes itself goes through these functions;
 * memory is released with free(). The library's definitions are weak and
 * call the C library directly, so a test program can link strong
 * definitions that fail the Nth allocation and prove each failure path
 * clean. (Allocations made inside zstd, LMDB and OpenSSL are theirs.)
 */
#ifndef ORBIT_STARMAP_ALLOC_H
#define ORBIT_STARMAP_ALLOC_H

#include "orbit/error.h"

#include <stddef.h>
#include <stdint.h>

void *starmap_malloc(size_t size);
void *starmap_calloc(size_t n, size_t size);
void *starmap_realloc(void *p, size_t size);

/*
 * The array arr of *cap elements of elem bytes, grown (doubling, 16 at
 * least) to hold need: the possibly moved array, or NULL when out of memory
 * (arr and *cap are then unchanged and arr is still the caller's).
 */
void *starmap_grow(void *arr, size_t *cap, size_t need, size_t elem);

/* A byte buffer grown to hold need bytes: 0 or ORBIT_ENOMEM. */
static inline int
starmap_grow_bytes(uint8_t **buf, size_t *cap, size_t need)
{
    void *n = starmap_grow(*buf, cap, need ? need : 1, 1);
    if (!n)
        return ORBIT_ENOMEM;
    *buf = n;
    return 0;
}

#endif
