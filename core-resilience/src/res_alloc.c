#include "res_alloc.h"

#include <stdlib.h>

__attribute__((weak)) void *
res_malloc(size_t size)
{
    return malloc(size);
}

__attribute__((weak)) void *
res_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}
