/*
 * The star's allocation seam: weak definitions over libc, replaced in tests
 * to fail the Nth allocation. No run-time hook, no global state here.
 */
#include <stdlib.h>
#include <string.h>

#include "star_alloc.h"

__attribute__((weak)) void *
star_malloc(size_t size)
{
    return malloc(size);
}

__attribute__((weak)) void *
star_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

__attribute__((weak)) void *
star_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

__attribute__((weak)) char *
star_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = star_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
