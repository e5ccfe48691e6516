/*
 * The allocation seam of the wire client code: weak definitions that a test
 * program replaces with strong ones to fail the Nth allocation. No run-time
 * hook, no global state here.
 */
#include <stdlib.h>

#include "wire_internal.h"

__attribute__((weak)) void *
wire_malloc(size_t size)
{
    return malloc(size);
}

__attribute__((weak)) void *
wire_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

__attribute__((weak)) void *
wire_realloc(void *p, size_t size)
{
    return realloc(p, size);
}
