#include "starmap_alloc.h"

#include <stdint.h>

#include <stdlib.h>

__attribute__((weak)) void *
starmap_malloc(size_t size)
{
    return malloc(size);
}

__attribute__((weak)) void *
starmap_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

__attribute__((weak)) void *
starmap_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

void *
starmap_grow(void *arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap && arr)
        return arr;
    size_t ncap = *cap > 8 ? *cap * 2 : 16;
    if (ncap < need)
        ncap = need;
    if (elem && ncap > SIZE_MAX / elem)
        return NULL;
    void *n = starmap_realloc(arr, ncap * elem);
    if (n)
        *cap = ncap;
    return n;
}
